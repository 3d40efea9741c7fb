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
    pub(crate) port: P,
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
