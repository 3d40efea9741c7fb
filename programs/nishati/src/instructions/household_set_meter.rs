//! `household_set_meter`: the admin, the owner or (custodial) the oracle swaps a household's
//! meter, with an approved installer and the new meter's proof that it holds its key.

use pinocchio::{pubkey::Pubkey, ProgramResult};

use crate::{
    error::NishatiError,
    events::MeterChanged,
    instructions::{now, Ix},
    pda::{self, METER_SEED},
    reading::check_meter_proof,
    state::{
        self,
        household::Household,
        installer::InstallerRecord,
        market::Market,
        meter_record::{MeterRecord, NewMeterRecord},
    },
};

crate::accounts! {
    pub struct HouseholdSetMeterAccounts {
        payer: Payer,
        authority: Signer,
        installer: Signer,
        market: ReadOnly,
        installer_record: ReadOnly,
        household: Writable,
        old_meter_record: Writable,
        new_meter_record: Writable,
        instructions_sysvar: InstructionsSysvar,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct HouseholdSetMeter { meter: Pubkey, ed25519_instruction_index: u8 }
}

pub fn process(ix: &Ix<HouseholdSetMeterAccounts, HouseholdSetMeter>) -> ProgramResult {
    let HouseholdSetMeterAccounts {
        payer,
        authority,
        installer,
        market,
        installer_record,
        household,
        old_meter_record,
        new_meter_record,
        instructions_sysvar,
        ..
    } = ix.accounts;
    let HouseholdSetMeter { meter, ed25519_instruction_index } = ix.args;
    let program_id = ix.program_id;

    let market_state = *Market::load(market, program_id)?;
    InstallerRecord::check_approved(installer_record, installer, program_id, market.key())?;
    let mut home = Household::load_mut(household, program_id, market.key())?;
    let may_change = *authority.key() == market_state.admin
        || home.check_authority(authority, &market_state).is_ok();
    if !may_change {
        return Err(NishatiError::NotHouseholdAuthority.into());
    }
    check_meter_proof(instructions_sysvar, ed25519_instruction_index, market, household, &meter)?;
    let old_meter = home.meter;
    {
        let mut record = state::load_mut::<MeterRecord>(old_meter_record, program_id)?;
        pda::check(
            &[METER_SEED, market.key(), &old_meter],
            record.bump,
            program_id,
            old_meter_record.key(),
            NishatiError::InvalidMeterRecordAddress,
        )?;
        if record.household != *household.key() {
            return Err(NishatiError::InvalidMeterRecordAddress.into());
        }
        record.retire();
    }

    NewMeterRecord {
        payer,
        record: new_meter_record,
        market: market.key(),
        meter: &meter,
        household: household.key(),
    }
    .create(program_id)?;

    // The household's last meter timestamp stays, so time never runs backwards for it.
    home.install_meter(&meter, installer.key(), now()?);

    MeterChanged {
        household: *household.key(),
        old_meter,
        new_meter: meter,
        installer: *installer.key(),
    }
    .emit();
    Ok(())
}
