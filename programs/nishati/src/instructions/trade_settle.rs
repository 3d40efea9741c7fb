//! `trade_settle`: the oracle, once the buyer has paid, releases the energy to the buyer.

use pinocchio::ProgramResult;
use pinocchio_token::instructions::Transfer;

use crate::{
    accounts,
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::TradeSettled,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{self, OFFER_SEED},
    state::{market::Market, offer::Offer, trade::Trade},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("trade_settle");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("oracle", false, true),
    ("market", false, false),
    ("offer", true, false),
    ("escrow", true, false),
    ("trade", true, false),
    ("buyer_energy_account", true, false),
    ("rent_receiver", true, false),
    ("token_program", false, false),
];

/// Args: `receipt_hash: [u8; 32]`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [oracle, market, offer, escrow, trade, buyer_energy_account, rent_receiver, token_program, ..] =
        accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    let mut args = ArgReader::new(data);
    let receipt_hash = args.pubkey()?;
    args.finish()?;
    accounts::writable(trade)?;
    accounts::writable(escrow)?;
    accounts::writable(buyer_energy_account)?;
    accounts::token_program(token_program)?;

    // A paused market still settles: the buyer has paid.
    Market::load(market, program_id)?.check_oracle(oracle)?;
    let pending = Trade::read(trade, program_id, offer.key())?;
    if pending.buyer_energy_account != *buyer_energy_account.key() {
        return Err(NishatiError::InvalidEnergyAccount.into());
    }
    if pending.rent_payer != *rent_receiver.key() {
        return Err(NishatiError::InvalidRentReceiver.into());
    }
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
        receipt_hash,
    }
    .emit();
    Ok(())
}
