//! The impulse module's checks.

use crate::impulse::*;
use crate::meter::*;

const CONFIG: ImpulseConfig =
    ImpulseConfig { per_kwh: 3200, debounce_ms: 20, direction: Direction::Import };

pub fn bounces_count_once() {
    let mut counter = ImpulseCounter::new(CONFIG, 0);
    assert!(counter.edge(1000));
    assert!(!counter.edge(1005));
    assert!(!counter.edge(1019));
    assert!(counter.edge(1020));
    assert_eq!(counter.total(), 2);
}

pub fn the_millisecond_clock_may_wrap() {
    let mut counter = ImpulseCounter::new(CONFIG, 0);
    assert!(counter.edge(u32::MAX - 5));
    assert!(!counter.edge(3));
    assert!(counter.edge(15));
}

pub fn wh_are_whole_and_the_total_resumes() {
    let mut counter = ImpulseCounter::new(CONFIG, 3199);
    assert_eq!(counter.energy(), Energy { exported_wh: 0, imported_wh: 999 });
    counter.edge(0);
    assert_eq!(counter.energy(), Energy { exported_wh: 0, imported_wh: 1000 });
    let resumed = ImpulseCounter::new(CONFIG, counter.total());
    assert_eq!(resumed.energy(), counter.energy());
}
