//! Every way an instruction can fail, as one enum of custom program errors.
//!
//! The numbers are the program's API: clients map them to named exceptions through the IDL.
//! Only ever append; never renumber or reuse a code.

use pinocchio::program_error::ProgramError;

macro_rules! errors {
    ($($(#[$doc:meta])* $name:ident = $code:literal => $msg:literal,)*) => {
        /// Custom error codes, from 6000 as Anchor numbers them.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum NishatiError {
            $($(#[$doc])* $name = $code,)*
        }

        impl NishatiError {
            /// Every error, in code order (the IDL check walks this list).
            pub const ALL: &'static [NishatiError] = &[$(NishatiError::$name,)*];

            pub const fn name(self) -> &'static str {
                match self { $(Self::$name => stringify!($name),)* }
            }

            pub const fn message(self) -> &'static str {
                match self { $(Self::$name => $msg,)* }
            }

            /// The line Anchor logs for a custom error, built at compile time because LLVM 22's
            /// BPF backend cannot compile integer formatting.
            pub const fn log_line(self) -> &'static str {
                match self {
                    $(Self::$name => concat!(
                        "AnchorError occurred. Error Code: ", stringify!($name),
                        ". Error Number: ", stringify!($code),
                        ". Error Message: ", $msg, "."
                    ),)*
                }
            }

            pub fn from_code(code: u32) -> Option<Self> {
                Self::ALL.iter().copied().find(|e| *e as u32 == code)
            }
        }
    };
}

errors! {
    /// The first 8 bytes of instruction data match no instruction.
    UnknownInstruction = 6000 => "Unknown instruction discriminator",
    /// Arguments are truncated, too long, or hold an invalid value (a bool that is not 0 or 1).
    InvalidInstructionData = 6001 => "Instruction data is truncated or malformed",
    /// Fewer accounts were passed than the instruction needs.
    NotEnoughAccounts = 6002 => "Not enough accounts for this instruction",
    /// An account that must sign did not.
    MissingSignature = 6003 => "A required signer did not sign",
    /// An account the instruction writes was passed read-only.
    AccountNotWritable = 6004 => "An account that must be writable is read-only",
    /// The market account is not the PDA of its seeds.
    InvalidMarketAddress = 6005 => "Market account is not the PDA of its seeds",
    /// The account to create already holds data or belongs to another program.
    AccountAlreadyInUse = 6006 => "Account to create is already in use",
    /// The account is not owned by this program.
    InvalidAccountOwner = 6007 => "Account is not owned by the Nishati program",
    /// The account's data is not of the expected type or size.
    InvalidAccountData = 6008 => "Account data is not of the expected type",
    /// The signer is not the market's admin.
    NotMarketAdmin = 6009 => "Signer is not the market admin",
    /// The fee is above 10,000 basis points (100 %).
    FeeTooHigh = 6010 => "Fee exceeds 10000 basis points",
    /// The minimum price per kWh is above the maximum.
    PriceBoundsReversed = 6011 => "Minimum price per kWh is above the maximum",
    /// A price bound of zero would let energy change hands for free.
    ZeroPrice = 6012 => "Price bounds must be greater than zero",
    /// The payment deadline is outside 60 s to 86,400 s.
    InvalidPaymentDeadline = 6013 => "Payment deadline must be between 60 and 86400 seconds",
    /// The oracle authority is the all-zero key.
    InvalidOracleAuthority = 6014 => "Oracle authority must be a real key",
    /// The system program account is not the system program.
    InvalidSystemProgram = 6015 => "System program account is not the system program",
    /// A checked arithmetic operation overflowed.
    ArithmeticOverflow = 6016 => "Arithmetic overflow",
    /// An update that changes nothing.
    EmptyUpdate = 6017 => "Update sets no field",
    /// The rent sysvar has an exemption threshold this program cannot compute without floats.
    UnsupportedRent = 6018 => "Rent exemption threshold is not supported",
}

impl From<NishatiError> for ProgramError {
    fn from(e: NishatiError) -> Self {
        ProgramError::Custom(e as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_from_6000() {
        for (i, e) in NishatiError::ALL.iter().enumerate() {
            assert_eq!(*e as u32, 6000 + i as u32, "{}", e.name());
            assert_eq!(NishatiError::from_code(*e as u32), Some(*e));
        }
        assert_eq!(NishatiError::from_code(5999), None);
    }

    #[test]
    fn log_line_has_anchor_shape() {
        assert_eq!(
            NishatiError::FeeTooHigh.log_line(),
            "AnchorError occurred. Error Code: FeeTooHigh. Error Number: 6010. \
             Error Message: Fee exceeds 10000 basis points."
        );
    }
}
