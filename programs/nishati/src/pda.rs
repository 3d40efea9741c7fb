//! Every PDA seed the program uses, in one place; the Python client mirrors this module.

pub const MARKET_SEED: &[u8] = b"market";
