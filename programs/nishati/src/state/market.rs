//! The Market account: who runs the market and the rules every offer and trade must follow.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, Ref, RefMut},
    program_error::ProgramError,
    pubkey::Pubkey,
};

use crate::{
    account_discriminator, accounts,
    args::{Arg, ArgReader},
    discriminator::Discriminator,
    error::NishatiError,
    events::EventWriter,
    pda::{self, MARKET_SEED},
    state::{self, AccountData},
};

/// 100 % in basis points.
pub const MAX_FEE_BPS: u16 = 10_000;
/// Shortest payment window: an STK Push prompt alone can take a minute to answer.
pub const MIN_PAYMENT_DEADLINE_SECS: u64 = 60;
/// Longest payment window: a day, so escrowed energy is never locked for long.
pub const MAX_PAYMENT_DEADLINE_SECS: u64 = 86_400;
/// The cancel grace's bounds: long enough for a late M-Pesa callback, short enough that energy
/// of an unpaid trade comes back the same day.
pub const MIN_CANCEL_GRACE_SECS: u64 = 60;
pub const MAX_CANCEL_GRACE_SECS: u64 = 86_400;
/// Highest export limit a market may set: 100 MW, a power plant's worth, far above any home. A
/// sanity bound on the setting; the market's own limit is what bounds a meter.
pub const MAX_EXPORT_WATTS_LIMIT: u64 = 100_000_000;
/// Seconds in a day of the chain clock, the period of the daily mint cap.
pub const SECS_PER_DAY: i64 = 86_400;
/// Seconds per hour: Wh = W × s / 3600.
pub const SECS_PER_HOUR: u64 = 3_600;

/// The settings an admin chooses, at initialisation and on update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketConfig {
    pub oracle_authority: Pubkey,
    pub fee_bps: u16,
    pub min_price_cents_per_kwh: u64,
    pub max_price_cents_per_kwh: u64,
    pub payment_deadline_secs: u64,
    pub cancel_grace_secs: u64,
    pub max_export_watts: u64,
    pub daily_mint_cap_wh: u64,
    pub max_open_trades_per_buyer: u16,
}

impl Arg for MarketConfig {
    const IDL_TYPE: &'static str = "MarketConfig";

    #[inline(always)]
    fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
        Ok(Self {
            oracle_authority: args.pubkey()?,
            fee_bps: args.u16()?,
            min_price_cents_per_kwh: args.u64()?,
            max_price_cents_per_kwh: args.u64()?,
            payment_deadline_secs: args.u64()?,
            cancel_grace_secs: args.u64()?,
            max_export_watts: args.u64()?,
            daily_mint_cap_wh: args.u64()?,
            max_open_trades_per_buyer: args.u16()?,
        })
    }
}

impl MarketConfig {
    /// Borsh size: 32 + 2 + 8 × 6 + 2.
    pub const LEN: usize = 84;

    #[inline(always)]
    pub fn write<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.bytes(&self.oracle_authority);
        w.u16(self.fee_bps);
        w.u64(self.min_price_cents_per_kwh);
        w.u64(self.max_price_cents_per_kwh);
        w.u64(self.payment_deadline_secs);
        w.u64(self.cancel_grace_secs);
        w.u64(self.max_export_watts);
        w.u64(self.daily_mint_cap_wh);
        w.u16(self.max_open_trades_per_buyer);
    }

    /// The rules a market's settings must keep, checked before every write.
    pub fn validate(&self) -> Result<(), NishatiError> {
        if self.oracle_authority == [0; 32] {
            return Err(NishatiError::InvalidOracleAuthority);
        }
        if self.fee_bps > MAX_FEE_BPS {
            return Err(NishatiError::FeeTooHigh);
        }
        if self.min_price_cents_per_kwh == 0 {
            return Err(NishatiError::ZeroPrice);
        }
        if self.min_price_cents_per_kwh > self.max_price_cents_per_kwh {
            return Err(NishatiError::PriceBoundsReversed);
        }
        if !(MIN_PAYMENT_DEADLINE_SECS..=MAX_PAYMENT_DEADLINE_SECS)
            .contains(&self.payment_deadline_secs)
        {
            return Err(NishatiError::InvalidPaymentDeadline);
        }
        if !(MIN_CANCEL_GRACE_SECS..=MAX_CANCEL_GRACE_SECS).contains(&self.cancel_grace_secs) {
            return Err(NishatiError::InvalidCancelGrace);
        }
        if !(1..=MAX_EXPORT_WATTS_LIMIT).contains(&self.max_export_watts) {
            return Err(NishatiError::InvalidMaxExport);
        }
        if self.daily_mint_cap_wh == 0 {
            return Err(NishatiError::InvalidMintCap);
        }
        if self.max_open_trades_per_buyer == 0 {
            return Err(NishatiError::InvalidOpenTradeLimit);
        }
        Ok(())
    }
}

/// PDA `["market", market_id as u64 LE]`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Market {
    pub discriminator: Discriminator,
    pub admin: Pubkey,
    pub oracle_authority: Pubkey,
    /// SPL Token mint of the market's energy, PDA `["mint", market]`; 1 unit = 1 Wh.
    pub energy_mint: Pubkey,
    pub market_id: u64,
    pub min_price_cents_per_kwh: u64,
    pub max_price_cents_per_kwh: u64,
    pub payment_deadline_secs: u64,
    pub cancel_grace_secs: u64,
    pub max_export_watts: u64,
    pub daily_mint_cap_wh: u64,
    /// The chain-clock day (`unix_timestamp.div_euclid(86400)`) that `minted_today_wh` counts.
    pub mint_day: i64,
    pub minted_today_wh: u64,
    pub fee_bps: u16,
    pub max_open_trades_per_buyer: u16,
    /// 0 or 1; a `bool` in the IDL, read through `is_paused`.
    paused: u8,
    pub bump: u8,
    pub mint_bump: u8,
    /// Room for fields later issues add, so the account never needs a realloc to grow.
    pub reserved: [u8; 25],
}

const _: () = {
    assert!(size_of::<Market>() == 208);
    assert!(offset_of!(Market, admin) == 8);
    assert!(offset_of!(Market, market_id) == 104);
    assert!(offset_of!(Market, fee_bps) == 176);
    assert!(offset_of!(Market, reserved) == 183);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Market {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Market");
    const FIELDS: &'static [(&'static str, usize)] = crate::fields!(Market: admin, oracle_authority, energy_mint, market_id, min_price_cents_per_kwh, max_price_cents_per_kwh, payment_deadline_secs, cancel_grace_secs, max_export_watts, daily_mint_cap_wh, mint_day, minted_today_wh, fee_bps, max_open_trades_per_buyer, paused, bump, mint_bump, reserved);
}

impl Market {
    /// Loads a market and proves it is the PDA of its id.
    #[inline(always)]
    pub fn load<'a>(
        account: &'a AccountInfo,
        program_id: &Pubkey,
    ) -> Result<Ref<'a, Self>, ProgramError> {
        let market = state::load::<Self>(account, program_id)?;
        market.check_address(account.key(), program_id)?;
        Ok(market)
    }

    #[inline(always)]
    pub fn load_mut<'a>(
        account: &'a AccountInfo,
        program_id: &Pubkey,
    ) -> Result<RefMut<'a, Self>, ProgramError> {
        let market = state::load_mut::<Self>(account, program_id)?;
        market.check_address(account.key(), program_id)?;
        Ok(market)
    }

    #[inline(always)]
    fn check_address(&self, key: &Pubkey, program_id: &Pubkey) -> Result<(), NishatiError> {
        let id = self.market_id.to_le_bytes();
        pda::check(
            &[MARKET_SEED, &id],
            self.bump,
            program_id,
            key,
            NishatiError::InvalidMarketAddress,
        )
    }

    pub fn is_paused(&self) -> bool {
        self.paused == 1
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused as u8;
    }

    pub fn check_admin(&self, admin: &AccountInfo) -> Result<(), NishatiError> {
        accounts::signer(admin)?;
        if self.admin == *admin.key() {
            Ok(())
        } else {
            Err(NishatiError::NotMarketAdmin)
        }
    }

    pub fn check_oracle(&self, oracle: &AccountInfo) -> Result<(), NishatiError> {
        accounts::signer(oracle)?;
        if self.oracle_authority == *oracle.key() {
            Ok(())
        } else {
            Err(NishatiError::NotOracle)
        }
    }

    pub fn check_open(&self) -> Result<(), NishatiError> {
        if self.is_paused() {
            Err(NishatiError::MarketPaused)
        } else {
            Ok(())
        }
    }

    pub fn check_mint(&self, mint: &AccountInfo) -> Result<(), NishatiError> {
        if self.energy_mint == *mint.key() {
            Ok(())
        } else {
            Err(NishatiError::InvalidEnergyMint)
        }
    }

    /// Wh minted so far on `day`: the count restarts when the chain clock's day turns.
    pub fn minted_on(&self, day: i64) -> u64 {
        if day == self.mint_day {
            self.minted_today_wh
        } else {
            0
        }
    }

    pub fn config(&self) -> MarketConfig {
        MarketConfig {
            oracle_authority: self.oracle_authority,
            fee_bps: self.fee_bps,
            min_price_cents_per_kwh: self.min_price_cents_per_kwh,
            max_price_cents_per_kwh: self.max_price_cents_per_kwh,
            payment_deadline_secs: self.payment_deadline_secs,
            cancel_grace_secs: self.cancel_grace_secs,
            max_export_watts: self.max_export_watts,
            daily_mint_cap_wh: self.daily_mint_cap_wh,
            max_open_trades_per_buyer: self.max_open_trades_per_buyer,
        }
    }

    pub fn set_config(&mut self, config: &MarketConfig) {
        self.oracle_authority = config.oracle_authority;
        self.fee_bps = config.fee_bps;
        self.min_price_cents_per_kwh = config.min_price_cents_per_kwh;
        self.max_price_cents_per_kwh = config.max_price_cents_per_kwh;
        self.payment_deadline_secs = config.payment_deadline_secs;
        self.cancel_grace_secs = config.cancel_grace_secs;
        self.max_export_watts = config.max_export_watts;
        self.daily_mint_cap_wh = config.daily_mint_cap_wh;
        self.max_open_trades_per_buyer = config.max_open_trades_per_buyer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MarketConfig {
        MarketConfig {
            oracle_authority: [1; 32],
            fee_bps: 100,
            min_price_cents_per_kwh: 1_500,
            max_price_cents_per_kwh: 4_000,
            payment_deadline_secs: 900,
            cancel_grace_secs: 600,
            max_export_watts: 10_000,
            daily_mint_cap_wh: 1_000_000,
            max_open_trades_per_buyer: 4,
        }
    }

    #[test]
    fn validate_names_each_broken_rule() {
        assert_eq!(config().validate(), Ok(()));
        let cases = [
            (
                MarketConfig { oracle_authority: [0; 32], ..config() },
                NishatiError::InvalidOracleAuthority,
            ),
            (MarketConfig { fee_bps: 10_001, ..config() }, NishatiError::FeeTooHigh),
            (MarketConfig { min_price_cents_per_kwh: 0, ..config() }, NishatiError::ZeroPrice),
            (
                MarketConfig { min_price_cents_per_kwh: 4_001, ..config() },
                NishatiError::PriceBoundsReversed,
            ),
            (
                MarketConfig { payment_deadline_secs: 59, ..config() },
                NishatiError::InvalidPaymentDeadline,
            ),
            (
                MarketConfig { payment_deadline_secs: 86_401, ..config() },
                NishatiError::InvalidPaymentDeadline,
            ),
            (MarketConfig { cancel_grace_secs: 59, ..config() }, NishatiError::InvalidCancelGrace),
            (
                MarketConfig { cancel_grace_secs: 86_401, ..config() },
                NishatiError::InvalidCancelGrace,
            ),
            (MarketConfig { max_export_watts: 0, ..config() }, NishatiError::InvalidMaxExport),
            (
                MarketConfig { max_export_watts: 100_000_001, ..config() },
                NishatiError::InvalidMaxExport,
            ),
            (MarketConfig { daily_mint_cap_wh: 0, ..config() }, NishatiError::InvalidMintCap),
            (
                MarketConfig { max_open_trades_per_buyer: 0, ..config() },
                NishatiError::InvalidOpenTradeLimit,
            ),
        ];
        for (c, e) in cases {
            assert_eq!(c.validate(), Err(e));
        }
        assert_eq!(MarketConfig { fee_bps: 10_000, ..config() }.validate(), Ok(()));
    }

    #[test]
    fn market_bytes_round_trip() {
        let mut buf = [0u64; Market::LEN / 8];
        // SAFETY: a u64 array is 8-aligned and Market::LEN bytes long.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, Market::LEN) };
        assert_eq!(Market::from_bytes_mut(bytes).err(), Some(NishatiError::InvalidAccountData));
        let m = Market::init_bytes(bytes).unwrap();
        m.set_config(&config());
        assert_eq!(m.config(), config());
        assert_eq!(
            Market::from_bytes_mut(&mut [0u8; 8]).err(),
            Some(NishatiError::InvalidAccountData)
        );
    }
}
