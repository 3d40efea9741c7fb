//! SNTP (RFC 4330): the request a meter sends and the reply's transmit time as unix seconds,
//! so that no reading is signed before the meter knows the time.

pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP era's start (1900) to the unix epoch (1970).
const NTP_TO_UNIX: u64 = 2_208_988_800;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SntpError {
    /// A reply shorter than the 48 bytes of an SNTP packet.
    Short(usize),
    /// The server's kiss-of-death (stratum 0): it asks the meter to go away (RFC 4330 §8);
    /// the four ASCII bytes are its code, e.g. `RATE` or `DENY`.
    KissOfDeath([u8; 4]),
    /// The server is not synchronised itself (leap indicator 3) or answered no time.
    Unsynchronised,
    /// Not a server's answer (mode is not 4).
    NotServerReply(u8),
}

/// A client request: version 4, mode 3, everything else zero (RFC 4330 §5).
pub fn request() -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = (4 << 3) | 3;
    packet
}

/// The reply's transmit timestamp in unix seconds.
pub fn parse_reply(reply: &[u8]) -> Result<u64, SntpError> {
    if reply.len() < PACKET_LEN {
        return Err(SntpError::Short(reply.len()));
    }
    let mode = reply[0] & 0x07;
    if mode != 4 {
        return Err(SntpError::NotServerReply(mode));
    }
    if reply[1] == 0 {
        let mut code = [0u8; 4];
        code.copy_from_slice(&reply[12..16]);
        return Err(SntpError::KissOfDeath(code));
    }
    let seconds = u64::from(u32::from_be_bytes([reply[40], reply[41], reply[42], reply[43]]));
    if reply[0] >> 6 == 3 || seconds < NTP_TO_UNIX {
        return Err(SntpError::Unsynchronised);
    }
    Ok(seconds - NTP_TO_UNIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(first: u8, stratum: u8, ntp_seconds: u32) -> [u8; PACKET_LEN] {
        let mut packet = [0u8; PACKET_LEN];
        packet[0] = first;
        packet[1] = stratum;
        packet[12..16].copy_from_slice(b"RATE");
        packet[40..44].copy_from_slice(&ntp_seconds.to_be_bytes());
        packet
    }

    #[test]
    fn the_request_is_version_4_client_mode() {
        let packet = request();
        assert_eq!(packet[0], 0x23);
        assert!(packet[1..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_reply_gives_unix_seconds() {
        // 2026-12-04T00:00:00Z is 1796342400 unix, 4005331200 NTP.
        assert_eq!(parse_reply(&reply(0x24, 2, 4_005_331_200)), Ok(1_796_342_400));
    }

    #[test]
    fn bad_replies_are_named() {
        assert_eq!(parse_reply(&[0x24; 47]), Err(SntpError::Short(47)));
        assert_eq!(parse_reply(&reply(0x24, 0, 0)), Err(SntpError::KissOfDeath(*b"RATE")));
        assert_eq!(parse_reply(&reply(0xE4, 2, 4_005_331_200)), Err(SntpError::Unsynchronised));
        assert_eq!(parse_reply(&reply(0x24, 2, 0)), Err(SntpError::Unsynchronised));
        assert_eq!(parse_reply(&reply(0x23, 2, 4_005_331_200)), Err(SntpError::NotServerReply(3)));
    }
}
