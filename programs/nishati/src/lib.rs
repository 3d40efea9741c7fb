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

use crate::error::NishatiError;

pinocchio_pubkey::declare_id!("Nsh27qSPs4i4mV5fyntqJsoNr9aXoLxkQeFfvvHUnJQ");

#[cfg(not(feature = "no-entrypoint"))]
mod entrypoint {
    pinocchio::program_entrypoint!(crate::process_instruction);
    pinocchio::no_allocator!();
    pinocchio::nostd_panic_handler!();
}

/// Routes on the 8-byte discriminator (the instruction table in `instructions`) and logs a
/// failure as Anchor does.
pub fn process_instruction(
    program_id: &Pubkey,
    accounts: &[AccountInfo],
    data: &[u8],
) -> ProgramResult {
    let result = instructions::dispatch(program_id, accounts, data);
    if let Err(ProgramError::Custom(code)) = result {
        if let Some(error) = NishatiError::from_code(code) {
            sol_log(error.log_line());
        }
    }
    result
}
