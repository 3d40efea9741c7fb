//! `market_update`: the admin changes any of the market's settings.

use pinocchio::{pubkey::Pubkey, ProgramResult};

use crate::{
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::MarketUpdated,
    instruction_discriminator,
    instructions::{AccountSpec, Context},
    state::market::{Market, MarketConfig},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("market_update");

pub const ACCOUNTS: &[AccountSpec] = &[("admin", false, true), ("market", true, false)];

/// The fields to change; `None` keeps the current value.
#[derive(Default)]
pub struct MarketUpdateArgs {
    pub oracle_authority: Option<Pubkey>,
    pub fee_bps: Option<u16>,
    pub min_price_cents_per_kwh: Option<u64>,
    pub max_price_cents_per_kwh: Option<u64>,
    pub payment_deadline_secs: Option<u64>,
}

impl MarketUpdateArgs {
    #[inline(always)]
    pub fn read(data: &[u8]) -> Result<Self, NishatiError> {
        let mut args = ArgReader::new(data);
        let parsed = Self {
            oracle_authority: args.option(|a| a.pubkey())?,
            fee_bps: args.option(|a| a.u16())?,
            min_price_cents_per_kwh: args.option(|a| a.u64())?,
            max_price_cents_per_kwh: args.option(|a| a.u64())?,
            payment_deadline_secs: args.option(|a| a.u64())?,
        };
        args.finish()?;
        Ok(parsed)
    }

    /// `old` with every given field replaced; an update that sets nothing is refused.
    pub fn apply(&self, old: &MarketConfig) -> Result<MarketConfig, NishatiError> {
        if self.oracle_authority.is_none()
            && self.fee_bps.is_none()
            && self.min_price_cents_per_kwh.is_none()
            && self.max_price_cents_per_kwh.is_none()
            && self.payment_deadline_secs.is_none()
        {
            return Err(NishatiError::EmptyUpdate);
        }
        let new = MarketConfig {
            oracle_authority: self.oracle_authority.unwrap_or(old.oracle_authority),
            fee_bps: self.fee_bps.unwrap_or(old.fee_bps),
            min_price_cents_per_kwh: self
                .min_price_cents_per_kwh
                .unwrap_or(old.min_price_cents_per_kwh),
            max_price_cents_per_kwh: self
                .max_price_cents_per_kwh
                .unwrap_or(old.max_price_cents_per_kwh),
            payment_deadline_secs: self.payment_deadline_secs.unwrap_or(old.payment_deadline_secs),
        };
        new.validate()?;
        Ok(new)
    }
}

pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [admin, market, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    let update = MarketUpdateArgs::read(data)?;
    let mut state = Market::load_mut(market, program_id)?;
    state.check_admin(admin)?;

    let old = state.config();
    let new = update.apply(&old)?;
    state.set_config(&new);

    MarketUpdated { market: *market.key(), admin: *admin.key(), old, new }.emit();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_unset_fields_and_refuses_empty_updates() {
        let old = MarketConfig {
            oracle_authority: [1; 32],
            fee_bps: 100,
            min_price_cents_per_kwh: 1_000,
            max_price_cents_per_kwh: 2_000,
            payment_deadline_secs: 600,
        };
        assert_eq!(MarketUpdateArgs::default().apply(&old), Err(NishatiError::EmptyUpdate));
        let fee = MarketUpdateArgs { fee_bps: Some(250), ..Default::default() };
        assert_eq!(fee.apply(&old), Ok(MarketConfig { fee_bps: 250, ..old }));
        let reversed =
            MarketUpdateArgs { min_price_cents_per_kwh: Some(2_001), ..Default::default() };
        assert_eq!(reversed.apply(&old), Err(NishatiError::PriceBoundsReversed));
    }

    #[test]
    fn read_decodes_options() {
        let mut data = [0u8; 5 + 2];
        data[1] = 1;
        data[2..4].copy_from_slice(&300u16.to_le_bytes());
        let args = MarketUpdateArgs::read(&data).unwrap();
        assert_eq!(args.fee_bps, Some(300));
        assert!(args.oracle_authority.is_none() && args.payment_deadline_secs.is_none());
        assert!(MarketUpdateArgs::read(&data[..6]).is_err());
    }
}
