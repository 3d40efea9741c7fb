//! The modbus module's checks.

use crate::meter::*;
use crate::modbus::*;

pub fn crc_of_the_eastron_protocol_examples() {
    // Eastron's Modbus protocol document: read the voltage (input register 30001) of meter
    // 1, and its reply of 230.2 V.
    assert_eq!(
        read_input_registers_request(1, 0x0000, 2),
        [0x01, 0x04, 0x00, 0x00, 0x00, 0x02, 0x71, 0xCB]
    );
    let reply = [0x01, 0x04, 0x04, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38];
    let mut registers = [0u16; 2];
    parse_read_reply(1, &reply, reply.len(), &mut registers).unwrap();
    assert_eq!(registers, [0x4366, 0x3334]);
}

pub fn each_broken_reply_has_its_name() {
    let reply = [0x01, 0x04, 0x04, 0x43, 0x66, 0x33, 0x34, 0x1B, 0x38];
    let mut registers = [0u16; 2];
    assert_eq!(parse_read_reply(1, &reply, 0, &mut registers), Err(MeterError::Silent));
    assert_eq!(
        parse_read_reply(1, &reply, 6, &mut registers),
        Err(MeterError::Timeout { received: 6, expected: 9 })
    );
    let mut flipped = reply;
    flipped[4] ^= 0x01;
    assert!(matches!(
        parse_read_reply(1, &flipped, 9, &mut registers),
        Err(MeterError::Crc { received: 0x381B, .. })
    ));
    assert_eq!(parse_read_reply(2, &reply, 9, &mut registers), Err(MeterError::UnexpectedReply));
    // Exception 02 (illegal data address), as the Modbus specification frames it.
    let mut exception = [0x01, 0x84, 0x02, 0, 0];
    seal(&mut exception, 3);
    assert_eq!(exception[3..], [0xC2, 0xC1]);
    assert_eq!(
        parse_read_reply(1, &exception, 5, &mut registers),
        Err(MeterError::Exception { function: 0x04, code: 0x02 })
    );
}
