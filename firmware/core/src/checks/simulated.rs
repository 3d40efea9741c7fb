//! The simulated module's checks.

use crate::meter::*;
use crate::simulated::*;

pub fn integrates_power_exactly() {
    let mut meter = SimulatedMeter::new(Energy { exported_wh: 10, imported_wh: 0 });
    meter.set_power(1500, 200);
    meter.advance(300);
    assert_eq!(meter.read(), Ok(Energy { exported_wh: 135, imported_wh: 16 }));
    meter.advance(300);
    assert_eq!(meter.read(), Ok(Energy { exported_wh: 260, imported_wh: 33 }));
}
