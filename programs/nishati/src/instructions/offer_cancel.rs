//! `offer_cancel`: the seller withdraws an offer (anyone may once it has expired).

use pinocchio::{program_error::ProgramError, ProgramResult};
use pinocchio_token::instructions::{CloseAccount, Transfer};

use crate::{
    accounts,
    args::NoArgs,
    error::NishatiError,
    events::OfferCancelled,
    instructions::{now, Ix},
    pda::{self, OFFER_SEED},
    state::{household::Household, market::Market, offer::Offer},
};

crate::accounts! {
    pub struct OfferCancelAccounts {
        caller: Signer,
        market: ReadOnly,
        household: ReadOnly,
        energy_account: Writable,
        offer: Writable,
        escrow: Writable,
        rent_receiver: Writable,
        token_program: TokenProgram,
    }
}

pub fn process(ix: &Ix<OfferCancelAccounts, NoArgs>) -> ProgramResult {
    let OfferCancelAccounts {
        caller,
        market,
        household,
        energy_account,
        offer,
        escrow,
        rent_receiver,
        ..
    } = ix.accounts;
    let program_id = ix.program_id;

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
        state.set_cancelled();
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
