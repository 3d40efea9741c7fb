//! `market_pause` and `market_resume`: the admin stops and restarts new offers and trades.
//! Pending trades settle either way, so a pause never strands a buyer who has paid.

use pinocchio::ProgramResult;

use crate::{
    args::NoArgs,
    error::NishatiError,
    events::{MarketPaused, MarketResumed},
    instructions::Ix,
    state::market::Market,
};

crate::accounts! {
    /// The accounts of the admin's market instructions.
    pub struct AdminAccounts {
        admin: Signer,
        market: Writable,
    }
}

pub fn pause(ix: &Ix<AdminAccounts, NoArgs>) -> ProgramResult {
    set_paused(ix, true)
}

pub fn resume(ix: &Ix<AdminAccounts, NoArgs>) -> ProgramResult {
    set_paused(ix, false)
}

#[inline(always)]
fn set_paused(ix: &Ix<AdminAccounts, NoArgs>, pause: bool) -> ProgramResult {
    let AdminAccounts { admin, market } = ix.accounts;
    let mut state = Market::load_mut(market, ix.program_id)?;
    state.check_admin(admin)?;
    match (pause, state.is_paused()) {
        (true, true) => return Err(NishatiError::MarketPaused.into()),
        (false, false) => return Err(NishatiError::MarketNotPaused.into()),
        _ => state.set_paused(pause),
    }
    if pause {
        MarketPaused { market: *market.key(), admin: *admin.key() }.emit();
    } else {
        MarketResumed { market: *market.key(), admin: *admin.key() }.emit();
    }
    Ok(())
}
