//! `offer_cancel`: the seller withdraws an offer (anyone may once it has expired).

use pinocchio::{program_error::ProgramError, ProgramResult};
use pinocchio_token::instructions::{CloseAccount, Transfer};

use crate::{
    accounts,
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::OfferCancelled,
    instruction_discriminator,
    instructions::{now, AccountSpec, Context},
    pda::{self, OFFER_SEED},
    state::{household::Household, market::Market, offer::Offer},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("offer_cancel");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("caller", false, true),
    ("market", false, false),
    ("household", false, false),
    ("energy_account", true, false),
    ("offer", true, false),
    ("escrow", true, false),
    ("rent_receiver", true, false),
    ("token_program", false, false),
];

pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [caller, market, household, energy_account, offer, escrow, rent_receiver, token_program, ..] =
        accounts
    else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    ArgReader::new(data).finish()?;
    accounts::signer(caller)?;
    accounts::writable(energy_account)?;
    accounts::writable(escrow)?;
    accounts::token_program(token_program)?;

    let market_state = Market::load(market, program_id)?;
    let home = Household::read(household, program_id, market.key())?;
    home.check_energy_account(energy_account)?;
    let (state, returned) = {
        let mut state = Offer::load_mut(offer, program_id, market.key())?;
        if state.seller != *household.key() {
            return Err(NishatiError::InvalidHouseholdAddress.into());
        }
        state.check_escrow(escrow)?;
        if state.rent_payer != *rent_receiver.key() {
            return Err(NishatiError::InvalidRentReceiver.into());
        }
        // Before expiry only the seller decides; after it, anyone may sweep the offer.
        if now()? <= state.expires_at {
            home.check_authority(caller, &market_state)
                .map_err(|_| NishatiError::OfferNotExpired)?;
        }
        let returned = state.unreserved_wh;
        state.unreserved_wh = 0;
        state.cancelled = 1;
        (*state, returned)
    };
    drop(market_state);

    let id_bytes = state.offer_id.to_le_bytes();
    let closed = state.reserved_wh == 0;
    pda::sign_with(&[OFFER_SEED, household.key(), &id_bytes], state.bump, |signers| {
        if returned > 0 {
            Transfer { from: escrow, to: energy_account, authority: offer, amount: returned }
                .invoke_signed(signers)?;
        }
        state.check_escrow_balance(escrow)?;
        if closed {
            CloseAccount { account: escrow, destination: rent_receiver, authority: offer }
                .invoke_signed(signers)?;
        }
        Ok::<(), ProgramError>(())
    })?;
    if closed {
        accounts::close(offer, rent_receiver)?;
    }

    OfferCancelled { offer: *offer.key(), seller: *household.key(), returned_wh: returned, closed }
        .emit();
    Ok(())
}
