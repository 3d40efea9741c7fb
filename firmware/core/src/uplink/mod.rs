//! The meter's uplink, without a transport: MQTT 3.1.1 packets and the publishing session
//! over them, the oracle's HTTP ingest as the fallback, and SNTP time. The chip (embassy-net
//! and TLS) and the host runner (std TCP) move the bytes; both run this same logic.

pub mod clock;
pub mod endpoint;
pub mod http;
pub mod mqtt;
pub mod pin;
pub mod session;
pub mod sntp;
#[cfg(test)]
mod tests;
#[cfg(feature = "tls")]
pub mod tls;

/// Longest readings topic: a root of up to 32 bytes and two base58 keys.
pub const TOPIC_MAX_LEN: usize = 32 + 2 * 44 + 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicTooLong;

/// The oracle's readings topic for a meter: `<root>/<market>/meters/<meter>/readings`
/// (oracle/nishati_oracle/readings/mqtt.py `readings_topic`).
pub fn readings_topic<'a>(
    root: &str,
    market: &str,
    meter: &str,
    out: &'a mut [u8; TOPIC_MAX_LEN],
) -> Result<&'a str, TopicTooLong> {
    let mut at = 0;
    for part in [root, "/", market, "/meters/", meter, "/readings"] {
        let end = at + part.len();
        out.get_mut(at..end).ok_or(TopicTooLong)?.copy_from_slice(part.as_bytes());
        at = end;
    }
    Ok(core::str::from_utf8(&out[..at]).expect("joined from strings"))
}
