//! `market_initialize`: creates a Market PDA with its rules, and the market's energy mint.

use pinocchio::ProgramResult;
use pinocchio_token::{instructions::InitializeMint2, state::Mint};

use crate::{
    accounts::{self, NewPda},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::MarketInitialized,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    pda::{self, MARKET_SEED, MINT_SEED},
    state::{
        market::{Market, MarketConfig},
        AccountData,
    },
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("market_initialize");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("payer", true, true),
    ("admin", false, true),
    ("market", true, false),
    ("energy_mint", true, false),
    ("token_program", false, false),
    ("system_program", false, false),
];

/// Energy tokens carry 3 decimals, so wallets show kWh while 1 unit stays 1 Wh.
pub const ENERGY_DECIMALS: u8 = 3;

/// Args: `market_id: u64`, `config: MarketConfig`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [payer, admin, market, energy_mint, token_program, system_program, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    accounts::signer(payer)?;
    accounts::writable(payer)?;
    accounts::signer(admin)?;
    accounts::writable(market)?;
    accounts::writable(energy_mint)?;
    accounts::token_program(token_program)?;
    accounts::system_program(system_program)?;

    let mut args = ArgReader::new(data);
    let market_id = args.u64()?;
    let config = MarketConfig::read(&mut args)?;
    args.finish()?;
    config.validate()?;

    let id_bytes = market_id.to_le_bytes();
    let market_seeds: [&[u8]; 2] = [MARKET_SEED, &id_bytes];
    let bump = pda::find(&market_seeds, program_id, market, NishatiError::InvalidMarketAddress)?;
    let mint_seeds: [&[u8]; 2] = [MINT_SEED, market.key()];
    let mint_bump =
        pda::find(&mint_seeds, program_id, energy_mint, NishatiError::InvalidEnergyMint)?;

    NewPda { payer, account: market, seeds: &market_seeds, bump }
        .create(Market::LEN as u64, program_id)?;
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
