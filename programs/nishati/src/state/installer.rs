//! The InstallerRecord account: the market admin's approval of an installer, whose signature
//! vouches for the meters it wires.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, Ref},
    program_error::ProgramError,
    pubkey::Pubkey,
};

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
    /// Reads a live installer record and proves its address from the market and installer it
    /// holds; a closed (removed) or never-made record is `InstallerNotApproved`.
    #[inline(always)]
    pub fn load<'a>(
        record: &'a AccountInfo,
        program_id: &Pubkey,
    ) -> Result<Ref<'a, Self>, ProgramError> {
        if record.data_is_empty() {
            return Err(NishatiError::InstallerNotApproved.into());
        }
        let state = state::load::<Self>(record, program_id)?;
        pda::check(
            &[INSTALLER_SEED, &state.market, &state.installer],
            state.bump,
            program_id,
            record.key(),
            NishatiError::InvalidInstallerAddress,
        )?;
        Ok(state)
    }

    /// Checks that `record` is the live record of `installer` (who signed) in `market`.
    #[inline(always)]
    pub fn check_approved(
        record: &AccountInfo,
        installer: &AccountInfo,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<(), ProgramError> {
        let state = Self::load(record, program_id)?;
        if state.market != *market || state.installer != *installer.key() {
            return Err(NishatiError::InstallerNotApproved.into());
        }
        Ok(())
    }
}
