//! Peacefair PZEM-004T v3: one line, one direction, over its TTL UART at 9600 baud (Modbus
//! RTU). Its ten input registers from 0x0000 are voltage, current (2), power (2), energy (2),
//! frequency, power factor and alarm; energy is a u32 of Wh, low register first. One module
//! measures one line: on the solar line it counts export, on the grid line import.

use crate::{
    meter::{Direction, Energy, EnergyMeter, MeterError, Monotonic, Port},
    modbus,
};

/// The address every PZEM answers to, whatever its own: one module per UART.
pub const GENERAL_ADDRESS: u8 = 0xF8;
pub const REGISTERS: u16 = 10;
pub const ENERGY_LOW: u16 = 0x0005;
/// The datasheet's reply time is under 100 ms.
pub const TIMEOUT_MS: u32 = 200;

pub struct Pzem<P: Port> {
    port: P,
    direction: Direction,
    totals: Monotonic,
}

impl<P: Port> Pzem<P> {
    /// A module measuring `direction`, whose totals may not go below `last`.
    pub fn new(port: P, direction: Direction, last: Option<Energy>) -> Self {
        Self { port, direction, totals: Monotonic::new(last) }
    }
}

impl<P: Port> EnergyMeter for Pzem<P> {
    fn read(&mut self) -> Result<Energy, MeterError> {
        let mut registers = [0u16; REGISTERS as usize];
        modbus::read_input_registers(
            &mut self.port,
            GENERAL_ADDRESS,
            0x0000,
            &mut registers,
            TIMEOUT_MS,
        )?;
        let low = usize::from(ENERGY_LOW);
        let wh = u64::from(registers[low]) | u64::from(registers[low + 1]) << 16;
        self.totals.check(self.direction.energy(wh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn sends_the_datasheet_read_command() {
        let reply = reply();
        let mut meter =
            Pzem::new(Recorded { reply: &reply, request: [0; 8] }, Direction::Export, None);
        assert_eq!(meter.read(), Ok(Energy { exported_wh: 70_000, imported_wh: 0 }));
        // The datasheet's "read measurement result" command for the general address.
        assert_eq!(meter.port.request, [0xF8, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x64, 0x64]);
    }

    #[test]
    fn a_module_on_the_grid_line_counts_import() {
        let reply = reply();
        let mut meter =
            Pzem::new(Recorded { reply: &reply, request: [0; 8] }, Direction::Import, None);
        assert_eq!(meter.read(), Ok(Energy { exported_wh: 0, imported_wh: 70_000 }));
    }

    #[test]
    fn a_reset_energy_counter_gives_no_reading() {
        let reply = reply();
        let last = Energy { exported_wh: 70_001, imported_wh: 0 };
        let port = Recorded { reply: &reply, request: [0; 8] };
        let mut meter = Pzem::new(port, Direction::Export, Some(last));
        assert!(matches!(meter.read(), Err(MeterError::WentBackwards { .. })));
    }

    #[test]
    fn a_cut_reply_is_a_timeout() {
        let reply = reply();
        let mut meter =
            Pzem::new(Recorded { reply: &reply[..20], request: [0; 8] }, Direction::Export, None);
        assert_eq!(meter.read(), Err(MeterError::Timeout { received: 20, expected: 25 }));
    }
}
