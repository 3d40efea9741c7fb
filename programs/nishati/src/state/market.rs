//! The Market account: who runs the market and the rules every offer and trade must follow.

use core::mem::{offset_of, size_of};

use pinocchio::pubkey::Pubkey;

use crate::{
    account_discriminator, args::ArgReader, discriminator::Discriminator, error::NishatiError,
    events::EventWriter,
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
    /// Room for fields later issues add, so the account never needs a realloc to grow.
    pub reserved: [u8; 52],
}

pub const MARKET_DISCRIMINATOR: Discriminator = account_discriminator!("Market");

const _: () = {
    assert!(size_of::<Market>() == Market::LEN);
    assert!(offset_of!(Market, admin) == 8);
    assert!(offset_of!(Market, oracle_authority) == 40);
    assert!(offset_of!(Market, market_id) == 72);
    assert!(offset_of!(Market, min_price_cents_per_kwh) == 80);
    assert!(offset_of!(Market, fee_bps) == 104);
    assert!(offset_of!(Market, paused) == 106);
    assert!(offset_of!(Market, bump) == 107);
    assert!(offset_of!(Market, reserved) == 108);
};

impl Market {
    pub const LEN: usize = 160;

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

    /// Views account data as a Market after checking its size and discriminator.
    pub fn from_bytes_mut(data: &mut [u8]) -> Result<&mut Self, NishatiError> {
        if data.len() != Self::LEN || data[..8] != MARKET_DISCRIMINATOR {
            return Err(NishatiError::InvalidAccountData);
        }
        // SAFETY: the length is checked, every field is an integer or byte array (any bit pattern
        // is valid), and the runtime aligns account data to 8 bytes.
        Ok(unsafe { &mut *(data.as_mut_ptr() as *mut Self) })
    }

    /// Writes a new Market over freshly allocated, zeroed account data.
    pub fn init_bytes(data: &mut [u8]) -> Result<&mut Self, NishatiError> {
        if data.len() != Self::LEN {
            return Err(NishatiError::InvalidAccountData);
        }
        data[..8].copy_from_slice(&MARKET_DISCRIMINATOR);
        Self::from_bytes_mut(data)
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
            (MarketConfig { oracle_authority: [0; 32], ..config() }, NishatiError::InvalidOracleAuthority),
            (MarketConfig { fee_bps: 10_001, ..config() }, NishatiError::FeeTooHigh),
            (MarketConfig { min_price_cents_per_kwh: 0, ..config() }, NishatiError::ZeroPrice),
            (MarketConfig { min_price_cents_per_kwh: 4_001, ..config() }, NishatiError::PriceBoundsReversed),
            (MarketConfig { payment_deadline_secs: 59, ..config() }, NishatiError::InvalidPaymentDeadline),
            (MarketConfig { payment_deadline_secs: 86_401, ..config() }, NishatiError::InvalidPaymentDeadline),
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
        let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, Market::LEN) };
        assert_eq!(Market::from_bytes_mut(bytes).err(), Some(NishatiError::InvalidAccountData));
        let m = Market::init_bytes(bytes).unwrap();
        m.set_config(&config());
        assert_eq!(m.config(), config());
        assert_eq!(Market::from_bytes_mut(&mut [0u8; 8]).err(), Some(NishatiError::InvalidAccountData));
    }
}
