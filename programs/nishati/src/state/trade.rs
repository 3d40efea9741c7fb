//! The Trade account: energy reserved for a buyer until the payment arrives or fails.

use core::mem::{offset_of, size_of};

use pinocchio::{
    account_info::{AccountInfo, Ref},
    program_error::ProgramError,
    pubkey::Pubkey,
};

use crate::{
    account_discriminator,
    discriminator::Discriminator,
    error::NishatiError,
    pda::{self, TRADE_SEED},
    state::{self, AccountData},
};

/// PDA `["trade", offer, trade_index as u64 LE]`, the index from the offer's counter. A Trade
/// exists only while its payment is pending: settling or cancelling closes it, so it can never be
/// settled or cancelled twice, and the counter never hands its address out again.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Trade {
    pub discriminator: Discriminator,
    pub market: Pubkey,
    pub offer: Pubkey,
    pub buyer: Pubkey,
    pub buyer_energy_account: Pubkey,
    pub rent_payer: Pubkey,
    pub payment_ref_hash: [u8; 32],
    pub trade_index: u64,
    pub wh: u64,
    pub price_cents_per_kwh: u64,
    pub total_cents: u64,
    pub created_at: i64,
    pub deadline: i64,
    pub bump: u8,
    pub reserved: [u8; 7],
}

const _: () = {
    assert!(size_of::<Trade>() == 256);
    assert!(offset_of!(Trade, wh) == 208);
    assert!(offset_of!(Trade, bump) == 248);
};

// SAFETY: repr(C), integers and byte arrays only, checked size above.
unsafe impl AccountData for Trade {
    const DISCRIMINATOR: Discriminator = account_discriminator!("Trade");
    const FIELDS: &'static [(&'static str, usize)] = crate::fields!(Trade: market, offer, buyer, buyer_energy_account, rent_payer, payment_ref_hash, trade_index, wh, price_cents_per_kwh, total_cents, created_at, deadline, bump, reserved);
}

impl Trade {
    /// Reads a pending trade of `offer`; a closed (settled or cancelled) one is `TradeNotFound`.
    #[inline(always)]
    pub fn read(
        account: &AccountInfo,
        program_id: &Pubkey,
        offer: &Pubkey,
    ) -> Result<Self, ProgramError> {
        if account.data_is_empty() {
            return Err(NishatiError::TradeNotFound.into());
        }
        let trade: Ref<Self> = state::load(account, program_id)?;
        if trade.offer != *offer {
            return Err(NishatiError::InvalidTradeAddress.into());
        }
        pda::check(
            &[TRADE_SEED, &trade.offer, &trade.trade_index.to_le_bytes()],
            trade.bump,
            program_id,
            account.key(),
            NishatiError::InvalidTradeAddress,
        )?;
        Ok(*trade)
    }

    /// Price of `wh` at `price_cents_per_kwh`, in KES cents rounded up to a whole shilling:
    /// M-Pesa moves whole shillings, and rounding up never sells energy below its price.
    pub fn total_cents(wh: u64, price_cents_per_kwh: u64) -> Result<u64, NishatiError> {
        // Wh × cents per kWh is in thousandths of a cent; a shilling is 100,000 of them.
        const MILLI_CENTS_PER_SHILLING: u64 = 100_000;
        let milli_cents =
            wh.checked_mul(price_cents_per_kwh).ok_or(NishatiError::ArithmeticOverflow)?;
        let shillings = milli_cents.div_ceil(MILLI_CENTS_PER_SHILLING);
        shillings.checked_mul(100).ok_or(NishatiError::ArithmeticOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_round_up_to_whole_shillings() {
        // 2.5 kWh at KES 12.00/kWh = KES 30.00 exactly.
        assert_eq!(Trade::total_cents(2_500, 1_200), Ok(3_000));
        // 1 Wh at KES 10/kWh = 1 cent: charged as KES 1.
        assert_eq!(Trade::total_cents(1, 1_000), Ok(100));
        // 1,234 Wh at KES 15.50/kWh = KES 19.127: KES 20.
        assert_eq!(Trade::total_cents(1_234, 1_550), Ok(2_000));
        assert_eq!(Trade::total_cents(u64::MAX, 2), Err(NishatiError::ArithmeticOverflow));
    }
}
