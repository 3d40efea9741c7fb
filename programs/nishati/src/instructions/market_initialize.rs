//! `market_initialize`: creates a Market PDA with its rules, and the market's energy mint.

use pinocchio::ProgramResult;
use pinocchio_token::{instructions::InitializeMint2, state::Mint};

use crate::{
    accounts::NewPda,
    error::NishatiError,
    events::MarketInitialized,
    instructions::{now, Ix},
    pda::{self, MARKET_SEED, MINT_SEED},
    state::{
        market::{Market, MarketConfig, SECS_PER_DAY},
        AccountData,
    },
};

crate::accounts! {
    pub struct MarketInitializeAccounts {
        payer: Payer,
        admin: Signer,
        market: Writable,
        energy_mint: Writable,
        token_program: TokenProgram,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct MarketInitialize { market_id: u64, config: MarketConfig }
}

/// Energy tokens carry 3 decimals, so wallets show kWh while 1 unit stays 1 Wh.
pub const ENERGY_DECIMALS: u8 = 3;

pub fn process(ix: &Ix<MarketInitializeAccounts, MarketInitialize>) -> ProgramResult {
    let MarketInitializeAccounts { payer, admin, market, energy_mint, .. } = ix.accounts;
    let MarketInitialize { market_id, config } = ix.args;
    config.validate()?;

    let id_bytes = market_id.to_le_bytes();
    let market_seeds: [&[u8]; 2] = [MARKET_SEED, &id_bytes];
    let bump = pda::find(&market_seeds, ix.program_id, market, NishatiError::InvalidMarketAddress)?;
    let mint_seeds: [&[u8]; 2] = [MINT_SEED, market.key()];
    let mint_bump =
        pda::find(&mint_seeds, ix.program_id, energy_mint, NishatiError::InvalidEnergyMint)?;

    NewPda { payer, account: market, seeds: &market_seeds, bump }
        .create(Market::LEN as u64, ix.program_id)?;
    NewPda { payer, account: energy_mint, seeds: &mint_seeds, bump: mint_bump }
        .create(Mint::LEN as u64, &pinocchio_token::ID)?;
    InitializeMint2 {
        mint: energy_mint,
        decimals: ENERGY_DECIMALS,
        mint_authority: market.key(),
        freeze_authority: None,
    }
    .invoke()?;

    let mut data = market.try_borrow_mut_data()?;
    let state = Market::init_bytes(&mut data)?;
    state.admin = *admin.key();
    state.market_id = market_id;
    state.bump = bump;
    state.energy_mint = *energy_mint.key();
    state.mint_bump = mint_bump;
    state.mint_day = now()?.div_euclid(SECS_PER_DAY);
    state.set_config(&config);

    MarketInitialized {
        market: *market.key(),
        admin: *admin.key(),
        market_id,
        energy_mint: *energy_mint.key(),
        config,
    }
    .emit();
    Ok(())
}
