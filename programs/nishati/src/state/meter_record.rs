//! The MeterRecord account: proof that a meter key belongs to exactly one household, forever.

use core::mem::size_of;

use pinocchio::pubkey::Pubkey;

use crate::{account_discriminator, discriminator::Discriminator, state::AccountData};

/// PDA `["meter", market, meter key]`. Never closed: a retired meter's key can never be
/// registered again, so its old signed readings can never count anywhere.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MeterRecord {
    pub discriminator: Discriminator,
    pub household: Pubkey,
    pub bump: u8,
    pub retired: u8,
    pub reserved: [u8; 6],
}

const _: () = assert!(size_of::<MeterRecord>() == 48);

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for MeterRecord {
    const DISCRIMINATOR: Discriminator = account_discriminator!("MeterRecord");
}
