//! The Market account: who runs the market and the rules every offer and trade must follow.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, Ref, RefMut},
    program_error::ProgramError,
    pubkey::Pubkey,
};

use crate::{
    account_discriminator, accounts,
    args::ArgReader,
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

/// The settings an admin chooses, at initialisation and on update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketConfig {
    pub oracle_authority: Pubkey,
    pub fee_bps: u16,
    pub min_price_cents_per_kwh: u64,
    pub max_price_cents_per_kwh: u64,
    pub payment_deadline_secs: u64,
}

impl MarketConfig {
    /// Borsh size: 32 + 2 + 8 + 8 + 8.
    pub const LEN: usize = 58;

    #[inline(always)]
    pub fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
        Ok(Self {
            oracle_authority: args.pubkey()?,
            fee_bps: args.u16()?,
            min_price_cents_per_kwh: args.u64()?,
            max_price_cents_per_kwh: args.u64()?,
            payment_deadline_secs: args.u64()?,
        })
    }

    #[inline(always)]
    pub fn write<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.bytes(&self.oracle_authority);
        w.u16(self.fee_bps);
        w.u64(self.min_price_cents_per_kwh);
        w.u64(self.max_price_cents_per_kwh);
        w.u64(self.payment_deadline_secs);
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
    pub market_id: u64,
    pub min_price_cents_per_kwh: u64,
    pub max_price_cents_per_kwh: u64,
    pub payment_deadline_secs: u64,
    pub fee_bps: u16,
    /// 0 or 1; a `bool` in the IDL.
    pub paused: u8,
    pub bump: u8,
    /// SPL Token mint of the market's energy, PDA `["mint", market]`; 1 unit = 1 Wh.
    pub energy_mint: Pubkey,
    pub mint_bump: u8,
    /// Room for fields later issues add, so the account never needs a realloc to grow.
    pub reserved: [u8; 19],
}

const _: () = {
    assert!(size_of::<Market>() == 160);
    assert!(offset_of!(Market, admin) == 8);
    assert!(offset_of!(Market, market_id) == 72);
    assert!(offset_of!(Market, fee_bps) == 104);
    assert!(offset_of!(Market, energy_mint) == 108);
    assert!(offset_of!(Market, reserved) == 141);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Market {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Market");
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
        if self.paused == 0 {
            Ok(())
        } else {
            Err(NishatiError::MarketPaused)
        }
    }

    pub fn check_mint(&self, mint: &AccountInfo) -> Result<(), NishatiError> {
        if self.energy_mint == *mint.key() {
            Ok(())
        } else {
            Err(NishatiError::InvalidEnergyMint)
        }
    }

    pub fn config(&self) -> MarketConfig {
        MarketConfig {
            oracle_authority: self.oracle_authority,
            fee_bps: self.fee_bps,
            min_price_cents_per_kwh: self.min_price_cents_per_kwh,
            max_price_cents_per_kwh: self.max_price_cents_per_kwh,
            payment_deadline_secs: self.payment_deadline_secs,
        }
    }

    pub fn set_config(&mut self, config: &MarketConfig) {
        self.oracle_authority = config.oracle_authority;
        self.fee_bps = config.fee_bps;
        self.min_price_cents_per_kwh = config.min_price_cents_per_kwh;
        self.max_price_cents_per_kwh = config.max_price_cents_per_kwh;
        self.payment_deadline_secs = config.payment_deadline_secs;
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
