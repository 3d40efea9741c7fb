//! `market_initialize`: creates a Market PDA with its admin, oracle authority and rules.

use pinocchio::{
    account_info::AccountInfo,
    instruction::{Seed, Signer},
    pubkey::{find_program_address, Pubkey},
    ProgramResult,
};

use crate::{
    accounts::{self, NewPda},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::MarketInitialized,
    instruction_discriminator,
    instructions::AccountSpec,
    pda::MARKET_SEED,
    state::market::{Market, MarketConfig},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("market_initialize");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("payer", true, true),
    ("admin", false, true),
    ("market", true, false),
    ("system_program", false, false),
];

/// Args: `market_id: u64`, `config: MarketConfig`.
#[inline(always)]
pub fn process(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> ProgramResult {
    let [payer, admin, market, system_program, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    accounts::signer(payer)?;
    accounts::writable(payer)?;
    accounts::signer(admin)?;
    accounts::writable(market)?;
    accounts::system_program(system_program)?;

    let mut args = ArgReader::new(data);
    let market_id = args.u64()?;
    let config = MarketConfig::read(&mut args)?;
    args.finish()?;
    config.validate()?;

    let id_bytes = market_id.to_le_bytes();
    let (address, bump) = find_program_address(&[MARKET_SEED, &id_bytes], program_id);
    if address != *market.key() {
        return Err(NishatiError::InvalidMarketAddress.into());
    }
    let bump_bytes = [bump];
    let seeds = [Seed::from(MARKET_SEED), Seed::from(&id_bytes), Seed::from(&bump_bytes)];
    NewPda {
        payer,
        account: market,
        space: Market::LEN as u64,
        owner: program_id,
        signers: &[Signer::from(&seeds)],
    }
    .create()?;

    let mut data = market.try_borrow_mut_data()?;
    let state = Market::init_bytes(&mut data)?;
    state.admin = *admin.key();
    state.market_id = market_id;
    state.bump = bump;
    state.paused = 0;
    state.set_config(&config);

    MarketInitialized { market: market.key(), admin: admin.key(), market_id, config: &config }
        .encode()
        .emit();
    Ok(())
}
