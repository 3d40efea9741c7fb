//! `trade_settle`: the oracle, once the buyer has paid, releases the energy to the buyer.

use pinocchio::{pubkey::Pubkey, ProgramResult};
use pinocchio_token::instructions::Transfer;

use crate::{
    accounts,
    args::Hash,
    error::NishatiError,
    events::TradeSettled,
    instructions::Ix,
    pda::{self, OFFER_SEED},
    state::{household::Household, market::Market, offer::Offer, trade::Trade},
};

crate::accounts! {
    pub struct TradeSettleAccounts {
        oracle: Signer,
        market: ReadOnly,
        offer: Writable,
        escrow: Writable,
        trade: Writable,
        buyer: Writable,
        buyer_energy_account: Writable,
        rent_receiver: Writable,
        token_program: TokenProgram,
    }
}

crate::args! {
    /// `buyer`, `wh` and `total_cents` are what the oracle's ledger says was paid for: the trade
    /// must match them, so a trade swapped in at a known address is never settled.
    pub struct TradeSettle { receipt_hash: Hash, buyer: Pubkey, wh: u64, total_cents: u64 }
}

pub fn process(ix: &Ix<TradeSettleAccounts, TradeSettle>) -> ProgramResult {
    let TradeSettleAccounts {
        oracle,
        market,
        offer,
        escrow,
        trade,
        buyer,
        buyer_energy_account,
        rent_receiver,
        ..
    } = ix.accounts;
    let TradeSettle { receipt_hash, buyer: paid_buyer, wh, total_cents } = ix.args;
    let program_id = ix.program_id;

    // A paused market still settles: the buyer has paid.
    Market::load(market, program_id)?.check_oracle(oracle)?;
    let pending = Trade::read(trade, program_id, offer.key())?;
    if pending.buyer != paid_buyer || pending.buyer != *buyer.key() {
        return Err(NishatiError::SettlementBuyerMismatch.into());
    }
    if pending.wh != wh || pending.total_cents != total_cents {
        return Err(NishatiError::SettlementAmountMismatch.into());
    }
    if pending.buyer_energy_account != *buyer_energy_account.key() {
        return Err(NishatiError::InvalidEnergyAccount.into());
    }
    if pending.rent_payer != *rent_receiver.key() {
        return Err(NishatiError::InvalidRentReceiver.into());
    }
    Household::load_mut(buyer, program_id, market.key())?.close_trade()?;
    let state = {
        let mut state = Offer::load_mut(offer, program_id, market.key())?;
        state.check_escrow(escrow)?;
        state.reserved_wh = state
            .reserved_wh
            .checked_sub(pending.wh)
            .ok_or(NishatiError::EscrowInvariantViolated)?;
        *state
    };

    let id_bytes = state.offer_id.to_le_bytes();
    pda::sign_with(&[OFFER_SEED, &state.seller, &id_bytes], state.bump, |signers| {
        Transfer { from: escrow, to: buyer_energy_account, authority: offer, amount: pending.wh }
            .invoke_signed(signers)
    })?;
    state.check_escrow_balance(escrow)?;
    accounts::close(trade, rent_receiver)?;

    TradeSettled {
        trade: *trade.key(),
        offer: *offer.key(),
        buyer: pending.buyer,
        wh: pending.wh,
        total_cents: pending.total_cents,
        receipt_hash: receipt_hash.0,
    }
    .emit();
    Ok(())
}
