//! The InstallerRecord account: the market admin's approval of an installer, whose signature
//! vouches for the meters it wires.

use core::mem::{offset_of, size_of};

use pinocchio::{account_info::AccountInfo, pubkey::Pubkey};

use crate::{
    account_discriminator,
    discriminator::Discriminator,
    error::NishatiError,
    pda::{self, INSTALLER_SEED},
    state::{self, AccountData},
};

/// PDA `["installer", market, installer]`. Exists while the installer is approved; removal
/// closes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InstallerRecord {
    pub discriminator: Discriminator,
    pub market: Pubkey,
    pub installer: Pubkey,
    pub rent_payer: Pubkey,
    pub added_at: i64,
    pub bump: u8,
    pub reserved: [u8; 7],
}

const _: () = {
    assert!(size_of::<InstallerRecord>() == 120);
    assert!(offset_of!(InstallerRecord, added_at) == 104);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for InstallerRecord {
    const DISCRIMINATOR: Discriminator = account_discriminator!("InstallerRecord");
    const FIELDS: &'static [(&'static str, usize)] =
        crate::fields!(InstallerRecord: market, installer, rent_payer, added_at, bump, reserved);
}

impl InstallerRecord {
    /// Reads the record of an approved installer of `market`: `installer` must have signed and
    /// `record` must be its live record.
    #[inline(always)]
    pub fn check_approved(
        record: &AccountInfo,
        installer: &AccountInfo,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<(), pinocchio::program_error::ProgramError> {
        if record.data_is_empty() {
            return Err(NishatiError::InstallerNotApproved.into());
        }
        let state = state::load::<Self>(record, program_id)?;
        if state.market != *market || state.installer != *installer.key() {
            return Err(NishatiError::InstallerNotApproved.into());
        }
        pda::check(
            &[INSTALLER_SEED, market, installer.key()],
            state.bump,
            program_id,
            record.key(),
            NishatiError::InvalidInstallerAddress,
        )?;
        Ok(())
    }
}
