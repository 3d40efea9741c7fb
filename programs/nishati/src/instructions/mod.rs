//! Every instruction, declared once in the table at the bottom of this file: its name (which
//! gives its discriminator), its accounts struct and its args struct. The table yields the
//! dispatch and the list `tests/idl.rs` holds the IDL's instructions to; each accounts struct
//! checks its signer and writable flags from the same declaration the IDL's flags are read from.
//!
//! One module per instruction, named `<noun>_<verb>` as the IDL names it, with its accounts
//! (`accounts!`), its args (`args!`) and a `process` taking one `&Ix`.

pub mod energy_redeem;
pub mod household_register;
pub mod household_set_meter;
pub mod installer_add;
pub mod installer_remove;
pub mod market_initialize;
pub mod market_pause;
pub mod market_update;
pub mod meter_attest;
pub mod offer_cancel;
pub mod offer_create;
pub mod trade_cancel;
pub mod trade_open;
pub mod trade_settle;

use pinocchio::{
    account_info::AccountInfo,
    program_error::ProgramError,
    pubkey::{pubkey_eq, Pubkey},
    sysvars::{clock::Clock, Sysvar},
};

use crate::{discriminator::Discriminator, error::NishatiError};

/// What every handler gets, behind one pointer (LLVM 22's BPF backend refuses calls with more
/// than 5 arguments): the program id, the checked accounts, the accounts after them, the args.
pub struct Ix<'a, A, G> {
    pub program_id: &'a Pubkey,
    pub accounts: A,
    pub remaining: &'a [AccountInfo],
    pub args: G,
}

/// An instruction account as the IDL lists it: name, writable, signer.
pub type AccountSpec = (&'static str, bool, bool);

/// An instruction as the table declares it, for the IDL check.
pub struct InstructionSpec {
    pub name: &'static str,
    pub discriminator: Discriminator,
    pub accounts: &'static [AccountSpec],
    /// (name, IDL type) of each argument, in order.
    pub args: &'static [(&'static str, &'static str)],
}

/// The cluster clock's Unix time.
#[inline(always)]
pub fn now() -> Result<i64, ProgramError> {
    Ok(Clock::get()?.unix_timestamp)
}

/// What an account in a given role must be. The flags are the IDL's; `check` enforces them.
pub trait Role {
    const WRITABLE: bool;
    const SIGNER: bool;
    /// A program-owned or token account the instruction reads or writes: it must differ from
    /// every other such account of the instruction, or two roles would borrow one account.
    const DISTINCT: bool;
    fn check(account: &AccountInfo) -> Result<(), NishatiError>;
}

/// The roles an account can take in an `accounts!` struct.
pub mod roles {
    use pinocchio::{account_info::AccountInfo, pubkey::pubkey_eq, sysvars::instructions};

    use super::Role;
    use crate::error::NishatiError;

    macro_rules! role {
        ($(#[$doc:meta])* $name:ident { writable: $w:literal, signer: $s:literal, distinct: $d:literal }
            |$account:ident| $check:expr) => {
            $(#[$doc])*
            pub struct $name;
            impl Role for $name {
                const WRITABLE: bool = $w;
                const SIGNER: bool = $s;
                const DISTINCT: bool = $d;
                #[inline(always)]
                fn check($account: &AccountInfo) -> Result<(), NishatiError> {
                    $check
                }
            }
        };
    }

    fn signer(account: &AccountInfo) -> Result<(), NishatiError> {
        account.is_signer().then_some(()).ok_or(NishatiError::MissingSignature)
    }

    fn writable(account: &AccountInfo) -> Result<(), NishatiError> {
        account.is_writable().then_some(()).ok_or(NishatiError::AccountNotWritable)
    }

    fn address(
        account: &AccountInfo,
        expected: &pinocchio::pubkey::Pubkey,
        error: NishatiError,
    ) -> Result<(), NishatiError> {
        pubkey_eq(account.key(), expected).then_some(()).ok_or(error)
    }

    role!(
        /// A key that signs and is not written (admin, oracle, owner, installer).
        Signer { writable: false, signer: true, distinct: false } |a| signer(a)
    );
    role!(
        /// Signs and pays: rent and fees come out of it.
        Payer { writable: true, signer: true, distinct: false } |a| {
            signer(a)?;
            writable(a)
        }
    );
    role!(
        /// An account the instruction writes.
        Writable { writable: true, signer: false, distinct: true } |a| writable(a)
    );
    role!(
        /// An account the instruction only reads.
        ReadOnly { writable: false, signer: false, distinct: true } |_a| Ok(())
    );
    role!(
        /// The system program.
        SystemProgram { writable: false, signer: false, distinct: false }
            |a| address(a, &pinocchio_system::ID, NishatiError::InvalidSystemProgram)
    );
    role!(
        /// The SPL Token program.
        TokenProgram { writable: false, signer: false, distinct: false }
            |a| address(a, &pinocchio_token::ID, NishatiError::InvalidTokenProgram)
    );
    role!(
        /// The instructions sysvar, where the Ed25519 instructions are read.
        InstructionsSysvar { writable: false, signer: false, distinct: false }
            |a| address(a, &instructions::INSTRUCTIONS_ID, NishatiError::InvalidInstructionsSysvar)
    );
}

/// An instruction's accounts struct, built from the front of the account slice.
pub trait InstructionAccounts<'a>: Sized {
    const SPEC: &'static [AccountSpec];
    /// Checks every role and that no account fills two distinct roles; returns the accounts
    /// and the ones after them.
    fn load(accounts: &'a [AccountInfo]) -> Result<(Self, &'a [AccountInfo]), NishatiError>;
}

/// Refuses the same key in two roles that must differ.
#[inline(always)]
pub fn check_distinct(keys: &[Option<&Pubkey>]) -> Result<(), NishatiError> {
    for (i, a) in keys.iter().enumerate() {
        let Some(a) = a else { continue };
        for b in keys[i + 1..].iter().flatten() {
            if pubkey_eq(a, b) {
                return Err(NishatiError::DuplicateAccount);
            }
        }
    }
    Ok(())
}

/// Declares an instruction's accounts, in order, each with its role from [`roles`]:
/// `accounts! { pub struct XAccounts { payer: Payer, market: ReadOnly, trade: Writable } }`.
#[macro_export]
macro_rules! accounts {
    ($(#[$doc:meta])* pub struct $name:ident { $($field:ident: $role:ident),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name<'a> {
            $(pub $field: &'a pinocchio::account_info::AccountInfo,)*
        }

        impl<'a> $crate::instructions::InstructionAccounts<'a> for $name<'a> {
            const SPEC: &'static [$crate::instructions::AccountSpec] = &[$((
                stringify!($field),
                <$crate::instructions::roles::$role as $crate::instructions::Role>::WRITABLE,
                <$crate::instructions::roles::$role as $crate::instructions::Role>::SIGNER,
            ),)*];

            #[inline(always)]
            fn load(
                accounts: &'a [pinocchio::account_info::AccountInfo],
            ) -> Result<(Self, &'a [pinocchio::account_info::AccountInfo]), $crate::error::NishatiError> {
                let [$($field,)* remaining @ ..] = accounts else {
                    return Err($crate::error::NishatiError::NotEnoughAccounts);
                };
                $(<$crate::instructions::roles::$role as $crate::instructions::Role>::check($field)?;)*
                $crate::instructions::check_distinct(&[$(
                    <$crate::instructions::roles::$role as $crate::instructions::Role>::DISTINCT
                        .then_some($field.key()),
                )*])?;
                Ok((Self { $($field,)* }, remaining))
            }
        }
    };
}

/// The instruction table: `name(AccountsStruct, ArgsStruct) => handler;` per instruction.
/// It yields `ALL` (what the IDL check walks) and `dispatch`.
///
/// An entry needs all three parts, of the right kinds, or the program does not build:
///
/// ```
/// use nishati::{args::NoArgs, instructions::market_pause::{self, AdminAccounts}};
/// nishati::instructions! { market_pause(AdminAccounts, NoArgs) => market_pause::pause; }
/// assert_eq!(ALL[0].accounts.len(), 2);
/// ```
///
/// Without its accounts struct:
///
/// ```compile_fail
/// use nishati::{args::NoArgs, instructions::market_pause};
/// nishati::instructions! { market_pause(NoArgs) => market_pause::pause; }
/// ```
///
/// With something that is not an accounts struct in its place:
///
/// ```compile_fail
/// use nishati::{args::NoArgs, instructions::market_pause};
/// nishati::instructions! { market_pause(NoArgs, NoArgs) => market_pause::pause; }
/// ```
///
/// Without its args struct:
///
/// ```compile_fail
/// use nishati::instructions::market_pause::{self, AdminAccounts};
/// nishati::instructions! { market_pause(AdminAccounts) => market_pause::pause; }
/// ```
///
/// With a handler for other accounts or args:
///
/// ```compile_fail
/// use nishati::{args::NoArgs, instructions::{market_pause::AdminAccounts, trade_cancel}};
/// nishati::instructions! { market_pause(AdminAccounts, NoArgs) => trade_cancel::process; }
/// ```
#[macro_export]
macro_rules! instructions {
    ($($name:ident($accounts:ident, $args:ty) => $handler:path;)*) => {
        /// Every instruction, in table order.
        pub const ALL: &[$crate::instructions::InstructionSpec] = &[$(
            $crate::instructions::InstructionSpec {
                name: stringify!($name),
                discriminator: $crate::discriminator::sighash(
                    concat!("global:", stringify!($name)).as_bytes(),
                ),
                accounts:
                    <$accounts<'static> as $crate::instructions::InstructionAccounts>::SPEC,
                args: <$args as $crate::args::InstructionArgs>::FIELDS,
            },
        )*];

        /// Routes on the 8-byte discriminator to the handler, with its accounts and args
        /// checked and parsed.
        #[inline(always)]
        pub fn dispatch(
            program_id: &pinocchio::pubkey::Pubkey,
            accounts: &[pinocchio::account_info::AccountInfo],
            data: &[u8],
        ) -> pinocchio::ProgramResult {
            let Some((discriminator, data)) = data.split_first_chunk::<8>() else {
                return Err($crate::error::NishatiError::UnknownInstruction.into());
            };
            $(
                #[allow(non_upper_case_globals)]
                const $name: $crate::discriminator::Discriminator =
                    $crate::discriminator::sighash(concat!("global:", stringify!($name)).as_bytes());
                if *discriminator == $name {
                    let (accounts, remaining) =
                        <$accounts as $crate::instructions::InstructionAccounts>::load(accounts)?;
                    let args = <$args as $crate::args::InstructionArgs>::parse(data)?;
                    let ix = $crate::instructions::Ix { program_id, accounts, remaining, args };
                    return $handler(&ix);
                }
            )*
            Err($crate::error::NishatiError::UnknownInstruction.into())
        }
    };
}

use crate::args::NoArgs;
use energy_redeem::{EnergyRedeem, EnergyRedeemAccounts};
use household_register::{HouseholdRegister, HouseholdRegisterAccounts};
use household_set_meter::{HouseholdSetMeter, HouseholdSetMeterAccounts};
use installer_add::{InstallerAdd, InstallerAddAccounts};
use installer_remove::InstallerRemoveAccounts;
use market_initialize::{MarketInitialize, MarketInitializeAccounts};
use market_pause::AdminAccounts;
use market_update::MarketUpdate;
use meter_attest::{MeterAttest, MeterAttestAccounts};
use offer_cancel::OfferCancelAccounts;
use offer_create::{OfferCreate, OfferCreateAccounts};
use trade_cancel::TradeCancelAccounts;
use trade_open::{TradeOpen, TradeOpenAccounts};
use trade_settle::{TradeSettle, TradeSettleAccounts};

instructions! {
    market_initialize(MarketInitializeAccounts, MarketInitialize) => market_initialize::process;
    market_update(AdminAccounts, MarketUpdate) => market_update::process;
    market_pause(AdminAccounts, NoArgs) => market_pause::pause;
    market_resume(AdminAccounts, NoArgs) => market_pause::resume;
    installer_add(InstallerAddAccounts, InstallerAdd) => installer_add::process;
    installer_remove(InstallerRemoveAccounts, NoArgs) => installer_remove::process;
    household_register(HouseholdRegisterAccounts, HouseholdRegister) => household_register::process;
    household_set_meter(HouseholdSetMeterAccounts, HouseholdSetMeter) => household_set_meter::process;
    meter_attest(MeterAttestAccounts, MeterAttest) => meter_attest::process;
    offer_create(OfferCreateAccounts, OfferCreate) => offer_create::process;
    offer_cancel(OfferCancelAccounts, NoArgs) => offer_cancel::process;
    trade_open(TradeOpenAccounts, TradeOpen) => trade_open::process;
    trade_settle(TradeSettleAccounts, TradeSettle) => trade_settle::process;
    trade_cancel(TradeCancelAccounts, NoArgs) => trade_cancel::process;
    energy_redeem(EnergyRedeemAccounts, EnergyRedeem) => energy_redeem::process;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_roles_refuse_a_repeated_key() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(check_distinct(&[Some(&a), None, Some(&b)]), Ok(()));
        assert_eq!(
            check_distinct(&[Some(&a), None, Some(&a)]),
            Err(NishatiError::DuplicateAccount)
        );
    }

    #[test]
    fn table_names_are_unique_and_discriminators_differ() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.discriminator, b.discriminator);
            }
        }
    }
}
