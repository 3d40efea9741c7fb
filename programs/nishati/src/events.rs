//! Events, emitted as Anchor's `emit!` does: `sol_log_data` of the 8-byte event discriminator
//! followed by the borsh-encoded event, which logs as `Program data: <base64>`.

use pinocchio::{log::sol_log_data, pubkey::Pubkey};

use crate::{
    discriminator::{sighash, Discriminator},
    state::market::MarketConfig,
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

    /// Sizes are constants computed from the fields, so this never overflows the buffer.
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
}

/// A value as borsh encodes it, with its encoded size.
pub trait Encode {
    const SIZE: usize;
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>);
}

impl Encode for [u8; 32] {
    const SIZE: usize = 32;
    #[inline(always)]
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.bytes(self);
    }
}

impl Encode for u64 {
    const SIZE: usize = 8;
    #[inline(always)]
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.u64(*self);
    }
}

impl Encode for i64 {
    const SIZE: usize = 8;
    #[inline(always)]
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.bytes(&self.to_le_bytes());
    }
}

impl Encode for bool {
    const SIZE: usize = 1;
    #[inline(always)]
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>) {
        w.bytes(&[*self as u8]);
    }
}

impl Encode for MarketConfig {
    const SIZE: usize = MarketConfig::LEN;
    #[inline(always)]
    fn encode<const N: usize>(&self, w: &mut EventWriter<N>) {
        self.write(w);
    }
}

macro_rules! events {
    ($($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            $(#[$doc])*
            pub struct $name {
                $(pub $field: $ty,)*
            }

            impl $name {
                pub const DISCRIMINATOR: Discriminator =
                    sighash(concat!("event:", stringify!($name)).as_bytes());
                pub const LEN: usize = 8 $(+ <$ty as Encode>::SIZE)*;

                pub fn encode(&self) -> EventWriter<{ Self::LEN }> {
                    let mut w = EventWriter::new(&Self::DISCRIMINATOR);
                    $(self.$field.encode(&mut w);)*
                    w
                }

                #[inline(always)]
                pub fn emit(&self) {
                    sol_log_data(&[self.encode().as_bytes()]);
                }
            }
        )*

        /// Every event as (name, discriminator, encoded size), for the IDL check.
        pub const ALL: &[(&str, Discriminator, usize)] =
            &[$((stringify!($name), $name::DISCRIMINATOR, $name::LEN),)*];
    };
}

events! {
    /// A market was created.
    MarketInitialized { market: Pubkey, admin: Pubkey, market_id: u64, energy_mint: Pubkey, config: MarketConfig }
    /// The admin changed the market's settings; carries both, so consumers need not re-fetch.
    MarketUpdated { market: Pubkey, admin: Pubkey, old: MarketConfig, new: MarketConfig }
    MarketPaused { market: Pubkey, admin: Pubkey }
    MarketResumed { market: Pubkey, admin: Pubkey }
    InstallerAdded { market: Pubkey, installer: Pubkey, admin: Pubkey }
    InstallerRemoved { market: Pubkey, installer: Pubkey, admin: Pubkey }
    HouseholdRegistered {
        market: Pubkey, household: Pubkey, owner: Pubkey, meter: Pubkey, installer: Pubkey,
        custodial: bool,
    }
    MeterChanged { household: Pubkey, old_meter: Pubkey, new_meter: Pubkey, installer: Pubkey }
    /// One accepted reading; `minted_wh` is 0 for a meter's first (baseline) reading.
    MeterAttested {
        household: Pubkey, meter: Pubkey, counter: u64, timestamp: i64,
        exported_wh: u64, imported_wh: u64, minted_wh: u64,
    }
    /// An attestation that would pass the daily mint cap; logged by the refused transaction.
    MintCeilingHit {
        market: Pubkey, household: Pubkey, day: i64, minted_today_wh: u64,
        daily_mint_cap_wh: u64, refused_wh: u64,
    }
    OfferCreated {
        offer: Pubkey, seller: Pubkey, offer_id: u64, wh: u64, price_cents_per_kwh: u64,
        expires_at: i64,
    }
    /// `closed`: the offer and its escrow are gone; otherwise pending trades still hold Wh.
    OfferCancelled { offer: Pubkey, seller: Pubkey, returned_wh: u64, closed: bool }
    TradeOpened {
        trade: Pubkey, offer: Pubkey, buyer: Pubkey, seller: Pubkey, wh: u64, total_cents: u64,
        deadline: i64, payment_ref_hash: [u8; 32], trade_index: u64,
    }
    /// The payment's receipt hash lives here: the trade account closes.
    TradeSettled {
        trade: Pubkey, offer: Pubkey, buyer: Pubkey, wh: u64, total_cents: u64,
        receipt_hash: [u8; 32],
    }
    TradeCancelled { trade: Pubkey, offer: Pubkey, buyer: Pubkey, wh: u64, after_deadline: bool }
    EnergyRedeemed { household: Pubkey, wh: u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fill_their_buffers_exactly() {
        let config = MarketConfig {
            oracle_authority: [9; 32],
            fee_bps: 150,
            min_price_cents_per_kwh: 1_000,
            max_price_cents_per_kwh: 5_000,
            payment_deadline_secs: 600,
            cancel_grace_secs: 600,
            max_export_watts: 10_000,
            daily_mint_cap_wh: 1_000_000,
            max_open_trades_per_buyer: 4,
        };
        let event = MarketUpdated { market: [1; 32], admin: [2; 32], old: config, new: config };
        let encoded = event.encode();
        assert_eq!(encoded.as_bytes().len(), MarketUpdated::LEN);
        assert_eq!(&encoded.as_bytes()[..8], &MarketUpdated::DISCRIMINATOR);
        let attested = MeterAttested {
            household: [1; 32],
            meter: [2; 32],
            counter: 1,
            timestamp: -1,
            exported_wh: 2,
            imported_wh: 3,
            minted_wh: 4,
        };
        assert_eq!(attested.encode().as_bytes().len(), MeterAttested::LEN);
    }
}
