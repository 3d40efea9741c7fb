//! Account layouts: `#[repr(C)]` structs read in place (zero-copy), each led by its Anchor
//! account discriminator and laid out with no implicit padding, so the borsh layout the IDL
//! describes and the C layout the program reads are the same bytes.

pub mod market;
