//! `market_pause` and `market_resume`: the admin stops and restarts new offers and trades.
//! Pending trades settle either way, so a pause never strands a buyer who has paid.

use pinocchio::ProgramResult;

use crate::{
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::{MarketPaused, MarketResumed},
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    state::market::Market,
};

pub const PAUSE_DISCRIMINATOR: Discriminator = instruction_discriminator!("market_pause");
pub const RESUME_DISCRIMINATOR: Discriminator = instruction_discriminator!("market_resume");

pub const ACCOUNTS: &[AccountSpec] = &[("admin", false, true), ("market", true, false)];

pub fn process(ctx: &Context, pause: bool) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [admin, market, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    ArgReader::new(data).finish()?;
    let mut state = Market::load_mut(market, program_id)?;
    state.check_admin(admin)?;
    match (pause, state.paused) {
        (true, 1) => return Err(NishatiError::MarketPaused.into()),
        (false, 0) => return Err(NishatiError::MarketNotPaused.into()),
        _ => state.paused = pause as u8,
    }
    if pause {
        MarketPaused { market: *market.key(), admin: *admin.key() }.emit();
    } else {
        MarketResumed { market: *market.key(), admin: *admin.key() }.emit();
    }
    Ok(())
}
