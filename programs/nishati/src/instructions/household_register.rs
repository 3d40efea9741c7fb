//! `household_register`: a household, its energy token account and its meter record.

use pinocchio::{
    instruction::{Seed, Signer},
    pubkey::find_program_address,
    ProgramResult,
};

use crate::{
    accounts::{self, NewPda},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::HouseholdRegistered,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{ENERGY_SEED, HOUSEHOLD_SEED, METER_SEED},
    state::{household::Household, market::Market, meter_record::MeterRecord, AccountData},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("household_register");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("payer", true, true),
    ("authority", false, true),
    ("market", false, false),
    ("household", true, false),
    ("energy_account", true, false),
    ("meter_record", true, false),
    ("energy_mint", false, false),
    ("token_program", false, false),
    ("system_program", false, false),
];

/// Args: `owner: Pubkey`, `meter: Pubkey`, `phone_commitment: [u8; 32]`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context {
        program_id,
        accounts,
        data,
    } = *ctx;
    let [payer, authority, market, household, energy_account, meter_record, energy_mint, token_program, system_program, ..] =
        accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    accounts::signer(payer)?;
    accounts::writable(payer)?;
    accounts::signer(authority)?;
    accounts::writable(household)?;
    accounts::writable(energy_account)?;
    accounts::writable(meter_record)?;
    accounts::token_program(token_program)?;
    accounts::system_program(system_program)?;

    let mut args = ArgReader::new(data);
    let owner = args.pubkey()?;
    let meter = args.pubkey()?;
    let phone_commitment = args.pubkey()?;
    args.finish()?;
    if meter == [0; 32] {
        return Err(NishatiError::InvalidMeterKey.into());
    }

    let oracle_authority = {
        let state = Market::load(market, program_id)?;
        state.check_mint(energy_mint)?;
        state.oracle_authority
    };
    // A household with a wallet registers itself; the oracle registers one without.
    let custodial = if *authority.key() == owner {
        0
    } else if *authority.key() == oracle_authority {
        1
    } else {
        return Err(NishatiError::NotHouseholdAuthority.into());
    };

    let (household_address, bump) =
        find_program_address(&[HOUSEHOLD_SEED, market.key(), &owner], program_id);
    if household_address != *household.key() {
        return Err(NishatiError::InvalidHouseholdAddress.into());
    }
    let (energy_address, energy_bump) =
        find_program_address(&[ENERGY_SEED, household.key()], program_id);
    if energy_address != *energy_account.key() {
        return Err(NishatiError::InvalidEnergyAccount.into());
    }
    let (meter_address, meter_bump) =
        find_program_address(&[METER_SEED, market.key(), &meter], program_id);
    if meter_address != *meter_record.key() {
        return Err(NishatiError::InvalidMeterRecordAddress.into());
    }
    // Retired meter records stay forever, so a used meter key can never come back.
    if !meter_record.data_is_empty() || !meter_record.is_owned_by(&pinocchio_system::ID) {
        return Err(NishatiError::MeterAlreadyRegistered.into());
    }

    let bump_bytes = [bump];
    let household_seeds = [
        Seed::from(HOUSEHOLD_SEED),
        Seed::from(market.key().as_ref()),
        Seed::from(&owner),
        Seed::from(&bump_bytes),
    ];
    NewPda {
        payer,
        account: household,
        signers: &[Signer::from(&household_seeds)],
    }
    .create(Household::LEN as u64, program_id)?;

    let energy_bump_bytes = [energy_bump];
    let energy_seeds = [
        Seed::from(ENERGY_SEED),
        Seed::from(household.key().as_ref()),
        Seed::from(&energy_bump_bytes),
    ];
    NewPda {
        payer,
        account: energy_account,
        signers: &[Signer::from(&energy_seeds)],
    }
    .create_token_account(energy_mint, household.key())?;

    let meter_bump_bytes = [meter_bump];
    let meter_seeds = [
        Seed::from(METER_SEED),
        Seed::from(market.key().as_ref()),
        Seed::from(&meter),
        Seed::from(&meter_bump_bytes),
    ];
    NewPda {
        payer,
        account: meter_record,
        signers: &[Signer::from(&meter_seeds)],
    }
    .create(MeterRecord::LEN as u64, program_id)?;

    {
        let mut data = household.try_borrow_mut_data()?;
        let state = Household::init_bytes(&mut data)?;
        state.market = *market.key();
        state.owner = owner;
        state.meter = meter;
        state.phone_commitment = phone_commitment;
        state.energy_account = energy_address;
        state.bump = bump;
        state.energy_bump = energy_bump;
        state.custodial = custodial;
    }
    {
        let mut data = meter_record.try_borrow_mut_data()?;
        let record = MeterRecord::init_bytes(&mut data)?;
        record.household = household_address;
        record.bump = meter_bump;
    }

    HouseholdRegistered {
        market: *market.key(),
        household: household_address,
        owner,
        meter,
        custodial: custodial == 1,
    }
    .emit();
    Ok(())
}
