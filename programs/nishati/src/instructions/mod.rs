//! One module per instruction, named `<noun>_<verb>` as the IDL names it. Each exports its
//! discriminator, its account list (checked against the IDL) and `process`.

pub mod energy_redeem;
pub mod household_register;
pub mod household_set_meter;
pub mod market_initialize;
pub mod market_pause;
pub mod market_update;
pub mod meter_attest;
pub mod offer_cancel;
pub mod offer_create;
pub mod trade_cancel;
pub mod trade_open;
pub mod trade_settle;

use pinocchio::{
    account_info::AccountInfo,
    program_error::ProgramError,
    pubkey::Pubkey,
    sysvars::{clock::Clock, Sysvar},
};

/// What every instruction handler gets, behind one pointer: LLVM 22's BPF backend refuses
/// calls with more than 5 arguments, and three slices and a key passed apart would make 6.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub program_id: &'a Pubkey,
    pub accounts: &'a [AccountInfo],
    /// Instruction data after the 8-byte discriminator.
    pub data: &'a [u8],
}

/// An instruction account as the IDL lists it: name, writable, signer.
pub type AccountSpec = (&'static str, bool, bool);

/// The cluster clock's Unix time.
#[inline(always)]
pub fn now() -> Result<i64, ProgramError> {
    Ok(Clock::get()?.unix_timestamp)
}
