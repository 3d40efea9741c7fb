//! The Nishati meter's logic that is not a register: it signs readings and its registration,
//! hands out reading counters that survive power cuts, keeps unsent readings in a flash
//! backlog, and speaks each supported meter's protocol over a byte port the chip provides.
//! Tested on the host; the chip crates (firmware/esp) only wire it to peripherals.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod backlog;
#[cfg(any(test, feature = "checks"))]
pub mod checks;
pub mod console;
pub mod counter;
pub mod impulse;
pub mod meter;
pub mod modbus;
pub mod pzem;
pub mod qr;
pub mod sdm;
pub mod settings;
pub mod signer;
#[cfg(any(test, feature = "std", feature = "checks"))]
pub mod sim_flash;
pub mod simulated;
pub mod store;
pub mod uplink;
