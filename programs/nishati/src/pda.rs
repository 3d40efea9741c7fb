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

use pinocchio::pubkey::Pubkey;
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
