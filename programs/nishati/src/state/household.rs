//! The Household account: a home with a meter, and what its meter has reported.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, RefMut},
    program_error::ProgramError,
    pubkey::Pubkey,
};

use crate::{
    account_discriminator, accounts,
    discriminator::Discriminator,
    error::NishatiError,
    pda::{self, HOUSEHOLD_SEED},
    state::{self, market::Market, AccountData},
};

/// PDA `["household", market, owner]`. Its energy token account `["energy", household]` has the
/// household PDA as token authority, so only this program moves a household's energy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Household {
    pub discriminator: Discriminator,
    pub market: Pubkey,
    pub owner: Pubkey,
    pub meter: Pubkey,
    /// SHA-256 of a secret salt and the M-Pesa phone: the phone itself never goes on chain.
    pub phone_commitment: [u8; 32],
    pub energy_account: Pubkey,
    pub last_counter: u64,
    pub last_timestamp: i64,
    pub meter_exported_wh: u64,
    pub meter_imported_wh: u64,
    pub total_exported_wh: u64,
    pub total_imported_wh: u64,
    pub redeemed_wh: u64,
    pub next_offer_id: u64,
    pub bump: u8,
    pub energy_bump: u8,
    /// 1: the household has no wallet and the oracle authority acts for it.
    pub custodial: u8,
    /// 1: a reading of the current meter was accepted, so the next one mints the difference.
    pub has_baseline: u8,
    pub reserved: [u8; 28],
}

const _: () = {
    assert!(size_of::<Household>() == 264);
    assert!(offset_of!(Household, last_counter) == 168);
    assert!(offset_of!(Household, bump) == 232);
    assert!(offset_of!(Household, reserved) == 236);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Household {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Household");
}

impl Household {
    /// Loads a household of `market` for writing and proves its address.
    #[inline(always)]
    pub fn load_mut<'a>(
        account: &'a AccountInfo,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<RefMut<'a, Self>, ProgramError> {
        let household = state::load_mut::<Self>(account, program_id)?;
        household.check(account.key(), program_id, market)?;
        Ok(household)
    }

    /// Reads a household of `market` and proves its address; the copy leaves no borrow behind,
    /// so the account can sign a token CPI afterwards.
    #[inline(always)]
    pub fn read(
        account: &AccountInfo,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<Self, ProgramError> {
        let household = *state::load::<Self>(account, program_id)?;
        household.check(account.key(), program_id, market)?;
        Ok(household)
    }

    #[inline(always)]
    fn check(
        &self,
        key: &Pubkey,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<(), NishatiError> {
        if self.market != *market {
            return Err(NishatiError::WrongMarket);
        }
        pda::check(
            &[HOUSEHOLD_SEED, &self.market, &self.owner],
            self.bump,
            program_id,
            key,
            NishatiError::InvalidHouseholdAddress,
        )
    }

    /// The owner signs for a household with a wallet; the oracle for a custodial one.
    pub fn check_authority(
        &self,
        authority: &AccountInfo,
        market: &Market,
    ) -> Result<(), NishatiError> {
        accounts::signer(authority)?;
        let allowed = if self.custodial == 1 { &market.oracle_authority } else { &self.owner };
        if allowed == authority.key() {
            Ok(())
        } else {
            Err(NishatiError::NotHouseholdAuthority)
        }
    }

    pub fn check_energy_account(&self, account: &AccountInfo) -> Result<(), NishatiError> {
        if self.energy_account == *account.key() {
            Ok(())
        } else {
            Err(NishatiError::InvalidEnergyAccount)
        }
    }
}
