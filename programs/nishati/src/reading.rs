//! Signed meter readings and meter registrations (docs/reading-format.md), and the Ed25519
//! instruction that carries their signatures.
//!
//! Pure logic with no syscalls, so the shared test vectors run against it on the host.

use pinocchio::{
    account_info::AccountInfo, program_error::ProgramError, pubkey::Pubkey,
    sysvars::instructions::Instructions,
};

use nishati_reading::FormatError;
pub use nishati_reading::{MAGIC, MARKET_TAG_LEN, READING_LEN, VERSION};

use crate::error::NishatiError;

/// How far a reading's timestamp may run ahead of the cluster clock: meters keep their own time.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

impl From<FormatError> for NishatiError {
    fn from(error: FormatError) -> Self {
        match error {
            FormatError::InvalidReadingLength => Self::InvalidReadingLength,
            FormatError::InvalidReadingMagic => Self::InvalidReadingMagic,
            FormatError::UnsupportedReadingVersion => Self::UnsupportedReadingVersion,
            FormatError::ReadingForAnotherMarket => Self::ReadingForAnotherMarket,
        }
    }
}

/// The message a meter signs to prove it holds its key when it is registered
/// (`nishati_reading::registration`, shared with the meter firmware).
pub mod registration {
    use pinocchio::pubkey::Pubkey;

    pub use nishati_reading::registration::{LEN, MAGIC, VERSION};

    use crate::error::NishatiError;

    /// Checks that `message` is the registration of `meter` to `household` in `market`.
    #[inline(always)]
    pub fn check(
        message: &[u8],
        market: &Pubkey,
        household: &Pubkey,
        meter: &Pubkey,
    ) -> Result<(), NishatiError> {
        nishati_reading::registration::is(message, market, household, meter)
            .then_some(())
            .ok_or(NishatiError::InvalidMeterRegistration)
    }
}

/// Checks the meter's proof that it holds `meter`: the Ed25519 instruction at `index` carries
/// one signature by `meter` over its registration to `household` in `market`.
#[inline(always)]
pub fn check_meter_proof(
    instructions_sysvar: &AccountInfo,
    index: u8,
    market: &AccountInfo,
    household: &AccountInfo,
    meter: &Pubkey,
) -> Result<(), ProgramError> {
    if *meter == [0; 32] {
        return Err(NishatiError::InvalidMeterKey.into());
    }
    let sysvar = Instructions::try_from(instructions_sysvar)?;
    let instruction = ed25519::instruction(&sysvar, index as usize)?;
    let data = instruction.get_instruction_data();
    if ed25519::count(data, registration::LEN)? != 1 {
        return Err(NishatiError::InvalidEd25519Instruction.into());
    }
    let signed = ed25519::signed(data, registration::LEN, 1, 0)?;
    if signed.public_key != meter {
        return Err(NishatiError::InvalidMeterRegistration.into());
    }
    registration::check(signed.message, market.key(), household.key(), meter)?;
    Ok(())
}

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

impl Reading {
    /// Checks framing and market, then reads the values.
    #[inline(always)]
    pub fn parse(message: &[u8], market: &Pubkey) -> Result<Self, NishatiError> {
        let reading = nishati_reading::Reading::parse(message, market)?;
        Ok(Self {
            counter: reading.counter.into(),
            timestamp: reading.timestamp.into(),
            exported_wh: reading.exported_wh,
            imported_wh: reading.imported_wh,
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

/// The Ed25519 program instruction's layout for `n` messages of `message_len` bytes (readings,
/// or one registration): a 2-byte header, `n` 14-byte offset entries, then `n` × (signature,
/// public key, message).
pub mod ed25519 {
    use pinocchio::{
        pubkey::{pubkey_eq, Pubkey},
        sysvars::instructions::{Instructions, IntrospectedInstruction},
    };

    use crate::error::NishatiError;

    pub const HEADER_LEN: usize = 2;
    pub const OFFSETS_LEN: usize = 14;
    pub const SIGNATURE_LEN: usize = 64;
    pub const PUBLIC_KEY_LEN: usize = 32;
    /// "This instruction" in an offsets entry.
    pub const CURRENT_INSTRUCTION: u16 = u16::MAX;
    pub const PROGRAM_ID: Pubkey =
        pinocchio_pubkey::pubkey!("Ed25519SigVerify111111111111111111111111111");

    /// Bytes of one signed message's entry.
    pub const fn entry_len(message_len: usize) -> usize {
        SIGNATURE_LEN + PUBLIC_KEY_LEN + message_len
    }

    /// One message's signature key and bytes, each proven to be where the offsets say inside
    /// this same instruction's data.
    pub struct SignedMessage<'a> {
        pub public_key: &'a [u8; 32],
        pub message: &'a [u8],
    }

    /// The Ed25519-program instruction at `index` of this transaction, which must come before
    /// the current instruction (so it ran, and its signatures held).
    #[inline(always)]
    pub fn instruction<T>(
        sysvar: &Instructions<T>,
        index: usize,
    ) -> Result<IntrospectedInstruction<'_>, NishatiError>
    where
        T: core::ops::Deref<Target = [u8]>,
    {
        if index >= sysvar.load_current_index() as usize {
            return Err(NishatiError::MissingEd25519Instruction);
        }
        let instruction = sysvar
            .load_instruction_at(index)
            .map_err(|_| NishatiError::MissingEd25519Instruction)?;
        if !pubkey_eq(instruction.get_program_id(), &PROGRAM_ID) {
            return Err(NishatiError::MissingEd25519Instruction);
        }
        Ok(instruction)
    }

    /// Number of messages, after checking the header and the total size.
    #[inline(always)]
    pub fn count(data: &[u8], message_len: usize) -> Result<usize, NishatiError> {
        let [n, 0, ..] = *data else {
            return Err(NishatiError::InvalidEd25519Instruction);
        };
        let n = n as usize;
        if n == 0 || data.len() != HEADER_LEN + n * (OFFSETS_LEN + entry_len(message_len)) {
            return Err(NishatiError::InvalidEd25519Instruction);
        }
        Ok(n)
    }

    fn u16_at(data: &[u8], offset: usize) -> u16 {
        u16::from_le_bytes([data[offset], data[offset + 1]])
    }

    /// Message `i` of `n`, refusing any offsets but the exact ones this layout gives: a
    /// signature the Ed25519 program checked over other bytes must never pass for this one.
    #[inline(always)]
    pub fn signed(
        data: &[u8],
        message_len: usize,
        n: usize,
        i: usize,
    ) -> Result<SignedMessage<'_>, NishatiError> {
        let entry = HEADER_LEN + n * OFFSETS_LEN + i * entry_len(message_len);
        let signature = entry;
        let public_key = signature + SIGNATURE_LEN;
        let message = public_key + PUBLIC_KEY_LEN;
        let expected = [
            signature,
            CURRENT_INSTRUCTION as usize,
            public_key,
            CURRENT_INSTRUCTION as usize,
            message,
            message_len,
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
        Ok(SignedMessage { public_key, message: &data[message..message + message_len] })
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
    fn registration_binds_market_household_and_key() {
        let (market, household, meter) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let mut message = [0u8; registration::LEN];
        message[..4].copy_from_slice(registration::MAGIC);
        message[4] = registration::VERSION;
        message[5..37].copy_from_slice(&market);
        message[37..69].copy_from_slice(&household);
        message[69..].copy_from_slice(&meter);
        assert_eq!(registration::check(&message, &market, &household, &meter), Ok(()));
        let refused = Err(NishatiError::InvalidMeterRegistration);
        assert_eq!(registration::check(&message, &market, &[9; 32], &meter), refused);
        assert_eq!(registration::check(&message, &market, &household, &[9; 32]), refused);
        assert_eq!(registration::check(&message[..100], &market, &household, &meter), refused);
        message[4] = 2;
        assert_eq!(registration::check(&message, &market, &household, &meter), refused);
    }

    #[test]
    fn ed25519_layout_is_exact() {
        let n = 2;
        const ENTRY: usize = ed25519::entry_len(READING_LEN);
        let mut data = [0u8; HEADER + 2 * (ed25519::OFFSETS_LEN + ENTRY)];
        const HEADER: usize = ed25519::HEADER_LEN;
        data[0] = n as u8;
        for i in 0..n {
            let entry = HEADER + n * ed25519::OFFSETS_LEN + i * ENTRY;
            let fields = [entry, 0xFFFF, entry + 64, 0xFFFF, entry + 96, READING_LEN, 0xFFFF];
            for (k, v) in fields.iter().enumerate() {
                let at = HEADER + i * ed25519::OFFSETS_LEN + 2 * k;
                data[at..at + 2].copy_from_slice(&(*v as u16).to_le_bytes());
            }
        }
        assert_eq!(ed25519::count(&data, READING_LEN), Ok(2));
        assert_eq!(
            ed25519::count(&data, registration::LEN).err(),
            Some(NishatiError::InvalidEd25519Instruction)
        );
        assert!(ed25519::signed(&data, READING_LEN, 2, 1).is_ok());
        // A message offset pointing one byte off is refused.
        data[HEADER + ed25519::OFFSETS_LEN + 8] += 1;
        assert_eq!(
            ed25519::signed(&data, READING_LEN, 2, 1).err(),
            Some(NishatiError::InvalidEd25519Instruction)
        );
        // So is an instruction index other than "this instruction".
        data[HEADER + 2] = 0;
        assert_eq!(
            ed25519::signed(&data, READING_LEN, 2, 0).err(),
            Some(NishatiError::InvalidEd25519Instruction)
        );
        assert_eq!(
            ed25519::count(&data[..data.len() - 1], READING_LEN),
            Err(NishatiError::InvalidEd25519Instruction)
        );
    }
}
