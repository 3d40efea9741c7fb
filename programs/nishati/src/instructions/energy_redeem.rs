//! `energy_redeem`: a household burns energy it has used, as a utility nets it off the bill.

use pinocchio::ProgramResult;
use pinocchio_token::instructions::Burn;

use crate::{
    accounts,
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::EnergyRedeemed,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{self, HOUSEHOLD_SEED},
    state::{household::Household, market::Market},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("energy_redeem");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("authority", false, true),
    ("market", false, false),
    ("household", true, false),
    ("energy_account", true, false),
    ("energy_mint", true, false),
    ("token_program", false, false),
];

/// Args: `wh: u64`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [authority, market, household, energy_account, energy_mint, token_program, ..] = accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    let mut args = ArgReader::new(data);
    let wh = args.u64()?;
    args.finish()?;
    accounts::writable(energy_account)?;
    accounts::writable(energy_mint)?;
    accounts::token_program(token_program)?;
    if wh == 0 {
        return Err(NishatiError::ZeroAmount.into());
    }

    let market_state = Market::load(market, program_id)?;
    market_state.check_mint(energy_mint)?;
    let home = {
        let mut home = Household::load_mut(household, program_id, market.key())?;
        home.check_authority(authority, &market_state)?;
        home.check_energy_account(energy_account)?;
        home.redeemed_wh =
            home.redeemed_wh.checked_add(wh).ok_or(NishatiError::ArithmeticOverflow)?;
        *home
    };
    drop(market_state);
    if accounts::token_balance(energy_account)? < wh {
        return Err(NishatiError::InsufficientEnergy.into());
    }

    pda::sign_with(&[HOUSEHOLD_SEED, market.key(), &home.owner], home.bump, |signers| {
        Burn { account: energy_account, mint: energy_mint, authority: household, amount: wh }
            .invoke_signed(signers)
    })?;

    EnergyRedeemed { household: *household.key(), wh }.emit();
    Ok(())
}
