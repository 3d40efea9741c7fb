//! `trade_cancel`: a failed or overdue payment gives the reserved energy back to the offer.

use pinocchio::ProgramResult;

use crate::{
    accounts,
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::TradeCancelled,
    instruction_discriminator,
    instructions::{now, AccountSpec, Context},
    state::{market::Market, offer::Offer, trade::Trade},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("trade_cancel");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("caller", false, true),
    ("market", false, false),
    ("offer", true, false),
    ("trade", true, false),
    ("rent_receiver", true, false),
];

pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [caller, market, offer, trade, rent_receiver, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    ArgReader::new(data).finish()?;
    accounts::signer(caller)?;
    accounts::writable(trade)?;

    let oracle = Market::load(market, program_id)?.oracle_authority;
    let pending = Trade::read(trade, program_id, offer.key())?;
    let after_deadline = now()? > pending.deadline;
    // The oracle knows when a payment failed; anyone else must wait out the deadline.
    if *caller.key() != oracle && !after_deadline {
        return Err(NishatiError::TradeDeadlineNotReached.into());
    }
    if pending.rent_payer != *rent_receiver.key() {
        return Err(NishatiError::InvalidRentReceiver.into());
    }
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
