//! The sdm module's checks.

use crate::meter::*;
use crate::sdm::*;
use crate::{meter::testing::Recorded, modbus::seal};

pub fn floats_of_kwh_become_wh() {
    assert_eq!(kwh_bits_to_wh(0x3F80_0000), Some(1000)); // 1.0
    assert_eq!(kwh_bits_to_wh(0x4148_0000), Some(12_500)); // 12.5
    assert_eq!(kwh_bits_to_wh(0x449A_5225), Some(1_234_567)); // 1234.567
    assert_eq!(kwh_bits_to_wh(0x3A83_126F), Some(1)); // 0.001
    assert_eq!(kwh_bits_to_wh(0x0000_0000), Some(0));
    assert_eq!(kwh_bits_to_wh(0x8000_0000), Some(0)); // -0.0
    assert_eq!(kwh_bits_to_wh(0xBF80_0000), None); // -1.0
    assert_eq!(kwh_bits_to_wh(0x7FC0_0000), None); // NaN
    assert_eq!(kwh_bits_to_wh(0x7F80_0000), None); // +inf
    assert_eq!(kwh_bits_to_wh(0x7F7F_FFFF), None); // f32::MAX kWh: beyond u64 Wh
    assert_eq!(kwh_bits_to_wh(0x4B7F_FFFF), Some(16_777_215_000)); // 2^24 - 1, the last exact
    assert_eq!(kwh_bits_to_wh(0x3E80_0000), Some(250)); // 0.25
}

pub fn reads_import_and_export_in_one_request() {
    // 1234.567 kWh imported, 12.5 kWh exported.
    let mut reply = [0x01, 0x04, 0x08, 0x44, 0x9A, 0x52, 0x25, 0x41, 0x48, 0x00, 0x00, 0, 0];
    seal(&mut reply, 11);
    let mut meter = Sdm::new(Recorded { reply: &reply, request: [0; 8] }, 1, None);
    assert_eq!(meter.read(), Ok(Energy { exported_wh: 12_500, imported_wh: 1_234_567 }));
    // 01 04 00 48 00 04: four registers from 30073.
    assert_eq!(meter.port.request, [0x01, 0x04, 0x00, 0x48, 0x00, 0x04, 0x71, 0xDF]);
}

pub fn a_reset_meter_gives_no_reading() {
    let mut reply = [0x01, 0x04, 0x08, 0x44, 0x9A, 0x52, 0x25, 0x41, 0x48, 0x00, 0x00, 0, 0];
    seal(&mut reply, 11);
    let last = Energy { exported_wh: 20_000, imported_wh: 1_000_000 };
    let mut meter = Sdm::new(Recorded { reply: &reply, request: [0; 8] }, 1, Some(last));
    assert_eq!(
        meter.read(),
        Err(MeterError::WentBackwards {
            last,
            read: Energy { exported_wh: 12_500, imported_wh: 1_234_567 }
        })
    );
}

pub fn a_nan_register_is_named() {
    let mut reply = [0x01, 0x04, 0x08, 0x7F, 0xC0, 0x00, 0x00, 0x41, 0x48, 0x00, 0x00, 0, 0];
    seal(&mut reply, 11);
    let mut meter = Sdm::new(Recorded { reply: &reply, request: [0; 8] }, 1, None);
    assert_eq!(
        meter.read(),
        Err(MeterError::InvalidValue { register: IMPORT_ACTIVE_ENERGY, raw: 0x7FC0_0000 })
    );
}

pub fn a_silent_meter_is_named() {
    let mut meter = Sdm::new(Recorded { reply: &[], request: [0; 8] }, 1, None);
    assert_eq!(meter.read(), Err(MeterError::Silent));
}
