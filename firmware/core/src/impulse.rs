//! The impulse input: a photodiode on the utility meter's LED, which flashes a fixed number of
//! times per kWh (commonly 1,000 or 3,200). Edges closer together than the debounce time are one
//! flash; the total count is what is kept across reboots (`Storage::set_impulses`), saved before
//! each reading is signed so a reading never counts impulses a reboot could forget.

use crate::meter::{Direction, Energy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImpulseConfig {
    /// Flashes per kWh, as printed on the meter (`imp/kWh`).
    pub per_kwh: u32,
    /// Edges within this many ms of the last counted one are bounce, not a flash.
    pub debounce_ms: u32,
    pub direction: Direction,
}

#[derive(Debug)]
pub struct ImpulseCounter {
    config: ImpulseConfig,
    total: u64,
    last_edge_ms: Option<u32>,
}

impl ImpulseCounter {
    /// A counter resuming from `total` impulses (the last saved total; 0 on a new meter).
    pub fn new(config: ImpulseConfig, total: u64) -> Self {
        Self { config, total, last_edge_ms: None }
    }

    /// A rising edge at `now_ms` (a wrapping millisecond clock); `true` if it was counted.
    pub fn edge(&mut self, now_ms: u32) -> bool {
        if let Some(last) = self.last_edge_ms {
            if now_ms.wrapping_sub(last) < self.config.debounce_ms {
                return false;
            }
        }
        self.last_edge_ms = Some(now_ms);
        self.total += 1;
        true
    }

    /// All impulses counted since the meter was installed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whole Wh in the impulses counted (a flash is 1000 / `per_kwh` Wh; the remainder waits
    /// for the next flashes).
    pub fn energy(&self) -> Energy {
        let per_kwh = u64::from(self.config.per_kwh.max(1));
        self.config.direction.energy(self.total * 1000 / per_kwh)
    }
}
