//! `energy_redeem`: a household burns energy it has used, as a utility nets it off the bill.

use pinocchio::ProgramResult;
use pinocchio_token::instructions::Burn;

use crate::{
    accounts,
    error::NishatiError,
    events::EnergyRedeemed,
    instructions::Ix,
    pda::{self, HOUSEHOLD_SEED},
    state::{household::Household, market::Market},
};

crate::accounts! {
    pub struct EnergyRedeemAccounts {
        authority: Signer,
        market: ReadOnly,
        household: Writable,
        energy_account: Writable,
        energy_mint: Writable,
        token_program: TokenProgram,
    }
}

crate::args! {
    pub struct EnergyRedeem { wh: u64 }
}

pub fn process(ix: &Ix<EnergyRedeemAccounts, EnergyRedeem>) -> ProgramResult {
    let EnergyRedeemAccounts { authority, market, household, energy_account, energy_mint, .. } =
        ix.accounts;
    let wh = ix.args.wh;
    let program_id = ix.program_id;
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
