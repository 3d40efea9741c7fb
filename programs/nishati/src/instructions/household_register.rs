//! `household_register`: a household, its energy token account and its meter record, for a
//! meter an approved installer vouches for and whose key the meter proves it holds.

use pinocchio::{pubkey::Pubkey, ProgramResult};

use crate::{
    accounts::NewPda,
    args::Hash,
    error::NishatiError,
    events::HouseholdRegistered,
    instructions::{now, Ix},
    pda::{self, ENERGY_SEED, HOUSEHOLD_SEED},
    reading::check_meter_proof,
    state::{
        household::Household, installer::InstallerRecord, market::Market,
        meter_record::NewMeterRecord, AccountData,
    },
};

crate::accounts! {
    pub struct HouseholdRegisterAccounts {
        payer: Payer,
        owner: Signer,
        authority: Signer,
        installer: Signer,
        market: ReadOnly,
        installer_record: ReadOnly,
        household: Writable,
        energy_account: Writable,
        meter_record: Writable,
        energy_mint: ReadOnly,
        instructions_sysvar: InstructionsSysvar,
        token_program: TokenProgram,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct HouseholdRegister { meter: Pubkey, phone_commitment: Hash, ed25519_instruction_index: u8 }
}

pub fn process(ix: &Ix<HouseholdRegisterAccounts, HouseholdRegister>) -> ProgramResult {
    let HouseholdRegisterAccounts {
        payer,
        owner,
        authority,
        installer,
        market,
        installer_record,
        household,
        energy_account,
        meter_record,
        energy_mint,
        instructions_sysvar,
        ..
    } = ix.accounts;
    let HouseholdRegister { meter, phone_commitment, ed25519_instruction_index } = ix.args;
    let program_id = ix.program_id;

    let oracle_authority = {
        let state = Market::load(market, program_id)?;
        state.check_mint(energy_mint)?;
        state.oracle_authority
    };
    // The owner always signs, so nobody registers a household at someone else's address; the
    // oracle signs beside it for a household without a wallet.
    let custodial = if authority.key() == owner.key() {
        false
    } else if *authority.key() == oracle_authority {
        true
    } else {
        return Err(NishatiError::NotHouseholdAuthority.into());
    };
    InstallerRecord::check_approved(installer_record, installer, program_id, market.key())?;

    let household_seeds: [&[u8]; 3] = [HOUSEHOLD_SEED, market.key(), owner.key()];
    let bump =
        pda::find(&household_seeds, program_id, household, NishatiError::InvalidHouseholdAddress)?;
    check_meter_proof(instructions_sysvar, ed25519_instruction_index, market, household, &meter)?;
    let energy_seeds: [&[u8]; 2] = [ENERGY_SEED, household.key()];
    let energy_bump =
        pda::find(&energy_seeds, program_id, energy_account, NishatiError::InvalidEnergyAccount)?;
    NewPda { payer, account: household, seeds: &household_seeds, bump }
        .create(Household::LEN as u64, program_id)?;
    NewPda { payer, account: energy_account, seeds: &energy_seeds, bump: energy_bump }
        .create_token_account(energy_mint, household.key())?;
    NewMeterRecord {
        payer,
        record: meter_record,
        market: market.key(),
        meter: &meter,
        household: household.key(),
    }
    .create(program_id)?;

    {
        let mut data = household.try_borrow_mut_data()?;
        let state = Household::init_bytes(&mut data)?;
        state.market = *market.key();
        state.owner = *owner.key();
        state.phone_commitment = phone_commitment.0;
        state.energy_account = *energy_account.key();
        state.bump = bump;
        state.energy_bump = energy_bump;
        state.set_custodial(custodial);
        state.install_meter(&meter, installer.key(), now()?);
    }
    HouseholdRegistered {
        market: *market.key(),
        household: *household.key(),
        owner: *owner.key(),
        meter,
        installer: *installer.key(),
        custodial,
    }
    .emit();
    Ok(())
}
