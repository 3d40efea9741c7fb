//! `meter_attest`: the oracle submits signed meter readings; each mints its household's new
//! export as energy tokens.
//!
//! The oracle cannot invent energy: each reading must be signed by the household's registered
//! meter, and the program finds that signature in an Ed25519-program instruction of the same
//! transaction whose every offset it pins (the pattern of Pyth lazer's verifier). Nor can a
//! meter key mint without bound: what one reading mints is capped by the market's export limit
//! over the chain time since the meter's last attestation, and what the market mints in a day
//! by its daily cap.

use pinocchio::{sysvars::instructions::Instructions, ProgramResult};
use pinocchio_token::instructions::MintTo;

use crate::{
    error::NishatiError,
    events::{MeterAttested, MintCeilingHit},
    instructions::{now, Ix},
    pda::{self, MARKET_SEED},
    reading::{ed25519, Baseline, Reading, READING_LEN},
    state::{
        household::Household,
        market::{Market, SECS_PER_DAY, SECS_PER_HOUR},
    },
};

crate::accounts! {
    pub struct MeterAttestAccounts {
        oracle: Signer,
        market: Writable,
        energy_mint: Writable,
        instructions_sysvar: InstructionsSysvar,
        token_program: TokenProgram,
    }
}

crate::args! {
    pub struct MeterAttest { ed25519_instruction_index: u8 }
}

/// The most `meter_exported_wh` may rise over `elapsed_secs` of chain time at `max_watts`.
#[inline(always)]
pub fn export_allowance_wh(max_watts: u64, elapsed_secs: i64) -> u64 {
    let elapsed = u64::try_from(elapsed_secs).unwrap_or(0);
    max_watts.saturating_mul(elapsed) / SECS_PER_HOUR
}

/// Remaining accounts: per reading, the household and its energy token account, in the order
/// of the Ed25519 instruction's signatures.
pub fn process(ix: &Ix<MeterAttestAccounts, MeterAttest>) -> ProgramResult {
    let MeterAttestAccounts { oracle, market, energy_mint, instructions_sysvar, .. } = ix.accounts;
    let program_id = ix.program_id;
    let market_state = *Market::load(market, program_id)?;
    market_state.check_oracle(oracle)?;
    market_state.check_mint(energy_mint)?;
    let id_bytes = market_state.market_id.to_le_bytes();

    let sysvar = Instructions::try_from(instructions_sysvar)?;
    let instruction = ed25519::instruction(&sysvar, ix.args.ed25519_instruction_index as usize)?;
    let signatures = instruction.get_instruction_data();
    let count = ed25519::count(signatures, READING_LEN)?;
    if ix.remaining.len() != 2 * count {
        return Err(NishatiError::AttestAccountsMismatch.into());
    }
    let now = now()?;
    let day = now.div_euclid(SECS_PER_DAY);
    let mut minted_today = market_state.minted_on(day);

    for (i, pair) in ix.remaining.chunks_exact(2).enumerate() {
        let [household, energy_account] = pair else {
            return Err(NishatiError::AttestAccountsMismatch.into());
        };
        if !energy_account.is_writable() {
            return Err(NishatiError::AccountNotWritable.into());
        }
        let signed = ed25519::signed(signatures, READING_LEN, count, i)?;
        let reading = Reading::parse(signed.message, market.key())?;
        let minted = {
            let mut home = Household::load_mut(household, program_id, market.key())?;
            home.check_energy_account(energy_account)?;
            if home.meter != *signed.public_key {
                return Err(NishatiError::MeterMismatch.into());
            }
            if reading.timestamp < home.meter_since {
                return Err(NishatiError::ReadingBeforeMeterRegistered.into());
            }
            let baseline = Baseline {
                counter: home.last_counter,
                exported_wh: home.meter_exported_wh,
                imported_wh: home.meter_imported_wh,
            };
            let has_baseline = home.has_baseline();
            let minted = reading.check_progress(
                has_baseline.then_some(&baseline),
                home.last_timestamp,
                now,
            )?;
            let allowance =
                export_allowance_wh(market_state.max_export_watts, now - home.last_attested_at);
            if minted > allowance {
                return Err(NishatiError::ExportAboveMeterLimit.into());
            }
            let total = minted_today.checked_add(minted).ok_or(NishatiError::ArithmeticOverflow)?;
            if total > market_state.daily_mint_cap_wh {
                MintCeilingHit {
                    market: *market.key(),
                    household: *household.key(),
                    day,
                    minted_today_wh: minted_today,
                    daily_mint_cap_wh: market_state.daily_mint_cap_wh,
                    refused_wh: minted,
                }
                .emit();
                return Err(NishatiError::MintCeilingReached.into());
            }
            minted_today = total;
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
            home.last_attested_at = now;
            home.meter_exported_wh = reading.exported_wh;
            home.meter_imported_wh = reading.imported_wh;
            home.set_has_baseline(true);
            minted
        };
        if minted > 0 {
            pda::sign_with(&[MARKET_SEED, &id_bytes], market_state.bump, |signers| {
                MintTo {
                    mint: energy_mint,
                    account: energy_account,
                    mint_authority: market,
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

    let mut state = Market::load_mut(market, program_id)?;
    state.mint_day = day;
    state.minted_today_wh = minted_today;
    Ok(())
}
