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
    /// The installer who vouched for the current meter.
    pub installer: Pubkey,
    /// SHA-256 of a secret salt and the M-Pesa phone: the phone itself never goes on chain.
    pub phone_commitment: [u8; 32],
    pub energy_account: Pubkey,
    pub last_counter: u64,
    /// The meter's own clock at its last accepted reading.
    pub last_timestamp: i64,
    /// Chain time the current meter was registered: readings dated earlier are refused.
    pub meter_since: i64,
    /// Chain time of the meter's last accepted reading, or of its registration: the export
    /// limit is reckoned over chain time from here, never over the meter's own timestamps.
    pub last_attested_at: i64,
    pub meter_exported_wh: u64,
    pub meter_imported_wh: u64,
    pub total_exported_wh: u64,
    pub total_imported_wh: u64,
    pub redeemed_wh: u64,
    pub next_offer_id: u64,
    /// Pending trades this household is the buyer of.
    pub open_trades: u16,
    pub bump: u8,
    pub energy_bump: u8,
    /// 1: the household has no wallet and the oracle authority acts for it.
    custodial: u8,
    /// 1: a reading of the current meter was accepted, so the next one mints the difference.
    has_baseline: u8,
    pub reserved: [u8; 26],
}

const _: () = {
    assert!(size_of::<Household>() == 312);
    assert!(offset_of!(Household, last_counter) == 200);
    assert!(offset_of!(Household, open_trades) == 280);
    assert!(offset_of!(Household, reserved) == 286);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Household {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Household");
    const FIELDS: &'static [(&'static str, usize)] = crate::fields!(Household: market, owner, meter, installer, phone_commitment, energy_account, last_counter, last_timestamp, meter_since, last_attested_at, meter_exported_wh, meter_imported_wh, total_exported_wh, total_imported_wh, redeemed_wh, next_offer_id, open_trades, bump, energy_bump, custodial, has_baseline, reserved);
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
        let allowed = if self.is_custodial() { &market.oracle_authority } else { &self.owner };
        if allowed == authority.key() {
            Ok(())
        } else {
            Err(NishatiError::NotHouseholdAuthority)
        }
    }

    pub fn is_custodial(&self) -> bool {
        self.custodial == 1
    }

    pub fn set_custodial(&mut self, custodial: bool) {
        self.custodial = custodial as u8;
    }

    pub fn has_baseline(&self) -> bool {
        self.has_baseline == 1
    }

    pub fn set_has_baseline(&mut self, has_baseline: bool) {
        self.has_baseline = has_baseline as u8;
    }

    /// A new meter takes over: it counts from its own zero, its first reading is a baseline,
    /// and readings it signed before `now` (chain time) never count.
    pub fn install_meter(&mut self, meter: &Pubkey, installer: &Pubkey, now: i64) {
        self.meter = *meter;
        self.installer = *installer;
        self.meter_since = now;
        self.last_attested_at = now;
        self.has_baseline = 0;
        self.last_counter = 0;
        self.meter_exported_wh = 0;
        self.meter_imported_wh = 0;
    }

    /// Counts a trade this household opens as buyer, within the market's limit.
    pub fn open_trade(&mut self, market: &Market) -> Result<(), NishatiError> {
        if self.open_trades >= market.max_open_trades_per_buyer {
            return Err(NishatiError::TooManyOpenTrades);
        }
        self.open_trades += 1;
        Ok(())
    }

    /// A trade this household bought through was settled or cancelled.
    pub fn close_trade(&mut self) -> Result<(), NishatiError> {
        self.open_trades =
            self.open_trades.checked_sub(1).ok_or(NishatiError::OpenTradeCountCorrupt)?;
        Ok(())
    }

    pub fn check_energy_account(&self, account: &AccountInfo) -> Result<(), NishatiError> {
        if self.energy_account == *account.key() {
            Ok(())
        } else {
            Err(NishatiError::InvalidEnergyAccount)
        }
    }
}
