//! `market_update`: the admin changes any of the market's settings.

use pinocchio::{pubkey::Pubkey, ProgramResult};

use crate::{
    args::{Arg, ArgReader},
    error::NishatiError,
    events::MarketUpdated,
    instructions::{market_pause::AdminAccounts, Ix},
    state::market::{Market, MarketConfig},
};

/// Declares `MarketUpdateArgs` with an `Option` of each `MarketConfig` field, read in the
/// config's order, so the two can never list different fields.
macro_rules! market_update_args {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// The fields to change; `None` keeps the current value.
        #[derive(Clone, Copy, Debug, Default)]
        pub struct MarketUpdateArgs {
            $(pub $field: Option<$ty>,)*
        }

        impl Arg for MarketUpdateArgs {
            const IDL_TYPE: &'static str = "MarketUpdateArgs";

            #[inline(always)]
            fn read(args: &mut ArgReader) -> Result<Self, NishatiError> {
                Ok(Self { $($field: <Option<$ty>>::read(args)?,)* })
            }
        }

        impl MarketUpdateArgs {
            /// `old` with every given field replaced; an update that sets nothing is refused.
            pub fn apply(&self, old: &MarketConfig) -> Result<MarketConfig, NishatiError> {
                if true $(&& self.$field.is_none())* {
                    return Err(NishatiError::EmptyUpdate);
                }
                let new = MarketConfig { $($field: self.$field.unwrap_or(old.$field),)* };
                new.validate()?;
                Ok(new)
            }
        }
    };
}

market_update_args! {
    oracle_authority: Pubkey,
    fee_bps: u16,
    min_price_cents_per_kwh: u64,
    max_price_cents_per_kwh: u64,
    payment_deadline_secs: u64,
    cancel_grace_secs: u64,
    max_export_watts: u64,
    daily_mint_cap_wh: u64,
    max_open_trades_per_buyer: u16,
}

crate::args! {
    pub struct MarketUpdate { args: MarketUpdateArgs }
}

pub fn process(ix: &Ix<AdminAccounts, MarketUpdate>) -> ProgramResult {
    let AdminAccounts { admin, market } = ix.accounts;
    let mut state = Market::load_mut(market, ix.program_id)?;
    state.check_admin(admin)?;

    let old = state.config();
    let new = ix.args.args.apply(&old)?;
    state.set_config(&new);

    MarketUpdated { market: *market.key(), admin: *admin.key(), old, new }.emit();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::InstructionArgs;

    #[test]
    fn apply_keeps_unset_fields_and_refuses_empty_updates() {
        let old = MarketConfig {
            oracle_authority: [1; 32],
            fee_bps: 100,
            min_price_cents_per_kwh: 1_000,
            max_price_cents_per_kwh: 2_000,
            payment_deadline_secs: 600,
            cancel_grace_secs: 600,
            max_export_watts: 10_000,
            daily_mint_cap_wh: 1_000_000,
            max_open_trades_per_buyer: 4,
        };
        assert_eq!(MarketUpdateArgs::default().apply(&old), Err(NishatiError::EmptyUpdate));
        let fee = MarketUpdateArgs { fee_bps: Some(250), ..Default::default() };
        assert_eq!(fee.apply(&old), Ok(MarketConfig { fee_bps: 250, ..old }));
        let reversed =
            MarketUpdateArgs { min_price_cents_per_kwh: Some(2_001), ..Default::default() };
        assert_eq!(reversed.apply(&old), Err(NishatiError::PriceBoundsReversed));
        let cap = MarketUpdateArgs { daily_mint_cap_wh: Some(0), ..Default::default() };
        assert_eq!(cap.apply(&old), Err(NishatiError::InvalidMintCap));
    }

    #[test]
    fn read_decodes_options() {
        let mut data = [0u8; 9 + 2];
        data[1] = 1;
        data[2..4].copy_from_slice(&300u16.to_le_bytes());
        let args = MarketUpdate::parse(&data).unwrap().args;
        assert_eq!(args.fee_bps, Some(300));
        assert!(args.oracle_authority.is_none() && args.payment_deadline_secs.is_none());
        assert!(MarketUpdate::parse(&data[..10]).is_err());
    }
}
