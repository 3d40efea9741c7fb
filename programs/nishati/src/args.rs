//! Borsh decoding of instruction arguments, by hand and without allocation.
//!
//! Anchor clients serialise arguments with borsh: little-endian integers, 32-byte keys, `bool` as
//! one byte 0/1 and `Option<T>` as a 0/1 tag followed by `T`. Unlike Anchor, trailing bytes are
//! refused, so a client built against another layout fails loudly instead of half-working.

use pinocchio::pubkey::Pubkey;

use crate::error::NishatiError;

pub struct ArgReader<'a> {
    rest: &'a [u8],
}

impl<'a> ArgReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    #[inline(always)]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], NishatiError> {
        let (head, tail) =
            self.rest.split_first_chunk::<N>().ok_or(NishatiError::InvalidInstructionData)?;
        self.rest = tail;
        Ok(*head)
    }

    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8, NishatiError> {
        Ok(self.take::<1>()?[0])
    }

    #[inline(always)]
    pub fn u16(&mut self) -> Result<u16, NishatiError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    #[inline(always)]
    pub fn u64(&mut self) -> Result<u64, NishatiError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    #[inline(always)]
    pub fn pubkey(&mut self) -> Result<Pubkey, NishatiError> {
        self.take()
    }

    #[inline(always)]
    pub fn bool(&mut self) -> Result<bool, NishatiError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(NishatiError::InvalidInstructionData),
        }
    }

    #[inline(always)]
    pub fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, NishatiError>,
    ) -> Result<Option<T>, NishatiError> {
        if self.bool()? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Ends decoding; leftover bytes mean the client used another layout.
    #[inline(always)]
    pub fn finish(self) -> Result<(), NishatiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(NishatiError::InvalidInstructionData)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_borsh_and_refuses_leftovers() {
        let data = [7u8, 1, 0x34, 0x12, 0, 1];
        let mut r = ArgReader::new(&data);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.option(|r| r.u16()), Ok(Some(0x1234)));
        assert_eq!(r.option(|r| r.u64()), Ok(None));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.finish(), Ok(()));

        let mut short = ArgReader::new(&[1, 2, 3]);
        assert_eq!(short.u64(), Err(NishatiError::InvalidInstructionData));

        let long = ArgReader::new(&[0]);
        assert_eq!(long.finish(), Err(NishatiError::InvalidInstructionData));

        let mut bad_bool = ArgReader::new(&[2]);
        assert_eq!(bad_bool.bool(), Err(NishatiError::InvalidInstructionData));
    }
}
