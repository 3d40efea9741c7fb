//! The Offer account: energy a household has put up for sale, held in escrow.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, RefMut},
    program_error::ProgramError,
    pubkey::Pubkey,
};
use pinocchio_token::state::TokenAccount;

use crate::{
    account_discriminator,
    discriminator::Discriminator,
    error::NishatiError,
    pda::{self, OFFER_SEED},
    state::{self, AccountData},
};

/// PDA `["offer", seller household, offer_id as u64 LE]`. Its escrow token account
/// `["escrow", offer]` has the offer PDA as token authority.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    pub discriminator: Discriminator,
    pub market: Pubkey,
    pub seller: Pubkey,
    pub escrow: Pubkey,
    pub rent_payer: Pubkey,
    pub offer_id: u64,
    pub price_cents_per_kwh: u64,
    /// Escrowed Wh that trades may still take.
    pub unreserved_wh: u64,
    /// Escrowed Wh held by pending trades.
    pub reserved_wh: u64,
    pub expires_at: i64,
    pub created_at: i64,
    /// Index of the next trade: trade addresses come from it, so none is ever reused.
    pub next_trade_index: u64,
    pub bump: u8,
    pub escrow_bump: u8,
    /// 0 or 1, read through `is_cancelled`.
    cancelled: u8,
    pub reserved: [u8; 5],
}

const _: () = {
    assert!(size_of::<Offer>() == 200);
    assert!(offset_of!(Offer, offer_id) == 136);
    assert!(offset_of!(Offer, bump) == 192);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Offer {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Offer");
    const FIELDS: &'static [(&'static str, usize)] = crate::fields!(Offer: market, seller, escrow, rent_payer, offer_id, price_cents_per_kwh, unreserved_wh, reserved_wh, expires_at, created_at, next_trade_index, bump, escrow_bump, cancelled, reserved);
}

impl Offer {
    #[inline(always)]
    pub fn load_mut<'a>(
        account: &'a AccountInfo,
        program_id: &Pubkey,
        market: &Pubkey,
    ) -> Result<RefMut<'a, Self>, ProgramError> {
        let offer = state::load_mut::<Self>(account, program_id)?;
        if offer.market != *market {
            return Err(NishatiError::WrongMarket.into());
        }
        let id = offer.offer_id.to_le_bytes();
        pda::check(
            &[OFFER_SEED, &offer.seller, &id],
            offer.bump,
            program_id,
            account.key(),
            NishatiError::InvalidOfferAddress,
        )?;
        Ok(offer)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled == 1
    }

    pub fn set_cancelled(&mut self) {
        self.cancelled = 1;
    }

    pub fn check_escrow(&self, escrow: &AccountInfo) -> Result<(), NishatiError> {
        if self.escrow == *escrow.key() {
            Ok(())
        } else {
            Err(NishatiError::InvalidEscrow)
        }
    }

    /// Escrowed energy, by the offer's books.
    pub fn escrowed_wh(&self) -> Result<u64, NishatiError> {
        self.unreserved_wh.checked_add(self.reserved_wh).ok_or(NishatiError::ArithmeticOverflow)
    }

    /// The invariant every offer change keeps: the escrow holds exactly the unreserved plus the
    /// reserved energy.
    pub fn check_escrow_balance(&self, escrow: &AccountInfo) -> Result<(), ProgramError> {
        let balance = TokenAccount::from_account_info(escrow)?.amount();
        if balance == self.escrowed_wh()? {
            Ok(())
        } else {
            Err(NishatiError::EscrowInvariantViolated.into())
        }
    }
}
