//! `trade_cancel`: a failed or overdue payment gives the reserved energy back to the offer.

use pinocchio::ProgramResult;

use crate::{
    accounts,
    args::NoArgs,
    error::NishatiError,
    events::TradeCancelled,
    instructions::{now, Ix},
    state::{household::Household, market::Market, offer::Offer, trade::Trade},
};

crate::accounts! {
    pub struct TradeCancelAccounts {
        caller: Signer,
        market: ReadOnly,
        offer: Writable,
        trade: Writable,
        buyer: Writable,
        rent_receiver: Writable,
    }
}

/// The oracle knows when a payment failed and may cancel at any time. Anyone else waits out
/// the deadline and then the market's grace, in which the oracle settles a payment that came in
/// late, so a paid trade is settled, not raced.
pub fn process(ix: &Ix<TradeCancelAccounts, NoArgs>) -> ProgramResult {
    let TradeCancelAccounts { caller, market, offer, trade, buyer, rent_receiver } = ix.accounts;
    let program_id = ix.program_id;

    let (oracle, grace) = {
        let state = Market::load(market, program_id)?;
        (state.oracle_authority, state.cancel_grace_secs)
    };
    let pending = Trade::read(trade, program_id, offer.key())?;
    let now = now()?;
    let after_deadline = now > pending.deadline;
    if *caller.key() != oracle {
        if !after_deadline {
            return Err(NishatiError::TradeDeadlineNotReached.into());
        }
        let grace_ends = i64::try_from(grace)
            .ok()
            .and_then(|g| pending.deadline.checked_add(g))
            .ok_or(NishatiError::ArithmeticOverflow)?;
        if now <= grace_ends {
            return Err(NishatiError::TradeInGracePeriod.into());
        }
    }
    if pending.buyer != *buyer.key() {
        return Err(NishatiError::InvalidHouseholdAddress.into());
    }
    if pending.rent_payer != *rent_receiver.key() {
        return Err(NishatiError::InvalidRentReceiver.into());
    }
    Household::load_mut(buyer, program_id, market.key())?.close_trade()?;
    {
        let mut state = Offer::load_mut(offer, program_id, market.key())?;
        state.reserved_wh = state
            .reserved_wh
            .checked_sub(pending.wh)
            .ok_or(NishatiError::EscrowInvariantViolated)?;
        state.unreserved_wh =
            state.unreserved_wh.checked_add(pending.wh).ok_or(NishatiError::ArithmeticOverflow)?;
    }
    accounts::close(trade, rent_receiver)?;

    TradeCancelled {
        trade: *trade.key(),
        offer: *offer.key(),
        buyer: pending.buyer,
        wh: pending.wh,
        after_deadline,
    }
    .emit();
    Ok(())
}
