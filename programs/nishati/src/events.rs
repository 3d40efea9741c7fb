//! Events, emitted as Anchor's `emit!` does: `sol_log_data` of the 8-byte event discriminator
//! followed by the borsh-encoded event, which logs as `Program data: <base64>`.

use pinocchio::{log::sol_log_data, pubkey::Pubkey};

use crate::{
    discriminator::Discriminator, event_discriminator, state::market::MarketConfig,
};

/// A fixed-capacity borsh writer; events are small and the program has no allocator.
pub struct EventWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> EventWriter<N> {
    #[inline(always)]
    pub fn new(discriminator: &Discriminator) -> Self {
        let mut w = Self { buf: [0; N], len: 0 };
        w.bytes(discriminator);
        w
    }

    /// Panics at the first test run if an event outgrows its buffer; sizes are constants.
    #[inline(always)]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    #[inline(always)]
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    #[inline(always)]
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline(always)]
    pub fn emit(&self) {
        sol_log_data(&[self.as_bytes()]);
    }
}

pub const MARKET_INITIALIZED: Discriminator = event_discriminator!("MarketInitialized");
pub const MARKET_UPDATED: Discriminator = event_discriminator!("MarketUpdated");

/// A market was created.
pub struct MarketInitialized<'a> {
    pub market: &'a Pubkey,
    pub admin: &'a Pubkey,
    pub market_id: u64,
    pub config: &'a MarketConfig,
}

pub const MARKET_INITIALIZED_LEN: usize = 8 + 32 + 32 + 8 + MarketConfig::LEN;

impl MarketInitialized<'_> {
    #[inline(always)]
    pub fn encode(&self) -> EventWriter<MARKET_INITIALIZED_LEN> {
        let mut w = EventWriter::new(&MARKET_INITIALIZED);
        w.bytes(self.market);
        w.bytes(self.admin);
        w.u64(self.market_id);
        self.config.write(&mut w);
        w
    }
}

/// The admin changed the market's settings; carries both, so consumers need not re-fetch.
pub struct MarketUpdated<'a> {
    pub market: &'a Pubkey,
    pub admin: &'a Pubkey,
    pub old: &'a MarketConfig,
    pub new: &'a MarketConfig,
}

pub const MARKET_UPDATED_LEN: usize = 8 + 32 + 32 + 2 * MarketConfig::LEN;

impl MarketUpdated<'_> {
    #[inline(always)]
    pub fn encode(&self) -> EventWriter<MARKET_UPDATED_LEN> {
        let mut w = EventWriter::new(&MARKET_UPDATED);
        w.bytes(self.market);
        w.bytes(self.admin);
        self.old.write(&mut w);
        self.new.write(&mut w);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fill_their_buffers_exactly() {
        let key = [3u8; 32];
        let config = MarketConfig {
            oracle_authority: [9; 32],
            fee_bps: 150,
            min_price_cents_per_kwh: 1_000,
            max_price_cents_per_kwh: 5_000,
            payment_deadline_secs: 600,
        };
        let init = MarketInitialized { market: &key, admin: &key, market_id: 7, config: &config }
            .encode();
        assert_eq!(init.as_bytes().len(), MARKET_INITIALIZED_LEN);
        assert_eq!(&init.as_bytes()[..8], &MARKET_INITIALIZED);
        let upd = MarketUpdated { market: &key, admin: &key, old: &config, new: &config }.encode();
        assert_eq!(upd.as_bytes().len(), MARKET_UPDATED_LEN);
    }
}
