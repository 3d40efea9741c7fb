//! Signed meter readings (docs/reading-format.md) and the Ed25519 instruction that carries them.
//!
//! Pure logic with no syscalls, so the shared test vectors run against it on the host.

use pinocchio::pubkey::Pubkey;

use crate::error::NishatiError;

pub const READING_LEN: usize = 37;
pub const MAGIC: &[u8; 4] = b"NSHR";
pub const VERSION: u8 = 2;
/// A reading names its market by the first bytes of the market's address.
pub const MARKET_TAG_LEN: usize = 8;
/// How far a reading's timestamp may run ahead of the cluster clock: meters keep their own time.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// A reading's values, after its framing and market are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub counter: u64,
    pub timestamp: i64,
    pub exported_wh: u64,
    pub imported_wh: u64,
}

/// The last reading accepted from the household's current meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub counter: u64,
    pub exported_wh: u64,
    pub imported_wh: u64,
}

fn u32_at(message: &[u8], offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&message[offset..offset + 4]);
    u32::from_le_bytes(bytes)
}

fn u64_at(message: &[u8], offset: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&message[offset..offset + 8]);
    u64::from_le_bytes(bytes)
}

impl Reading {
    /// Checks framing and market, then reads the values.
    #[inline(always)]
    pub fn parse(message: &[u8], market: &Pubkey) -> Result<Self, NishatiError> {
        if message.len() != READING_LEN {
            return Err(NishatiError::InvalidReadingLength);
        }
        if message[..4] != MAGIC[..] {
            return Err(NishatiError::InvalidReadingMagic);
        }
        if message[4] != VERSION {
            return Err(NishatiError::UnsupportedReadingVersion);
        }
        if message[5..5 + MARKET_TAG_LEN] != market[..MARKET_TAG_LEN] {
            return Err(NishatiError::ReadingForAnotherMarket);
        }
        Ok(Self {
            counter: u32_at(message, 13).into(),
            timestamp: u32_at(message, 17).into(),
            exported_wh: u64_at(message, 21),
            imported_wh: u64_at(message, 29),
        })
    }

    /// Checks this reading follows the last accepted one; returns the Wh to mint (0 for the
    /// first reading of a meter, which only sets the baseline).
    #[inline(always)]
    pub fn check_progress(
        &self,
        baseline: Option<&Baseline>,
        last_timestamp: i64,
        now: i64,
    ) -> Result<u64, NishatiError> {
        if let Some(last) = baseline {
            if self.counter <= last.counter {
                return Err(NishatiError::ReadingReplayed);
            }
        }
        if self.timestamp < last_timestamp {
            return Err(NishatiError::ReadingOutOfOrder);
        }
        if self.timestamp > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(NishatiError::ReadingFromTheFuture);
        }
        let Some(last) = baseline else {
            return Ok(0);
        };
        if self.exported_wh < last.exported_wh || self.imported_wh < last.imported_wh {
            return Err(NishatiError::MeterWentBackwards);
        }
        Ok(self.exported_wh - last.exported_wh)
    }
}

/// The Ed25519 program instruction's layout for `n` readings: a 2-byte header, `n` 14-byte
/// offset entries, then `n` × (signature, public key, reading).
pub mod ed25519 {
    use super::READING_LEN;
    use crate::error::NishatiError;

    pub const HEADER_LEN: usize = 2;
    pub const OFFSETS_LEN: usize = 14;
    pub const SIGNATURE_LEN: usize = 64;
    pub const PUBLIC_KEY_LEN: usize = 32;
    pub const ENTRY_LEN: usize = SIGNATURE_LEN + PUBLIC_KEY_LEN + READING_LEN;
    /// "This instruction" in an offsets entry.
    pub const CURRENT_INSTRUCTION: u16 = u16::MAX;

    /// One reading's signature, meter key and message, each proven to be where the offsets
    /// say inside this same instruction's data.
    pub struct SignedReading<'a> {
        pub public_key: &'a [u8; 32],
        pub message: &'a [u8],
    }

    /// Number of readings, after checking the header and the total size.
    #[inline(always)]
    pub fn count(data: &[u8]) -> Result<usize, NishatiError> {
        let [n, 0, ..] = *data else {
            return Err(NishatiError::InvalidEd25519Instruction);
        };
        let n = n as usize;
        if n == 0 || data.len() != HEADER_LEN + n * (OFFSETS_LEN + ENTRY_LEN) {
            return Err(NishatiError::InvalidEd25519Instruction);
        }
        Ok(n)
    }

    fn u16_at(data: &[u8], offset: usize) -> u16 {
        u16::from_le_bytes([data[offset], data[offset + 1]])
    }

    /// Reading `i` of `n`, refusing any offsets but the exact ones this layout gives: a
    /// signature the Ed25519 program checked over other bytes must never pass for this one.
    #[inline(always)]
    pub fn reading(data: &[u8], n: usize, i: usize) -> Result<SignedReading<'_>, NishatiError> {
        let entry = HEADER_LEN + n * OFFSETS_LEN + i * ENTRY_LEN;
        let signature = entry;
        let public_key = signature + SIGNATURE_LEN;
        let message = public_key + PUBLIC_KEY_LEN;
        let expected = [
            signature,
            CURRENT_INSTRUCTION as usize,
            public_key,
            CURRENT_INSTRUCTION as usize,
            message,
            READING_LEN,
            CURRENT_INSTRUCTION as usize,
        ];
        let offsets = HEADER_LEN + i * OFFSETS_LEN;
        for (k, want) in expected.iter().enumerate() {
            if u16_at(data, offsets + 2 * k) as usize != *want {
                return Err(NishatiError::InvalidEd25519Instruction);
            }
        }
        let public_key: &[u8; 32] = data[public_key..message]
            .try_into()
            .map_err(|_| NishatiError::InvalidEd25519Instruction)?;
        Ok(SignedReading { public_key, message: &data[message..message + READING_LEN] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reading_sets_the_baseline_and_mints_nothing() {
        let r = Reading { counter: 5, timestamp: 100, exported_wh: 9_000, imported_wh: 10 };
        assert_eq!(r.check_progress(None, 50, 100), Ok(0));
        let last = Baseline { counter: 4, exported_wh: 8_500, imported_wh: 10 };
        assert_eq!(r.check_progress(Some(&last), 50, 100), Ok(500));
    }

    #[test]
    fn ed25519_layout_is_exact() {
        let n = 2;
        let mut data = [0u8; HEADER + 2 * (ed25519::OFFSETS_LEN + ed25519::ENTRY_LEN)];
        const HEADER: usize = ed25519::HEADER_LEN;
        data[0] = n as u8;
        for i in 0..n {
            let entry = HEADER + n * ed25519::OFFSETS_LEN + i * ed25519::ENTRY_LEN;
            let fields = [entry, 0xFFFF, entry + 64, 0xFFFF, entry + 96, READING_LEN, 0xFFFF];
            for (k, v) in fields.iter().enumerate() {
                let at = HEADER + i * ed25519::OFFSETS_LEN + 2 * k;
                data[at..at + 2].copy_from_slice(&(*v as u16).to_le_bytes());
            }
        }
        assert_eq!(ed25519::count(&data), Ok(2));
        assert!(ed25519::reading(&data, 2, 1).is_ok());
        // A message offset pointing one byte off is refused.
        data[HEADER + ed25519::OFFSETS_LEN + 8] += 1;
        assert_eq!(
            ed25519::reading(&data, 2, 1).err(),
            Some(NishatiError::InvalidEd25519Instruction)
        );
        // So is an instruction index other than "this instruction".
        data[HEADER + 2] = 0;
        assert_eq!(
            ed25519::reading(&data, 2, 0).err(),
            Some(NishatiError::InvalidEd25519Instruction)
        );
        assert_eq!(
            ed25519::count(&data[..data.len() - 1]),
            Err(NishatiError::InvalidEd25519Instruction)
        );
    }
}
