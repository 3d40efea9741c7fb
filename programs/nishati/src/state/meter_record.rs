//! The MeterRecord account: proof that a meter key belongs to exactly one household, forever.

use core::mem::size_of;

use pinocchio::{account_info::AccountInfo, pubkey::Pubkey, ProgramResult};

use crate::{
    account_discriminator,
    accounts::NewPda,
    discriminator::Discriminator,
    error::NishatiError,
    pda::{self, METER_SEED},
    state::AccountData,
};

/// PDA `["meter", market, meter key]`. Never closed: a retired meter's key can never be
/// registered again, so its old signed readings can never count anywhere.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MeterRecord {
    pub discriminator: Discriminator,
    pub household: Pubkey,
    pub bump: u8,
    /// 1 once the meter was replaced; read through `is_retired`.
    retired: u8,
    pub reserved: [u8; 6],
}

const _: () = assert!(size_of::<MeterRecord>() == 48);

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for MeterRecord {
    const DISCRIMINATOR: Discriminator = account_discriminator!("MeterRecord");
    const FIELDS: &'static [(&'static str, usize)] =
        crate::fields!(MeterRecord: household, bump, retired, reserved);
}

/// Binds a meter key to a household by creating its record.
pub struct NewMeterRecord<'a> {
    pub payer: &'a AccountInfo,
    pub record: &'a AccountInfo,
    pub market: &'a Pubkey,
    pub meter: &'a Pubkey,
    pub household: &'a Pubkey,
}

impl MeterRecord {
    pub fn is_retired(&self) -> bool {
        self.retired == 1
    }

    pub fn retire(&mut self) {
        self.retired = 1;
    }
}

impl NewMeterRecord<'_> {
    /// Refuses a key that has ever had a record, active or retired: retired records stay
    /// forever, so a used meter key can never come back.
    #[inline(always)]
    pub fn create(&self, program_id: &Pubkey) -> ProgramResult {
        if *self.meter == [0; 32] {
            return Err(NishatiError::InvalidMeterKey.into());
        }
        let seeds: [&[u8]; 3] = [METER_SEED, self.market, self.meter];
        let bump =
            pda::find(&seeds, program_id, self.record, NishatiError::InvalidMeterRecordAddress)?;
        if !self.record.data_is_empty() || !self.record.is_owned_by(&pinocchio_system::ID) {
            return Err(NishatiError::MeterAlreadyRegistered.into());
        }
        NewPda { payer: self.payer, account: self.record, seeds: &seeds, bump }
            .create(MeterRecord::LEN as u64, program_id)?;
        let mut data = self.record.try_borrow_mut_data()?;
        let record = MeterRecord::init_bytes(&mut data)?;
        record.household = *self.household;
        record.bump = bump;
        Ok(())
    }
}
