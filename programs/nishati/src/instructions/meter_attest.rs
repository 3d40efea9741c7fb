//! `meter_attest`: the oracle submits signed meter readings; each mints its household's new
//! export as energy tokens.
//!
//! The oracle cannot invent energy: each reading must be signed by the household's registered
//! meter, and the program finds that signature in an Ed25519-program instruction of the same
//! transaction whose every offset it pins (the pattern of Pyth lazer's verifier).

use pinocchio::{
    pubkey::{pubkey_eq, Pubkey},
    sysvars::instructions::{Instructions, INSTRUCTIONS_ID},
    ProgramResult,
};
use pinocchio_token::instructions::MintTo;

use crate::{
    accounts,
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::MeterAttested,
    instruction_discriminator,
    instructions::{now, AccountSpec, Context},
    pda::{self, MARKET_SEED},
    reading::{ed25519, Baseline, Reading},
    state::{household::Household, market::Market},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("meter_attest");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("oracle", false, true),
    ("market", false, false),
    ("energy_mint", true, false),
    ("instructions_sysvar", false, false),
    ("token_program", false, false),
];

const ED25519_PROGRAM_ID: Pubkey =
    pinocchio_pubkey::pubkey!("Ed25519SigVerify111111111111111111111111111");

/// Args: `ed25519_instruction_index: u8`. Remaining accounts: per reading, the household and
/// its energy token account, in the order of the Ed25519 instruction's signatures.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [oracle, market, energy_mint, instructions_sysvar, token_program, readings @ ..] = accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    let mut args = ArgReader::new(data);
    let ed25519_index = args.u8()? as usize;
    args.finish()?;

    accounts::writable(energy_mint)?;
    accounts::token_program(token_program)?;
    if !pubkey_eq(instructions_sysvar.key(), &INSTRUCTIONS_ID) {
        return Err(NishatiError::InvalidInstructionsSysvar.into());
    }
    let (id_bytes, market_bump) = {
        let state = Market::load(market, program_id)?;
        state.check_oracle(oracle)?;
        state.check_mint(energy_mint)?;
        (state.market_id.to_le_bytes(), state.bump)
    };

    let sysvar = Instructions::try_from(instructions_sysvar)?;
    if ed25519_index >= sysvar.load_current_index() as usize {
        return Err(NishatiError::MissingEd25519Instruction.into());
    }
    let instruction = sysvar
        .load_instruction_at(ed25519_index)
        .map_err(|_| NishatiError::MissingEd25519Instruction)?;
    if !pubkey_eq(instruction.get_program_id(), &ED25519_PROGRAM_ID) {
        return Err(NishatiError::MissingEd25519Instruction.into());
    }
    let signatures = instruction.get_instruction_data();
    let count = ed25519::count(signatures)?;
    if readings.len() != 2 * count {
        return Err(NishatiError::AttestAccountsMismatch.into());
    }
    let now = now()?;

    for (i, pair) in readings.chunks_exact(2).enumerate() {
        let [household, energy_account] = pair else {
            return Err(NishatiError::AttestAccountsMismatch.into());
        };
        accounts::writable(energy_account)?;
        let signed = ed25519::reading(signatures, count, i)?;
        let reading = Reading::parse(signed.message, market.key())?;
        let minted = {
            let mut home = Household::load_mut(household, program_id, market.key())?;
            home.check_energy_account(energy_account)?;
            if home.meter != *signed.public_key {
                return Err(NishatiError::MeterMismatch.into());
            }
            let baseline = Baseline {
                counter: home.last_counter,
                exported_wh: home.meter_exported_wh,
                imported_wh: home.meter_imported_wh,
            };
            let has_baseline = home.has_baseline == 1;
            let minted = reading.check_progress(
                has_baseline.then_some(&baseline),
                home.last_timestamp,
                now,
            )?;
            let imported =
                if has_baseline { reading.imported_wh - baseline.imported_wh } else { 0 };
            home.total_exported_wh = home
                .total_exported_wh
                .checked_add(minted)
                .ok_or(NishatiError::ArithmeticOverflow)?;
            home.total_imported_wh = home
                .total_imported_wh
                .checked_add(imported)
                .ok_or(NishatiError::ArithmeticOverflow)?;
            home.last_counter = reading.counter;
            home.last_timestamp = reading.timestamp;
            home.meter_exported_wh = reading.exported_wh;
            home.meter_imported_wh = reading.imported_wh;
            home.has_baseline = 1;
            minted
        };
        if minted > 0 {
            pda::sign_with(&[MARKET_SEED, &id_bytes], market_bump, |signers| {
                let mint_authority = market;
                MintTo {
                    mint: energy_mint,
                    account: energy_account,
                    mint_authority,
                    amount: minted,
                }
                .invoke_signed(signers)
            })?;
        }
        MeterAttested {
            household: *household.key(),
            meter: *signed.public_key,
            counter: reading.counter,
            timestamp: reading.timestamp,
            exported_wh: reading.exported_wh,
            imported_wh: reading.imported_wh,
            minted_wh: minted,
        }
        .emit();
    }
    Ok(())
}
