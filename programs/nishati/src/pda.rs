//! Every PDA seed the program uses, in one place; `nishati_client/pda.py` mirrors this module.
//!
//! | account | seeds |
//! |---|---|
//! | Market | `"market"`, market id (u64 LE) |
//! | energy mint | `"mint"`, market |
//! | Household | `"household"`, market, owner |
//! | energy token account | `"energy"`, household |
//! | MeterRecord | `"meter"`, market, meter key |
//! | Offer | `"offer"`, household, offer id (u64 LE) |
//! | escrow token account | `"escrow"`, offer |
//! | Trade | `"trade"`, offer, payment reference hash |

use pinocchio::{
    account_info::AccountInfo,
    instruction::{Seed, Signer},
    pubkey::{find_program_address, Pubkey},
};
use pinocchio_pubkey::derive_address;

use crate::error::NishatiError;

pub const MARKET_SEED: &[u8] = b"market";
pub const MINT_SEED: &[u8] = b"mint";
pub const HOUSEHOLD_SEED: &[u8] = b"household";
pub const ENERGY_SEED: &[u8] = b"energy";
pub const METER_SEED: &[u8] = b"meter";
pub const OFFER_SEED: &[u8] = b"offer";
pub const ESCROW_SEED: &[u8] = b"escrow";
pub const TRADE_SEED: &[u8] = b"trade";
pub const INSTALLER_SEED: &[u8] = b"installer";

/// Checks that `key` is the PDA of `seeds` with the bump stored when the account was created.
///
/// Hashes with the `sol_sha256` syscall (about 100 CU) rather than `create_program_address`
/// (1,500 CU): the curve check that the latter adds was already passed when the account was
/// created at this address.
#[inline(always)]
pub fn check<const N: usize>(
    seeds: &[&[u8]; N],
    bump: u8,
    program_id: &Pubkey,
    key: &Pubkey,
    error: NishatiError,
) -> Result<(), NishatiError> {
    if derive_address(seeds, Some(bump), program_id) == *key {
        Ok(())
    } else {
        Err(error)
    }
}

/// Finds the canonical bump of `seeds` and checks that `account` is that PDA. Creation always
/// uses the canonical bump, so no account can exist twice under other bumps.
#[inline(always)]
pub fn find(
    seeds: &[&[u8]],
    program_id: &Pubkey,
    account: &AccountInfo,
    error: NishatiError,
) -> Result<u8, NishatiError> {
    let (address, bump) = find_program_address(seeds, program_id);
    if address == *account.key() {
        Ok(bump)
    } else {
        Err(error)
    }
}

/// Most seeds any PDA here has, before the bump.
const MAX_SEEDS: usize = 3;

/// Runs `f` with the signer of the PDA `seeds ‖ [bump]`, for `invoke_signed`.
#[inline(always)]
pub fn sign_with<R>(seeds: &[&[u8]], bump: u8, f: impl FnOnce(&[Signer]) -> R) -> R {
    let bump = [bump];
    let empty: &[u8] = &[];
    let mut all = [Seed::from(empty), Seed::from(empty), Seed::from(empty), Seed::from(empty)];
    let used = seeds.len().min(MAX_SEEDS);
    for (slot, seed) in all.iter_mut().zip(seeds[..used].iter().copied().chain([&bump[..]])) {
        *slot = Seed::from(seed);
    }
    f(&[Signer::from(&all[..used + 1])])
}
