//! Account layouts: `#[repr(C)]` structs read in place (zero-copy), each led by its Anchor
//! account discriminator and laid out with no implicit padding, so the borsh layout the IDL
//! describes and the C layout the program reads are the same bytes.

pub mod household;
pub mod installer;
pub mod market;
pub mod meter_record;
pub mod offer;
pub mod trade;

use pinocchio::{
    account_info::{AccountInfo, Ref, RefMut},
    program_error::ProgramError,
    pubkey::Pubkey,
};

use crate::{accounts, discriminator::Discriminator, error::NishatiError};

/// A program account read in place.
///
/// # Safety
/// Implementors are `#[repr(C)]`, hold only integers and byte arrays (every bit pattern is
/// valid), start with their 8-byte discriminator, and need at most 8-byte alignment, which the
/// runtime gives account data.
pub unsafe trait AccountData: Sized {
    const DISCRIMINATOR: Discriminator;
    const LEN: usize = core::mem::size_of::<Self>();
    /// (name, byte offset) of every field after the discriminator, in order, for the IDL check
    /// (`fields!`).
    const FIELDS: &'static [(&'static str, usize)];

    /// Views account data as `Self` after checking its size and discriminator.
    fn from_bytes_mut(data: &mut [u8]) -> Result<&mut Self, NishatiError> {
        if data.len() != Self::LEN || data[..8] != Self::DISCRIMINATOR {
            return Err(NishatiError::InvalidAccountData);
        }
        // SAFETY: size checked; the trait's contract covers validity and alignment.
        Ok(unsafe { &mut *(data.as_mut_ptr() as *mut Self) })
    }

    fn from_bytes(data: &[u8]) -> Result<&Self, NishatiError> {
        if data.len() != Self::LEN || data[..8] != Self::DISCRIMINATOR {
            return Err(NishatiError::InvalidAccountData);
        }
        // SAFETY: as above.
        Ok(unsafe { &*(data.as_ptr() as *const Self) })
    }

    /// Stamps the discriminator on freshly allocated (zeroed) data and views it.
    fn init_bytes(data: &mut [u8]) -> Result<&mut Self, NishatiError> {
        if data.len() != Self::LEN {
            return Err(NishatiError::InvalidAccountData);
        }
        data[..8].copy_from_slice(&Self::DISCRIMINATOR);
        Self::from_bytes_mut(data)
    }
}

/// The `FIELDS` list of an account type: `fields!(Market: admin, oracle_authority, ...)`.
#[macro_export]
macro_rules! fields {
    ($ty:ty: $($field:ident),* $(,)?) => {
        &[$((stringify!($field), core::mem::offset_of!($ty, $field)),)*]
    };
}

/// Borrows a program-owned account as `T` for reading.
#[inline(always)]
pub fn load<'a, T: AccountData>(
    account: &'a AccountInfo,
    program_id: &Pubkey,
) -> Result<Ref<'a, T>, ProgramError> {
    accounts::owned_by(account, program_id)?;
    Ref::try_map(account.try_borrow_data()?, |d| T::from_bytes(d)).map_err(|(_, e)| e.into())
}

/// Borrows a program-owned, writable account as `T` for writing.
#[inline(always)]
pub fn load_mut<'a, T: AccountData>(
    account: &'a AccountInfo,
    program_id: &Pubkey,
) -> Result<RefMut<'a, T>, ProgramError> {
    accounts::owned_by(account, program_id)?;
    accounts::writable(account)?;
    RefMut::try_map(account.try_borrow_mut_data()?, |d| T::from_bytes_mut(d))
        .map_err(|(_, e)| e.into())
}
