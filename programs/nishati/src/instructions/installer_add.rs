//! `installer_add`: the admin approves an installer, whose signature vouches for meter keys.

use pinocchio::{pubkey::Pubkey, ProgramResult};

use crate::{
    accounts::NewPda,
    error::NishatiError,
    events::InstallerAdded,
    instructions::{now, Ix},
    pda::{self, INSTALLER_SEED},
    state::{installer::InstallerRecord, market::Market, AccountData},
};

crate::accounts! {
    pub struct InstallerAddAccounts {
        payer: Payer,
        admin: Signer,
        market: ReadOnly,
        installer_record: Writable,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct InstallerAdd { installer: Pubkey }
}

pub fn process(ix: &Ix<InstallerAddAccounts, InstallerAdd>) -> ProgramResult {
    let InstallerAddAccounts { payer, admin, market, installer_record, .. } = ix.accounts;
    let installer = ix.args.installer;
    Market::load(market, ix.program_id)?.check_admin(admin)?;
    let seeds: [&[u8]; 3] = [INSTALLER_SEED, market.key(), &installer];
    let bump =
        pda::find(&seeds, ix.program_id, installer_record, NishatiError::InvalidInstallerAddress)?;
    if !installer_record.data_is_empty() {
        return Err(NishatiError::InstallerAlreadyApproved.into());
    }
    NewPda { payer, account: installer_record, seeds: &seeds, bump }
        .create(InstallerRecord::LEN as u64, ix.program_id)?;
    let mut data = installer_record.try_borrow_mut_data()?;
    let record = InstallerRecord::init_bytes(&mut data)?;
    record.market = *market.key();
    record.installer = installer;
    record.rent_payer = *payer.key();
    record.added_at = now()?;
    record.bump = bump;

    InstallerAdded { market: *market.key(), installer, admin: *admin.key() }.emit();
    Ok(())
}
