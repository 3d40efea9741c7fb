//! The pzem module's checks.

use crate::meter::*;
use crate::pzem::*;
use crate::{meter::testing::Recorded, modbus::seal};

/// A reply laid out as the datasheet's register table: 230.0 V, 1.000 A (0x03E8), 230.0 W
/// (0x08FC), 70,000 Wh (0x0001_1170), 50.0 Hz, power factor 1.00, no alarm.
fn reply() -> [u8; 25] {
    let mut frame = [0u8; 25];
    frame[..3].copy_from_slice(&[0xF8, 0x04, 0x14]);
    let registers: [u16; 10] =
        [0x08FC, 0x03E8, 0x0000, 0x08FC, 0x0000, 0x1170, 0x0001, 0x01F4, 0x0064, 0x0000];
    for (i, r) in registers.iter().enumerate() {
        frame[3 + 2 * i..5 + 2 * i].copy_from_slice(&r.to_be_bytes());
    }
    seal(&mut frame, 23);
    frame
}

pub fn sends_the_datasheet_read_command() {
    let reply = reply();
    let mut meter = Pzem::new(Recorded { reply: &reply, request: [0; 8] }, Direction::Export, None);
    assert_eq!(meter.read(), Ok(Energy { exported_wh: 70_000, imported_wh: 0 }));
    // The datasheet's "read measurement result" command for the general address.
    assert_eq!(meter.port.request, [0xF8, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x64, 0x64]);
}

pub fn a_module_on_the_grid_line_counts_import() {
    let reply = reply();
    let mut meter = Pzem::new(Recorded { reply: &reply, request: [0; 8] }, Direction::Import, None);
    assert_eq!(meter.read(), Ok(Energy { exported_wh: 0, imported_wh: 70_000 }));
}

pub fn a_reset_energy_counter_gives_no_reading() {
    let reply = reply();
    let last = Energy { exported_wh: 70_001, imported_wh: 0 };
    let port = Recorded { reply: &reply, request: [0; 8] };
    let mut meter = Pzem::new(port, Direction::Export, Some(last));
    assert!(matches!(meter.read(), Err(MeterError::WentBackwards { .. })));
}

pub fn a_cut_reply_is_a_timeout() {
    let reply = reply();
    let mut meter =
        Pzem::new(Recorded { reply: &reply[..20], request: [0; 8] }, Direction::Export, None);
    assert_eq!(meter.read(), Err(MeterError::Timeout { received: 20, expected: 25 }));
}
