//! Anchor's 8-byte discriminators, computed at compile time from the names they hash.
//!
//! Anchor prefixes instruction data with `sha256("global:<instruction>")[..8]`, account data with
//! `sha256("account:<Account>")[..8]` and event payloads with `sha256("event:<Event>")[..8]`;
//! matching it lets anchorpy and every Anchor client speak to this program unchanged.

use sha2_const_stable::Sha256;

pub type Discriminator = [u8; 8];

/// The first 8 bytes of the SHA-256 of `preimage`.
pub const fn sighash(preimage: &[u8]) -> Discriminator {
    let h = Sha256::new().update(preimage).finalize();
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]
}

/// `sighash("account:<Name>")` for an account type.
#[macro_export]
macro_rules! account_discriminator {
    ($name:literal) => {
        $crate::discriminator::sighash(concat!("account:", $name).as_bytes())
    };
}

/// `sighash("event:<Name>")` for an event type.
#[macro_export]
macro_rules! event_discriminator {
    ($name:literal) => {
        $crate::discriminator::sighash(concat!("event:", $name).as_bytes())
    };
}
