//! `installer_remove`: the admin withdraws an installer's approval. Meters it vouched for stay
//! registered; it can vouch for no new one.

use pinocchio::ProgramResult;

use crate::{
    accounts,
    args::NoArgs,
    error::NishatiError,
    events::InstallerRemoved,
    instructions::Ix,
    state::{installer::InstallerRecord, market::Market},
};

crate::accounts! {
    pub struct InstallerRemoveAccounts {
        admin: Signer,
        market: ReadOnly,
        installer_record: Writable,
        rent_receiver: Writable,
    }
}

pub fn process(ix: &Ix<InstallerRemoveAccounts, NoArgs>) -> ProgramResult {
    let InstallerRemoveAccounts { admin, market, installer_record, rent_receiver } = ix.accounts;
    Market::load(market, ix.program_id)?.check_admin(admin)?;
    let installer = {
        let record = InstallerRecord::load(installer_record, ix.program_id)?;
        if record.market != *market.key() {
            return Err(NishatiError::WrongMarket.into());
        }
        if record.rent_payer != *rent_receiver.key() {
            return Err(NishatiError::InvalidRentReceiver.into());
        }
        record.installer
    };
    accounts::close(installer_record, rent_receiver)?;

    InstallerRemoved { market: *market.key(), installer, admin: *admin.key() }.emit();
    Ok(())
}
