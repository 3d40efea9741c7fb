//! Instruction arguments: borsh decoding by hand and without allocation, and the `args!` macro
//! that declares an instruction's argument struct together with its IDL types.
//!
//! Anchor clients serialise arguments with borsh: little-endian integers, 32-byte keys, `bool` as
//! one byte 0/1 and `Option<T>` as a 0/1 tag followed by `T`. Unlike Anchor, trailing bytes are
//! refused, so a client built against another layout fails loudly instead of half-working.

use pinocchio::pubkey::Pubkey;

use crate::error::NishatiError;

/// A 32-byte hash argument (a payment reference, a receipt, a phone commitment): the same bytes
/// as a key, but `[u8; 32]` in the IDL, not `pubkey`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash(pub [u8; 32]);

/// A value an instruction argument can hold: how it is read, and its type as the IDL spells it
/// (`"u64"`, `"pubkey"`, `"[u8; 32]"`, `"option<u16>"`, or a defined type's name).
pub trait Arg: Sized {
    const IDL_TYPE: &'static str;
    fn read(args: &mut ArgReader) -> Result<Self, NishatiError>;
}

macro_rules! scalar_args {
    ($($ty:ty => $idl:literal, $method:ident;)*) => {
        $(impl Arg for $ty {
            const IDL_TYPE: &'static str = $idl;
            #[inline(always)]
            fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
                args.$method()
            }
        })*
    };
}

scalar_args! {
    u8 => "u8", u8;
    u16 => "u16", u16;
    u64 => "u64", u64;
    i64 => "i64", i64;
    bool => "bool", bool;
    Pubkey => "pubkey", pubkey;
}

impl Arg for Hash {
    const IDL_TYPE: &'static str = "[u8; 32]";
    #[inline(always)]
    fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
        args.pubkey().map(Hash)
    }
}

macro_rules! option_args {
    ($($ty:ty => $idl:literal;)*) => {
        $(impl Arg for Option<$ty> {
            const IDL_TYPE: &'static str = $idl;
            #[inline(always)]
            fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
                args.option(<$ty>::read)
            }
        })*
    };
}

option_args! {
    u16 => "option<u16>";
    u64 => "option<u64>";
    Pubkey => "option<pubkey>";
}

/// An instruction's argument struct: decodes the whole instruction data (leftovers refused)
/// and lists its fields with their IDL types, which `tests/idl.rs` holds the IDL to.
pub trait InstructionArgs: Sized {
    const FIELDS: &'static [(&'static str, &'static str)];
    fn parse(data: &[u8]) -> Result<Self, NishatiError>;
}

/// Declares an argument struct: `args! { pub struct XArgs { wh: u64, payment_ref_hash: Hash } }`.
/// An instruction without arguments uses `NoArgs`.
#[macro_export]
macro_rules! args {
    ($(#[$doc:meta])* pub struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl $crate::args::InstructionArgs for $name {
            const FIELDS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), <$ty as $crate::args::Arg>::IDL_TYPE),)*];

            #[inline(always)]
            fn parse(data: &[u8]) -> Result<Self, $crate::error::NishatiError> {
                #[allow(unused_mut)]
                let mut reader = $crate::args::ArgReader::new(data);
                let parsed = Self { $($field: <$ty as $crate::args::Arg>::read(&mut reader)?,)* };
                reader.finish()?;
                Ok(parsed)
            }
        }
    };
}

args! {
    /// The arguments of an instruction that takes none.
    pub struct NoArgs {}
}

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
    pub fn i64(&mut self) -> Result<i64, NishatiError> {
        Ok(i64::from_le_bytes(self.take()?))
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

        let bytes = (-5i64).to_le_bytes();
        let mut negative = ArgReader::new(&bytes);
        assert_eq!(negative.i64(), Ok(-5));
    }

    args! {
        pub struct Example { wh: u64, reference: Hash, limit: Option<u16> }
    }

    #[test]
    fn declared_args_parse_whole_data_and_name_their_idl_types() {
        let mut data = [0u8; 8 + 32 + 3];
        data[0] = 7;
        data[8..40].copy_from_slice(&[9; 32]);
        data[40] = 1;
        data[41] = 4;
        let parsed = Example::parse(&data).unwrap();
        assert_eq!((parsed.wh, parsed.reference, parsed.limit), (7, Hash([9; 32]), Some(4)));
        assert_eq!(
            Example::FIELDS,
            &[("wh", "u64"), ("reference", "[u8; 32]"), ("limit", "option<u16>")]
        );
        assert_eq!(Example::parse(&data[..42]).err(), Some(NishatiError::InvalidInstructionData));
        assert!(NoArgs::parse(&[]).is_ok());
        assert_eq!(NoArgs::parse(&[0]).err(), Some(NishatiError::InvalidInstructionData));
    }
}
