//! The meter's Ed25519 key: it signs readings and the registration that proves it holds the key.

use ed25519_dalek::{Signer as _, SigningKey};
use nishati_reading::{registration, Reading, READING_LEN};

pub const SEED_LEN: usize = 32;
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;
/// Longest base58 text of a 32-byte key.
pub const BASE58_MAX_LEN: usize = 44;

/// A reading and the meter's signature over its 37 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedReading {
    pub message: [u8; READING_LEN],
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedReading {
    /// Bytes of a signed reading as the backlog stores it: message, then signature.
    pub const LEN: usize = READING_LEN + SIGNATURE_LEN;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut bytes = [0u8; Self::LEN];
        bytes[..READING_LEN].copy_from_slice(&self.message);
        bytes[READING_LEN..].copy_from_slice(&self.signature);
        bytes
    }

    /// `None` unless `bytes` is exactly one stored signed reading.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let mut signed = Self { message: [0; READING_LEN], signature: [0; SIGNATURE_LEN] };
        signed.message.copy_from_slice(&bytes[..READING_LEN]);
        signed.signature.copy_from_slice(&bytes[READING_LEN..]);
        Some(signed)
    }

    /// The reading's counter, read from its message.
    pub fn counter(&self) -> u32 {
        Reading::counter_of(&self.message)
    }
}

/// The registration of this meter to a household and the meter's signature over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedRegistration {
    pub message: [u8; registration::LEN],
    pub signature: [u8; SIGNATURE_LEN],
}

/// The meter's key. Made from a seed the chip draws from its hardware RNG on first boot; the
/// seed never leaves the device, and its memory is wiped when the key is dropped.
pub struct MeterKey(SigningKey);

impl MeterKey {
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.verifying_key().to_bytes()
    }

    /// The public key in base58, as Solana tools and the market's installers write it.
    pub fn public_key_base58<'a>(&self, out: &'a mut [u8; BASE58_MAX_LEN]) -> &'a str {
        let len = bs58::encode(self.public_key())
            .onto(&mut out[..])
            .expect("44 bytes hold any 32-byte key in base58");
        core::str::from_utf8(&out[..len]).expect("base58 is ASCII")
    }

    pub fn sign_reading(&self, reading: &Reading, market: &[u8; 32]) -> SignedReading {
        let message = reading.encode(market);
        SignedReading { message, signature: self.0.sign(&message).to_bytes() }
    }

    /// The proof of possession a market asks for to register this meter to `household`.
    pub fn sign_registration(&self, market: &[u8; 32], household: &[u8; 32]) -> SignedRegistration {
        let message = registration::message(market, household, &self.public_key());
        SignedRegistration { message, signature: self.0.sign(&message).to_bytes() }
    }
}
