//! Nishati: a peer-to-peer solar energy market on Solana.
//!
//! Written with pinocchio and zero-copy accounts so that it builds offline with LLVM 22's BPF
//! backend (see README.md for the rules that keeps), with Anchor's interface: 8-byte sighash
//! discriminators, Anchor account and event encodings, error codes from 6000, and an Anchor IDL
//! in `idl/nishati.json` that `tests/idl.rs` holds to this source.
#![no_std]

pub mod accounts;
pub mod args;
pub mod discriminator;
pub mod error;
pub mod events;
pub mod instructions;
pub mod pda;
pub mod reading;
pub mod state;

use pinocchio::{
    account_info::AccountInfo, log::sol_log, program_error::ProgramError, pubkey::Pubkey,
    ProgramResult,
};

use crate::{error::NishatiError, instructions::*};

pinocchio_pubkey::declare_id!("Nsh27qSPs4i4mV5fyntqJsoNr9aXoLxkQeFfvvHUnJQ");

#[cfg(not(feature = "no-entrypoint"))]
mod entrypoint {
    pinocchio::program_entrypoint!(crate::process_instruction);
    pinocchio::no_allocator!();
    pinocchio::nostd_panic_handler!();
}

/// Routes on the 8-byte discriminator and logs a failure as Anchor does.
pub fn process_instruction(
    program_id: &Pubkey,
    accounts: &[AccountInfo],
    data: &[u8],
) -> ProgramResult {
    let result = dispatch(program_id, accounts, data);
    if let Err(ProgramError::Custom(code)) = result {
        if let Some(error) = NishatiError::from_code(code) {
            sol_log(error.log_line());
        }
    }
    result
}

#[inline(always)]
fn dispatch(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> ProgramResult {
    let Some((discriminator, args)) = data.split_first_chunk::<8>() else {
        return Err(NishatiError::UnknownInstruction.into());
    };
    let ctx = Context { program_id, accounts, data: args };
    match *discriminator {
        market_initialize::DISCRIMINATOR => market_initialize::process(&ctx),
        market_update::DISCRIMINATOR => market_update::process(&ctx),
        market_pause::PAUSE_DISCRIMINATOR => market_pause::process(&ctx, true),
        market_pause::RESUME_DISCRIMINATOR => market_pause::process(&ctx, false),
        household_register::DISCRIMINATOR => household_register::process(&ctx),
        household_set_meter::DISCRIMINATOR => household_set_meter::process(&ctx),
        meter_attest::DISCRIMINATOR => meter_attest::process(&ctx),
        offer_create::DISCRIMINATOR => offer_create::process(&ctx),
        offer_cancel::DISCRIMINATOR => offer_cancel::process(&ctx),
        trade_open::DISCRIMINATOR => trade_open::process(&ctx),
        trade_settle::DISCRIMINATOR => trade_settle::process(&ctx),
        trade_cancel::DISCRIMINATOR => trade_cancel::process(&ctx),
        energy_redeem::DISCRIMINATOR => energy_redeem::process(&ctx),
        _ => Err(NishatiError::UnknownInstruction.into()),
    }
}
