//! Account checks shared by every instruction, and PDA account creation.

use pinocchio::{
    account_info::AccountInfo,
    program_error::ProgramError,
    pubkey::Pubkey,
    sysvars::{rent::Rent, Sysvar},
    ProgramResult,
};
use pinocchio_system::instructions::{Allocate, Assign, CreateAccount, Transfer};
use pinocchio_token::{instructions::InitializeAccount3, state::TokenAccount};

use crate::{error::NishatiError, pda};

/// Bit pattern of the f64 exemption threshold 2.0 (two years of rent), today's value.
const THRESHOLD_TWO_YEARS: u64 = 0x4000_0000_0000_0000;
/// Bit pattern of 1.0, the threshold once SIMD-0194 folds it into `lamports_per_byte`.
const THRESHOLD_ONE: u64 = 0x3ff0_0000_0000_0000;
/// Bytes of account metadata that rent is charged for beside the data.
const ACCOUNT_STORAGE_OVERHEAD: u64 = 128;

#[inline(always)]
pub fn signer(account: &AccountInfo) -> Result<(), NishatiError> {
    if account.is_signer() {
        Ok(())
    } else {
        Err(NishatiError::MissingSignature)
    }
}

#[inline(always)]
pub fn writable(account: &AccountInfo) -> Result<(), NishatiError> {
    if account.is_writable() {
        Ok(())
    } else {
        Err(NishatiError::AccountNotWritable)
    }
}

/// Energy held by an SPL token account.
#[inline(always)]
pub fn token_balance(account: &AccountInfo) -> Result<u64, ProgramError> {
    Ok(TokenAccount::from_account_info(account)?.amount())
}

/// Closes a program account: its lamports go to `destination`, its data and owner are cleared.
#[inline(always)]
pub fn close(account: &AccountInfo, destination: &AccountInfo) -> ProgramResult {
    writable(destination)?;
    let lamports = account.lamports();
    let credited =
        destination.lamports().checked_add(lamports).ok_or(NishatiError::ArithmeticOverflow)?;
    *destination.try_borrow_mut_lamports()? = credited;
    *account.try_borrow_mut_lamports()? = 0;
    account.close()
}

#[inline(always)]
pub fn owned_by(account: &AccountInfo, program_id: &Pubkey) -> Result<(), NishatiError> {
    if account.is_owned_by(program_id) {
        Ok(())
    } else {
        Err(NishatiError::InvalidAccountOwner)
    }
}

/// Rent-exempt minimum for `data_len` bytes, in integers: `Rent::minimum_balance` computes in f64,
/// which LLVM 22's BPF backend cannot compile.
#[allow(deprecated)]
pub fn rent_exempt_minimum(rent: &Rent, data_len: u64) -> Result<u64, NishatiError> {
    let years = match rent.exemption_threshold.to_bits() {
        THRESHOLD_TWO_YEARS => 2,
        THRESHOLD_ONE => 1,
        _ => return Err(NishatiError::UnsupportedRent),
    };
    data_len
        .checked_add(ACCOUNT_STORAGE_OVERHEAD)
        .and_then(|bytes| bytes.checked_mul(rent.lamports_per_byte_year))
        .and_then(|l| l.checked_mul(years))
        .ok_or(NishatiError::ArithmeticOverflow)
}

/// A PDA account to create: who pays, where, and the seeds and bump of its address.
pub struct NewPda<'a> {
    pub payer: &'a AccountInfo,
    pub account: &'a AccountInfo,
    pub seeds: &'a [&'a [u8]],
    pub bump: u8,
}

impl NewPda<'_> {
    /// Creates the account with `space` bytes for `owner`, also when someone has already sent
    /// lamports to its address (which would make a plain `create_account` fail): then it tops
    /// up, allocates and assigns.
    #[inline(always)]
    pub fn create(&self, space: u64, owner: &Pubkey) -> ProgramResult {
        if !self.account.data_is_empty() || !self.account.is_owned_by(&pinocchio_system::ID) {
            return Err(NishatiError::AccountAlreadyInUse.into());
        }
        let required = rent_exempt_minimum(&Rent::get()?, space)?;
        let current = self.account.lamports();
        let (payer, account) = (self.payer, self.account);
        pda::sign_with(self.seeds, self.bump, |signers| {
            if current == 0 {
                return CreateAccount {
                    from: payer,
                    to: account,
                    lamports: required,
                    space,
                    owner,
                }
                .invoke_signed(signers);
            }
            if current < required {
                Transfer { from: payer, to: account, lamports: required - current }.invoke()?;
            }
            Allocate { account, space }.invoke_signed(signers)?;
            Assign { account, owner }.invoke_signed(signers)
        })
    }

    /// Creates an SPL token account of `mint` at this PDA whose token authority is `authority`.
    #[inline(always)]
    pub fn create_token_account(&self, mint: &AccountInfo, authority: &Pubkey) -> ProgramResult {
        self.create(TokenAccount::LEN as u64, &pinocchio_token::ID)?;
        InitializeAccount3 { account: self.account, mint, owner: authority }.invoke()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)]
    fn rent(threshold: f64) -> Rent {
        Rent { lamports_per_byte_year: 3_480, exemption_threshold: threshold, burn_percent: 50 }
    }

    #[test]
    fn rent_matches_the_runtime_formula() {
        // The runtime's own figure for 160 bytes: (160 + 128) * 3480 * 2.
        assert_eq!(rent_exempt_minimum(&rent(2.0), 160), Ok(2_004_480));
        assert_eq!(rent_exempt_minimum(&rent(1.0), 0), Ok(128 * 3_480));
        assert_eq!(rent_exempt_minimum(&rent(1.5), 0), Err(NishatiError::UnsupportedRent));
        assert_eq!(
            rent_exempt_minimum(&rent(2.0), u64::MAX),
            Err(NishatiError::ArithmeticOverflow)
        );
    }
}
