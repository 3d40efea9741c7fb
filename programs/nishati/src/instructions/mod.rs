//! One module per instruction, named `<noun>_<verb>` as the IDL names it. Each exports its
//! discriminator, its account list (checked against the IDL) and `process`.

pub mod market_initialize;
pub mod market_update;

/// An instruction account as the IDL lists it: name, writable, signer.
pub type AccountSpec = (&'static str, bool, bool);
