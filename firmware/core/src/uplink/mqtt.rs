//! The MQTT 3.1.1 packets a meter needs: CONNECT, CONNACK, PUBLISH at QoS 1, PUBACK, PINGREQ,
//! PINGRESP and DISCONNECT, encoded into and decoded from caller buffers.
//!
//! A codec of our own rather than `rust-mqtt` or `minimq`: the meter publishes to one topic at
//! QoS 1 and subscribes to nothing, which is seven fixed layouts (MQTT 3.1.1 §3); both crates
//! bring their own network driver and session loop, where the meter's uplink wants the
//! backlog, not the client library, to own what is in flight and what is resent.

/// Errors decoding a packet from the broker, or encoding one into too small a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MqttError {
    /// Fewer bytes than the packet's header says: read more and decode again.
    Short,
    /// The remaining length takes more than four bytes (§2.2.3).
    BadRemainingLength,
    /// A packet type a client never receives, or reserved flags set wrongly.
    UnexpectedPacket(u8),
    /// A packet whose body does not have its type's fixed length.
    BadLength { kind: u8, len: usize },
    /// The broker refused the connection with this CONNACK return code (§3.2.2.3).
    Refused(u8),
    /// The output buffer cannot hold the packet.
    BufferTooSmall,
    /// A string longer than MQTT's 65535 bytes.
    StringTooLong,
}

const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;
const PUBLISH: u8 = 0x30;
const PUBACK: u8 = 0x40;
const PINGREQ: u8 = 0xC0;
const PINGRESP: u8 = 0xD0;
const DISCONNECT: u8 = 0xE0;

/// PUBLISH flags: QoS 1, and DUP for a resend (§3.3.1).
const QOS1: u8 = 0x02;
const DUP: u8 = 0x08;

/// A client's CONNECT: a clean session each time, since the backlog, not the broker, keeps
/// what was not acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub keepalive_secs: u16,
}

/// A packet from the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    ConnAck { session_present: bool },
    PubAck { packet_id: u16 },
    PingResp,
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), MqttError> {
        let end = self.at + bytes.len();
        self.out.get_mut(self.at..end).ok_or(MqttError::BufferTooSmall)?.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    fn string(&mut self, bytes: &[u8]) -> Result<(), MqttError> {
        let len = u16::try_from(bytes.len()).map_err(|_| MqttError::StringTooLong)?;
        self.put(&len.to_be_bytes())?;
        self.put(bytes)
    }

    fn header(&mut self, first: u8, remaining: usize) -> Result<(), MqttError> {
        self.put(&[first])?;
        let mut left = remaining;
        loop {
            let mut byte = (left % 128) as u8;
            left /= 128;
            if left > 0 {
                byte |= 0x80;
            }
            self.put(&[byte])?;
            if left == 0 {
                return Ok(());
            }
        }
    }
}

fn string_len(bytes: &[u8]) -> usize {
    2 + bytes.len()
}

/// Encodes a CONNECT into `out`; returns its length.
pub fn encode_connect(connect: &Connect<'_>, out: &mut [u8]) -> Result<usize, MqttError> {
    let mut flags = 0x02; // clean session
    let mut remaining = 10 + string_len(connect.client_id.as_bytes());
    if let Some(user) = connect.username {
        flags |= 0x80;
        remaining += string_len(user.as_bytes());
    }
    if let Some(password) = connect.password {
        flags |= 0x40;
        remaining += string_len(password);
    }
    let mut w = Writer { out, at: 0 };
    w.header(CONNECT, remaining)?;
    w.string(b"MQTT")?;
    w.put(&[4, flags])?;
    w.put(&connect.keepalive_secs.to_be_bytes())?;
    w.string(connect.client_id.as_bytes())?;
    if let Some(user) = connect.username {
        w.string(user.as_bytes())?;
    }
    if let Some(password) = connect.password {
        w.string(password)?;
    }
    Ok(w.at)
}

/// Encodes a QoS 1 PUBLISH; `dup` marks a resend of a packet id not yet acknowledged.
pub fn encode_publish(
    topic: &str,
    packet_id: u16,
    dup: bool,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, MqttError> {
    let remaining = string_len(topic.as_bytes()) + 2 + payload.len();
    let mut w = Writer { out, at: 0 };
    w.header(PUBLISH | QOS1 | if dup { DUP } else { 0 }, remaining)?;
    w.string(topic.as_bytes())?;
    w.put(&packet_id.to_be_bytes())?;
    w.put(payload)?;
    Ok(w.at)
}

pub const PINGREQ_PACKET: [u8; 2] = [PINGREQ, 0];
pub const DISCONNECT_PACKET: [u8; 2] = [DISCONNECT, 0];

/// Decodes the packet at the start of `input`; returns it and how many bytes it took.
pub fn decode(input: &[u8]) -> Result<(Incoming, usize), MqttError> {
    let first = *input.first().ok_or(MqttError::Short)?;
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        let byte = *input.get(at).ok_or(MqttError::Short)?;
        remaining |= usize::from(byte & 0x7F) << (7 * (at - 1));
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at == 5 {
            return Err(MqttError::BadRemainingLength);
        }
    }
    let body = input.get(at..at + remaining).ok_or(MqttError::Short)?;
    let fixed = |len: usize| {
        if remaining == len {
            Ok(())
        } else {
            Err(MqttError::BadLength { kind: first, len: remaining })
        }
    };
    let packet = match first {
        CONNACK => {
            fixed(2)?;
            if body[1] != 0 {
                return Err(MqttError::Refused(body[1]));
            }
            Incoming::ConnAck { session_present: body[0] & 1 == 1 }
        }
        PUBACK => {
            fixed(2)?;
            Incoming::PubAck { packet_id: u16::from_be_bytes([body[0], body[1]]) }
        }
        PINGRESP => {
            fixed(0)?;
            Incoming::PingResp
        }
        other => return Err(MqttError::UnexpectedPacket(other)),
    };
    Ok((packet, at + remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_has_the_spec_layout() {
        // MQTT 3.1.1 §3.1: "MQTT", level 4, flags, keepalive, then the payload's strings.
        let mut out = [0u8; 64];
        let connect = Connect {
            client_id: "m1",
            username: Some("u"),
            password: Some(b"pw"),
            keepalive_secs: 60,
        };
        let n = encode_connect(&connect, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[
                0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 2, b'm', b'1', 0, 1,
                b'u', 0, 2, b'p', b'w'
            ]
        );
        let anonymous = Connect { client_id: "m1", username: None, password: None, ..connect };
        let n = encode_connect(&anonymous, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'm', b'1']
        );
    }

    #[test]
    fn publish_is_qos1_with_its_packet_id_and_dup_on_resend() {
        let mut out = [0u8; 300];
        let payload = [7u8; 101];
        let n = encode_publish("a/b", 0x0102, false, &payload, &mut out).unwrap();
        // 2 + 3 + 2 + 101 = 108 remaining bytes: one length byte.
        assert_eq!(&out[..9], &[0x32, 108, 0, 3, b'a', b'/', b'b', 1, 2]);
        assert_eq!(&out[9..n], &payload);
        encode_publish("a/b", 0x0102, true, &payload, &mut out).unwrap();
        assert_eq!(out[0], 0x3A);
    }

    #[test]
    fn long_remaining_lengths_take_continuation_bytes() {
        // §2.2.3: 321 = 0xC1 0x02.
        let mut out = [0u8; 400];
        let payload = [0u8; 316];
        encode_publish("t", 1, false, &payload, &mut out).unwrap();
        assert_eq!(&out[..3], &[0x32, 0xC1, 0x02]);
    }

    #[test]
    fn decodes_the_brokers_packets() {
        assert_eq!(decode(&[0x20, 2, 0, 0]), Ok((Incoming::ConnAck { session_present: false }, 4)));
        assert_eq!(
            decode(&[0x40, 2, 0x12, 0x34, 0xD0]),
            Ok((Incoming::PubAck { packet_id: 0x1234 }, 4))
        );
        assert_eq!(decode(&[0xD0, 0]), Ok((Incoming::PingResp, 2)));
    }

    #[test]
    fn malformed_and_short_packets_are_named() {
        assert_eq!(decode(&[]), Err(MqttError::Short));
        assert_eq!(decode(&[0x40, 2, 0x12]), Err(MqttError::Short));
        assert_eq!(decode(&[0x20, 2, 0, 5]), Err(MqttError::Refused(5)));
        assert_eq!(decode(&[0x40, 3, 0, 1, 2]), Err(MqttError::BadLength { kind: 0x40, len: 3 }));
        assert_eq!(decode(&[0x30, 0]), Err(MqttError::UnexpectedPacket(0x30)));
        assert_eq!(decode(&[0x40, 0xFF, 0xFF, 0xFF, 0xFF, 1]), Err(MqttError::BadRemainingLength));
        let mut small = [0u8; 4];
        assert_eq!(
            encode_publish("t", 1, false, &[0; 8], &mut small),
            Err(MqttError::BufferTooSmall)
        );
    }
}
