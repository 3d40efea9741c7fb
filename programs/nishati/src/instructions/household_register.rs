//! `household_register`: a household, its energy token account and its meter record.

use pinocchio::ProgramResult;

use crate::{
    accounts::{self, NewPda},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::HouseholdRegistered,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{self, ENERGY_SEED, HOUSEHOLD_SEED},
    state::{household::Household, market::Market, meter_record::NewMeterRecord, AccountData},
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
    let Context { program_id, accounts, data } = *ctx;
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

    let household_seeds: [&[u8]; 3] = [HOUSEHOLD_SEED, market.key(), &owner];
    let bump =
        pda::find(&household_seeds, program_id, household, NishatiError::InvalidHouseholdAddress)?;
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
        state.owner = owner;
        state.meter = meter;
        state.phone_commitment = phone_commitment;
        state.energy_account = *energy_account.key();
        state.bump = bump;
        state.energy_bump = energy_bump;
        state.custodial = custodial;
    }
    HouseholdRegistered {
        market: *market.key(),
        household: *household.key(),
        owner,
        meter,
        custodial: custodial == 1,
    }
    .emit();
    Ok(())
}
