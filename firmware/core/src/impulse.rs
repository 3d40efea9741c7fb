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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: ImpulseConfig =
        ImpulseConfig { per_kwh: 3200, debounce_ms: 20, direction: Direction::Import };

    #[test]
    fn bounces_count_once() {
        let mut counter = ImpulseCounter::new(CONFIG, 0);
        assert!(counter.edge(1000));
        assert!(!counter.edge(1005));
        assert!(!counter.edge(1019));
        assert!(counter.edge(1020));
        assert_eq!(counter.total(), 2);
    }

    #[test]
    fn the_millisecond_clock_may_wrap() {
        let mut counter = ImpulseCounter::new(CONFIG, 0);
        assert!(counter.edge(u32::MAX - 5));
        assert!(!counter.edge(3));
        assert!(counter.edge(15));
    }

    #[test]
    fn wh_are_whole_and_the_total_resumes() {
        let mut counter = ImpulseCounter::new(CONFIG, 3199);
        assert_eq!(counter.energy(), Energy { exported_wh: 0, imported_wh: 999 });
        counter.edge(0);
        assert_eq!(counter.energy(), Energy { exported_wh: 0, imported_wh: 1000 });
        let resumed = ImpulseCounter::new(CONFIG, counter.total());
        assert_eq!(resumed.energy(), counter.energy());
    }
}
