//! `offer_create`: a household escrows energy for sale at a price per kWh.

use pinocchio::ProgramResult;
use pinocchio_token::instructions::Transfer;

use crate::{
    accounts::{self, NewPda},
    error::NishatiError,
    events::OfferCreated,
    instructions::{now, Ix},
    pda::{self, ESCROW_SEED, HOUSEHOLD_SEED, OFFER_SEED},
    state::{household::Household, market::Market, offer::Offer, AccountData},
};

crate::accounts! {
    pub struct OfferCreateAccounts {
        payer: Payer,
        authority: Signer,
        market: ReadOnly,
        household: Writable,
        energy_account: Writable,
        offer: Writable,
        escrow: Writable,
        energy_mint: ReadOnly,
        token_program: TokenProgram,
        system_program: SystemProgram,
    }
}

crate::args! {
    pub struct OfferCreate { wh: u64, price_cents_per_kwh: u64, expires_at: i64 }
}

pub fn process(ix: &Ix<OfferCreateAccounts, OfferCreate>) -> ProgramResult {
    let OfferCreateAccounts {
        payer,
        authority,
        market,
        household,
        energy_account,
        offer,
        escrow,
        energy_mint,
        ..
    } = ix.accounts;
    let OfferCreate { wh, price_cents_per_kwh: price, expires_at } = ix.args;
    let program_id = ix.program_id;
    let now = now()?;

    let market_state = Market::load(market, program_id)?;
    market_state.check_open()?;
    market_state.check_mint(energy_mint)?;
    if wh == 0 {
        return Err(NishatiError::ZeroAmount.into());
    }
    if !(market_state.min_price_cents_per_kwh..=market_state.max_price_cents_per_kwh)
        .contains(&price)
    {
        return Err(NishatiError::PriceOutOfBounds.into());
    }
    if expires_at <= now {
        return Err(NishatiError::InvalidExpiry.into());
    }

    let (offer_id, home) = {
        let mut home = Household::load_mut(household, program_id, market.key())?;
        home.check_authority(authority, &market_state)?;
        home.check_energy_account(energy_account)?;
        let offer_id = home.next_offer_id;
        home.next_offer_id = offer_id.checked_add(1).ok_or(NishatiError::ArithmeticOverflow)?;
        (offer_id, *home)
    };
    drop(market_state);
    if accounts::token_balance(energy_account)? < wh {
        return Err(NishatiError::InsufficientEnergy.into());
    }

    let id_bytes = offer_id.to_le_bytes();
    let offer_seeds: [&[u8]; 3] = [OFFER_SEED, household.key(), &id_bytes];
    let bump = pda::find(&offer_seeds, program_id, offer, NishatiError::InvalidOfferAddress)?;
    let escrow_seeds: [&[u8]; 2] = [ESCROW_SEED, offer.key()];
    let escrow_bump = pda::find(&escrow_seeds, program_id, escrow, NishatiError::InvalidEscrow)?;

    NewPda { payer, account: offer, seeds: &offer_seeds, bump }
        .create(Offer::LEN as u64, program_id)?;
    NewPda { payer, account: escrow, seeds: &escrow_seeds, bump: escrow_bump }
        .create_token_account(energy_mint, offer.key())?;
    pda::sign_with(&[HOUSEHOLD_SEED, market.key(), &home.owner], home.bump, |signers| {
        Transfer { from: energy_account, to: escrow, authority: household, amount: wh }
            .invoke_signed(signers)
    })?;

    let mut data = offer.try_borrow_mut_data()?;
    let state = Offer::init_bytes(&mut data)?;
    state.market = *market.key();
    state.seller = *household.key();
    state.escrow = *escrow.key();
    state.rent_payer = *payer.key();
    state.offer_id = offer_id;
    state.price_cents_per_kwh = price;
    state.unreserved_wh = wh;
    state.expires_at = expires_at;
    state.created_at = now;
    state.bump = bump;
    state.escrow_bump = escrow_bump;
    state.check_escrow_balance(escrow)?;

    OfferCreated {
        offer: *offer.key(),
        seller: *household.key(),
        offer_id,
        wh,
        price_cents_per_kwh: price,
        expires_at,
    }
    .emit();
    Ok(())
}
