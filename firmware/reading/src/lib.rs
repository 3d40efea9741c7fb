//! The signed meter reading (version 2) and the meter registration message (version 1), byte
//! for byte: the one home of both layouts, built by the meter firmware and read by the program.
//! `docs/reading-format.md` describes them; `docs/reading-vectors.json` holds both to it.
//!
//! No dependencies, no allocation, no formatting, no floats, no 128-bit arithmetic: it builds for
//! the program's SBF target (see programs/nishati/README.md) and for the meter's RISC-V cores.
#![no_std]

pub const READING_LEN: usize = 37;
pub const MAGIC: &[u8; 4] = b"NSHR";
pub const VERSION: u8 = 2;
/// A reading names its market by the first bytes of the market's address.
pub const MARKET_TAG_LEN: usize = 8;

const COUNTER_AT: usize = 13;
const TIMESTAMP_AT: usize = 17;
const EXPORTED_AT: usize = 21;
const IMPORTED_AT: usize = 29;

/// Why bytes are not a version 2 reading for a market; the names are the program's errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    InvalidReadingLength,
    InvalidReadingMagic,
    UnsupportedReadingVersion,
    ReadingForAnotherMarket,
}

/// The values a reading carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Strictly increasing per meter, from 1.
    pub counter: u32,
    /// Unix seconds when the meter took the reading.
    pub timestamp: u32,
    /// Cumulative Wh sent to the grid since the meter was installed.
    pub exported_wh: u64,
    /// Cumulative Wh drawn from the grid.
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
    /// The 37 bytes the meter signs for this reading in `market`.
    pub fn encode(&self, market: &[u8; 32]) -> [u8; READING_LEN] {
        let mut message = [0u8; READING_LEN];
        message[..4].copy_from_slice(MAGIC);
        message[4] = VERSION;
        message[5..COUNTER_AT].copy_from_slice(&market[..MARKET_TAG_LEN]);
        message[COUNTER_AT..TIMESTAMP_AT].copy_from_slice(&self.counter.to_le_bytes());
        message[TIMESTAMP_AT..EXPORTED_AT].copy_from_slice(&self.timestamp.to_le_bytes());
        message[EXPORTED_AT..IMPORTED_AT].copy_from_slice(&self.exported_wh.to_le_bytes());
        message[IMPORTED_AT..].copy_from_slice(&self.imported_wh.to_le_bytes());
        message
    }

    /// The counter of an encoded reading, without checking its framing.
    pub fn counter_of(message: &[u8; READING_LEN]) -> u32 {
        u32_at(message, COUNTER_AT)
    }

    /// Checks framing and market, then reads the values.
    #[inline(always)]
    pub fn parse(message: &[u8], market: &[u8; 32]) -> Result<Self, FormatError> {
        if message.len() != READING_LEN {
            return Err(FormatError::InvalidReadingLength);
        }
        if message[..4] != MAGIC[..] {
            return Err(FormatError::InvalidReadingMagic);
        }
        if message[4] != VERSION {
            return Err(FormatError::UnsupportedReadingVersion);
        }
        if message[5..COUNTER_AT] != market[..MARKET_TAG_LEN] {
            return Err(FormatError::ReadingForAnotherMarket);
        }
        Ok(Self {
            counter: u32_at(message, COUNTER_AT),
            timestamp: u32_at(message, TIMESTAMP_AT),
            exported_wh: u64_at(message, EXPORTED_AT),
            imported_wh: u64_at(message, IMPORTED_AT),
        })
    }
}

/// The message a meter signs to prove it holds its key when it is registered: `NSHM`, version,
/// then the market, household and meter key it binds.
pub mod registration {
    pub const MAGIC: &[u8; 4] = b"NSHM";
    pub const VERSION: u8 = 1;
    pub const LEN: usize = 4 + 1 + 32 * 3;

    /// The registration of `meter` to `household` in `market`.
    #[inline(always)]
    pub fn message(market: &[u8; 32], household: &[u8; 32], meter: &[u8; 32]) -> [u8; LEN] {
        let mut message = [0u8; LEN];
        message[..4].copy_from_slice(MAGIC);
        message[4] = VERSION;
        message[5..37].copy_from_slice(market);
        message[37..69].copy_from_slice(household);
        message[69..].copy_from_slice(meter);
        message
    }

    /// Whether `message` is exactly the registration of `meter` to `household` in `market`.
    #[inline(always)]
    pub fn is(message: &[u8], market: &[u8; 32], household: &[u8; 32], meter: &[u8; 32]) -> bool {
        message.len() == LEN
            && message[..4] == MAGIC[..]
            && message[4] == VERSION
            && message[5..37] == market[..]
            && message[37..69] == household[..]
            && message[69..] == meter[..]
    }
}
