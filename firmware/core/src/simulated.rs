//! A simulated meter for the host runner and for boards with no meter wired: it integrates set
//! powers over the seconds it is advanced, in integer W·s, so its totals are exact.

use crate::meter::{Energy, EnergyMeter, MeterError};

const WS_PER_WH: u64 = 3600;

#[derive(Debug, Default)]
pub struct SimulatedMeter {
    export_w: u32,
    import_w: u32,
    exported_ws: u64,
    imported_ws: u64,
}

impl SimulatedMeter {
    /// A meter whose totals start at `start` (Wh).
    pub fn new(start: Energy) -> Self {
        Self {
            exported_ws: start.exported_wh * WS_PER_WH,
            imported_ws: start.imported_wh * WS_PER_WH,
            ..Self::default()
        }
    }

    /// The powers flowing from now on, in W.
    pub fn set_power(&mut self, export_w: u32, import_w: u32) {
        self.export_w = export_w;
        self.import_w = import_w;
    }

    pub fn advance(&mut self, seconds: u32) {
        self.exported_ws += u64::from(self.export_w) * u64::from(seconds);
        self.imported_ws += u64::from(self.import_w) * u64::from(seconds);
    }
}

impl EnergyMeter for SimulatedMeter {
    fn read(&mut self) -> Result<Energy, MeterError> {
        Ok(Energy {
            exported_wh: self.exported_ws / WS_PER_WH,
            imported_wh: self.imported_ws / WS_PER_WH,
        })
    }
}
