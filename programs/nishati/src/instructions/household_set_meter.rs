//! `household_set_meter`: the admin or the owner swaps a household's meter.

use pinocchio::ProgramResult;

use crate::{
    accounts::{self},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::MeterChanged,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{self, METER_SEED},
    state::{
        self,
        household::Household,
        market::Market,
        meter_record::{MeterRecord, NewMeterRecord},
    },
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("household_set_meter");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("payer", true, true),
    ("authority", false, true),
    ("market", false, false),
    ("household", true, false),
    ("old_meter_record", true, false),
    ("new_meter_record", true, false),
    ("system_program", false, false),
];

/// Args: `meter: Pubkey`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [payer, authority, market, household, old_record, new_record, system_program, ..] =
        accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    accounts::signer(payer)?;
    accounts::writable(payer)?;
    accounts::signer(authority)?;
    accounts::writable(new_record)?;
    accounts::system_program(system_program)?;

    let mut args = ArgReader::new(data);
    let meter = args.pubkey()?;
    args.finish()?;

    let admin = Market::load(market, program_id)?.admin;
    let mut home = Household::load_mut(household, program_id, market.key())?;
    if *authority.key() != admin && *authority.key() != home.owner {
        return Err(NishatiError::NotHouseholdAuthority.into());
    }
    let old_meter = home.meter;
    {
        let mut record = state::load_mut::<MeterRecord>(old_record, program_id)?;
        pda::check(
            &[METER_SEED, market.key(), &old_meter],
            record.bump,
            program_id,
            old_record.key(),
            NishatiError::InvalidMeterRecordAddress,
        )?;
        if record.household != *household.key() {
            return Err(NishatiError::InvalidMeterRecordAddress.into());
        }
        record.retired = 1;
    }

    NewMeterRecord {
        payer,
        record: new_record,
        market: market.key(),
        meter: &meter,
        household: household.key(),
    }
    .create(program_id)?;

    // The new meter counts from its own zero: its first reading is a fresh baseline. The
    // household's last timestamp stays, so time never runs backwards for it.
    home.meter = meter;
    home.has_baseline = 0;
    home.last_counter = 0;
    home.meter_exported_wh = 0;
    home.meter_imported_wh = 0;

    MeterChanged { household: *household.key(), old_meter, new_meter: meter }.emit();
    Ok(())
}
