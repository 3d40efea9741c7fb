//! Modbus RTU framing, as the Eastron SDM meters and the PZEM-004T v3 speak it: function 0x04
//! (read input registers), CRC-16/MODBUS sent low byte first, exceptions as `function | 0x80`.

use crate::meter::{MeterError, Port};

pub const READ_INPUT_REGISTERS: u8 = 0x04;
const EXCEPTION: u8 = 0x80;
/// Address, function, exception code, CRC.
const EXCEPTION_LEN: usize = 5;
/// Most registers one read returns here (the PZEM's ten are the most a driver asks for).
pub const MAX_REGISTERS: usize = 16;

/// CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for byte in bytes {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// Appends the CRC to the `len` bytes of `frame` and returns the whole frame.
pub fn seal(frame: &mut [u8], len: usize) -> &[u8] {
    let crc = crc16(&frame[..len]).to_le_bytes();
    frame[len..len + 2].copy_from_slice(&crc);
    &frame[..len + 2]
}

fn check_crc(frame: &[u8]) -> Result<(), MeterError> {
    let (body, tail) = frame.split_at(frame.len() - 2);
    let computed = crc16(body);
    let received = u16::from_le_bytes([tail[0], tail[1]]);
    if computed != received {
        return Err(MeterError::Crc { computed, received });
    }
    Ok(())
}

/// The 8-byte request to read `count` input registers from `start` at `address`.
pub fn read_input_registers_request(address: u8, start: u16, count: u16) -> [u8; 8] {
    let mut frame = [0u8; 8];
    frame[0] = address;
    frame[1] = READ_INPUT_REGISTERS;
    frame[2..4].copy_from_slice(&start.to_be_bytes());
    frame[4..6].copy_from_slice(&count.to_be_bytes());
    seal(&mut frame, 6);
    frame
}

/// Reads the registers of a reply of `received` bytes into `out` (its length is the count
/// asked for).
pub fn parse_read_reply(
    address: u8,
    reply: &[u8],
    received: usize,
    out: &mut [u16],
) -> Result<(), MeterError> {
    let expected = 5 + 2 * out.len();
    if received == 0 {
        return Err(MeterError::Silent);
    }
    let frame = &reply[..received];
    if received == EXCEPTION_LEN && frame[1] == READ_INPUT_REGISTERS | EXCEPTION {
        check_crc(frame)?;
        if frame[0] != address {
            return Err(MeterError::UnexpectedReply);
        }
        return Err(MeterError::Exception { function: READ_INPUT_REGISTERS, code: frame[2] });
    }
    if received < expected {
        return Err(MeterError::Timeout { received, expected });
    }
    check_crc(frame)?;
    if frame[0] != address
        || frame[1] != READ_INPUT_REGISTERS
        || usize::from(frame[2]) != 2 * out.len()
    {
        return Err(MeterError::UnexpectedReply);
    }
    for (i, register) in out.iter_mut().enumerate() {
        *register = u16::from_be_bytes([frame[3 + 2 * i], frame[4 + 2 * i]]);
    }
    Ok(())
}

/// Reads `out.len()` input registers from `start` at `address` through `port`.
pub fn read_input_registers(
    port: &mut impl Port,
    address: u8,
    start: u16,
    out: &mut [u16],
    timeout_ms: u32,
) -> Result<(), MeterError> {
    debug_assert!(out.len() <= MAX_REGISTERS);
    let request = read_input_registers_request(address, start, out.len() as u16);
    let mut reply = [0u8; 5 + 2 * MAX_REGISTERS];
    let expected = 5 + 2 * out.len();
    let received = port.transact(&request, &mut reply[..expected], timeout_ms)?;
    parse_read_reply(address, &reply, received, out)
}
