//! `trade_open`: a buyer reserves energy from an offer, pending payment.

use pinocchio::ProgramResult;

use crate::{
    accounts::NewPda,
    args::Hash,
    error::NishatiError,
    events::TradeOpened,
    instructions::{now, Ix},
    pda::{self, TRADE_SEED},
    state::{household::Household, market::Market, offer::Offer, trade::Trade, AccountData},
};

crate::accounts! {
    pub struct TradeOpenAccounts {
        payer: Payer,
        authority: Signer,
        market: ReadOnly,
        offer: Writable,
        buyer: Writable,
        trade: Writable,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct TradeOpen { wh: u64, payment_ref_hash: Hash, trade_index: u64, trade_bump: u8 }
}

/// The trade's address is `["trade", offer, trade_index]` with the offer's next index, so a
/// closed trade's address never comes back; its bump comes with the instruction and costs one
/// hash to check, whatever it is.
pub fn process(ix: &Ix<TradeOpenAccounts, TradeOpen>) -> ProgramResult {
    let TradeOpenAccounts { payer, authority, market, offer, buyer, trade, .. } = ix.accounts;
    let TradeOpen { wh, payment_ref_hash, trade_index, trade_bump } = ix.args;
    let program_id = ix.program_id;
    let now = now()?;

    let market_state = Market::load(market, program_id)?;
    market_state.check_open()?;
    let buyer_energy_account = {
        let mut home = Household::load_mut(buyer, program_id, market.key())?;
        home.check_authority(authority, &market_state)?;
        home.open_trade(&market_state)?;
        home.energy_account
    };
    let deadline = i64::try_from(market_state.payment_deadline_secs)
        .ok()
        .and_then(|secs| now.checked_add(secs))
        .ok_or(NishatiError::ArithmeticOverflow)?;
    drop(market_state);

    let (price, seller) = {
        let mut state = Offer::load_mut(offer, program_id, market.key())?;
        if state.is_cancelled() {
            return Err(NishatiError::OfferCancelled.into());
        }
        if now > state.expires_at {
            return Err(NishatiError::OfferExpired.into());
        }
        if state.seller == *buyer.key() {
            return Err(NishatiError::SelfTrade.into());
        }
        if wh == 0 {
            return Err(NishatiError::ZeroAmount.into());
        }
        if wh > state.unreserved_wh {
            return Err(NishatiError::NotEnoughOfferedEnergy.into());
        }
        if trade_index != state.next_trade_index {
            return Err(NishatiError::StaleTradeIndex.into());
        }
        state.next_trade_index =
            trade_index.checked_add(1).ok_or(NishatiError::ArithmeticOverflow)?;
        state.unreserved_wh -= wh;
        state.reserved_wh += wh;
        (state.price_cents_per_kwh, state.seller)
    };
    let total_cents = Trade::total_cents(wh, price)?;

    let index_bytes = trade_index.to_le_bytes();
    let seeds: [&[u8]; 3] = [TRADE_SEED, offer.key(), &index_bytes];
    pda::check(&seeds, trade_bump, program_id, trade.key(), NishatiError::InvalidTradeAddress)?;
    NewPda { payer, account: trade, seeds: &seeds, bump: trade_bump }
        .create(Trade::LEN as u64, program_id)?;

    let mut data = trade.try_borrow_mut_data()?;
    let state = Trade::init_bytes(&mut data)?;
    state.market = *market.key();
    state.offer = *offer.key();
    state.buyer = *buyer.key();
    state.buyer_energy_account = buyer_energy_account;
    state.rent_payer = *payer.key();
    state.payment_ref_hash = payment_ref_hash.0;
    state.trade_index = trade_index;
    state.wh = wh;
    state.price_cents_per_kwh = price;
    state.total_cents = total_cents;
    state.created_at = now;
    state.deadline = deadline;
    state.bump = trade_bump;

    TradeOpened {
        trade: *trade.key(),
        offer: *offer.key(),
        buyer: *buyer.key(),
        seller,
        wh,
        total_cents,
        deadline,
        payment_ref_hash: payment_ref_hash.0,
        trade_index,
    }
    .emit();
    Ok(())
}
