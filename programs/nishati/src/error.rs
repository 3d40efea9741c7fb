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
    // Households, readings, offers and trades.
    /// A reading is not 37 bytes long.
    InvalidReadingLength = 6019 => "Reading is not 37 bytes",
    /// A reading does not start with the `NSHR` domain prefix.
    InvalidReadingMagic = 6020 => "Reading does not start with NSHR",
    /// A reading has a version this program does not know.
    UnsupportedReadingVersion = 6021 => "Reading version is not supported",
    /// A reading names another market.
    ReadingForAnotherMarket = 6022 => "Reading is for another market",
    /// A reading's signing key is not the household's registered meter.
    MeterMismatch = 6023 => "Reading is not signed by the household's meter",
    /// A reading's counter is not above the last accepted counter.
    ReadingReplayed = 6024 => "Reading counter is not above the last accepted one",
    /// A reading's timestamp is before the last accepted timestamp.
    ReadingOutOfOrder = 6025 => "Reading timestamp is before the last accepted one",
    /// A reading's timestamp is more than the allowed skew ahead of the clock.
    ReadingFromTheFuture = 6026 => "Reading timestamp is ahead of the cluster clock",
    /// A reading's cumulative export or import is below the last accepted value.
    MeterWentBackwards = 6027 => "Cumulative energy in the reading is below the last accepted value",
    /// The instruction at the given index is not an earlier Ed25519-program instruction.
    MissingEd25519Instruction = 6028 => "No Ed25519 program instruction at the given index",
    /// The Ed25519 instruction's header, offsets or size differ from the reading layout.
    InvalidEd25519Instruction = 6029 => "Ed25519 instruction layout or offsets are not the expected ones",
    /// The remaining accounts are not one household and energy account per reading.
    AttestAccountsMismatch = 6030 => "Accounts do not match the readings: a household and its energy account per reading",
    /// The instructions sysvar account is wrong.
    InvalidInstructionsSysvar = 6031 => "Instructions sysvar account is not the instructions sysvar",
    /// The signer is not the market's oracle authority.
    NotOracle = 6032 => "Signer is not the market's oracle authority",
    /// The signer is neither the owner nor, for a custodial household, the oracle.
    NotHouseholdAuthority = 6033 => "Signer may not act for this household",
    /// The household account is not the PDA of its seeds.
    InvalidHouseholdAddress = 6034 => "Household account is not the PDA of its seeds",
    /// The meter record is not the PDA of its seeds.
    InvalidMeterRecordAddress = 6035 => "Meter record is not the PDA of its seeds",
    /// The offer account is not the PDA of its seeds.
    InvalidOfferAddress = 6036 => "Offer account is not the PDA of its seeds",
    /// The trade account is not the PDA of its seeds.
    InvalidTradeAddress = 6037 => "Trade account is not the PDA of its seeds",
    /// The mint is not the market's energy mint.
    InvalidEnergyMint = 6038 => "Energy mint is not this market's mint",
    /// The token account is not the household's energy account.
    InvalidEnergyAccount = 6039 => "Energy token account is not the household's",
    /// The token account is not the offer's escrow.
    InvalidEscrow = 6040 => "Escrow token account is not the offer's",
    /// The token program account is not SPL Token.
    InvalidTokenProgram = 6041 => "Token program account is not the SPL Token program",
    /// The rent receiver is not the account that paid the rent.
    InvalidRentReceiver = 6042 => "Rent receiver is not who paid the rent",
    /// An account belongs to another market.
    WrongMarket = 6043 => "Account belongs to another market",
    /// The meter key already has a meter record (active or retired).
    MeterAlreadyRegistered = 6044 => "Meter key is already registered",
    /// The meter key is all zeros.
    InvalidMeterKey = 6045 => "Meter key must be a real key",
    /// The market is paused: no new offers or trades.
    MarketPaused = 6046 => "Market is paused",
    /// Resume was asked of a market that is not paused.
    MarketNotPaused = 6047 => "Market is not paused",
    /// An offer price is outside the market's bounds.
    PriceOutOfBounds = 6048 => "Price is outside the market's bounds",
    /// An amount of energy is zero.
    ZeroAmount = 6049 => "Amount must be greater than zero",
    /// An offer's expiry is not in the future.
    InvalidExpiry = 6050 => "Offer expiry must be in the future",
    /// The offer has expired.
    OfferExpired = 6051 => "Offer has expired",
    /// The offer is cancelled.
    OfferCancelled = 6052 => "Offer is cancelled",
    /// The household holds fewer energy tokens than asked.
    InsufficientEnergy = 6053 => "Not enough energy tokens",
    /// A trade asks for more than the offer's unreserved energy.
    NotEnoughOfferedEnergy = 6054 => "Trade is larger than the energy left in the offer",
    /// A household tried to buy its own offer.
    SelfTrade = 6055 => "A household cannot buy its own offer",
    /// The trade account does not exist (never opened, or already closed).
    TradeNotFound = 6056 => "Trade does not exist: never opened, or already settled or cancelled",
    /// Someone other than the oracle tried to cancel a trade before its deadline.
    TradeDeadlineNotReached = 6057 => "Only the oracle may cancel a trade before its deadline",
    /// Someone other than the seller tried to cancel an offer before it expired.
    OfferNotExpired = 6058 => "Only the seller may cancel an offer before it expires",
    /// After a change, the escrow balance differs from reserved plus unreserved energy.
    EscrowInvariantViolated = 6059 => "Escrow balance is not reserved plus unreserved energy",
    // Market integrity: installers, meter proofs, mint bounds, trade addresses and settlement.
    /// One account was passed in two roles that must be different accounts.
    DuplicateAccount = 6060 => "The same account is passed in two roles that must differ",
    /// The installer record is not the PDA of (market, installer).
    InvalidInstallerAddress = 6061 => "Installer record is not the PDA of its seeds",
    /// The installer has no record in this market (never added, or removed).
    InstallerNotApproved = 6062 => "Installer is not approved by this market",
    /// `installer_add` for an installer the market already approves.
    InstallerAlreadyApproved = 6063 => "Installer is already approved by this market",
    /// The meter's signed registration message is not the one for this market, household and key.
    InvalidMeterRegistration = 6064 => "Meter registration message is not the expected one",
    /// A reading is dated before the chain time its meter was registered.
    ReadingBeforeMeterRegistered = 6065 => "Reading is dated before its meter was registered",
    /// A reading mints more than the market's export limit over the chain time since the meter's
    /// last attestation.
    ExportAboveMeterLimit = 6066 => "Minted energy is above the export limit over the chain time since the last attestation",
    /// Minting this would pass the market's daily mint cap.
    MintCeilingReached = 6067 => "The market's daily mint cap is reached",
    /// The export limit is outside 1 W to 1 MW.
    InvalidMaxExport = 6068 => "Meter export limit must be between 1 and 100000000 watts",
    /// The daily mint cap is zero.
    InvalidMintCap = 6069 => "Daily mint cap must be greater than zero",
    /// The cancel grace is outside 60 s to 86,400 s.
    InvalidCancelGrace = 6070 => "Cancel grace must be between 60 and 86400 seconds",
    /// The open trade limit per buyer is zero.
    InvalidOpenTradeLimit = 6071 => "Open trade limit must be at least 1",
    /// `trade_open` named a trade index other than the offer's next one (another trade took it).
    StaleTradeIndex = 6072 => "Trade index is not the offer's next trade index",
    /// The buyer household already holds the market's limit of pending trades.
    TooManyOpenTrades = 6073 => "Buyer household holds the market's limit of open trades",
    /// The trade's buyer is not the buyer the oracle's settlement names.
    SettlementBuyerMismatch = 6074 => "Trade's buyer is not the one the settlement names",
    /// The trade's Wh or total is not what the oracle's settlement names.
    SettlementAmountMismatch = 6075 => "Trade's Wh or total is not what the settlement names",
    /// Someone other than the oracle tried to cancel a trade in the grace after its deadline.
    TradeInGracePeriod = 6076 => "Only the oracle may cancel a trade in the grace period after its deadline",
    /// A trade closed for a buyer whose open trade count is already zero.
    OpenTradeCountCorrupt = 6077 => "Household's open trade count is already zero",
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
