//! Where the meter's clock is set from: an SNTP server over UDP (the core's `uplink::sntp`
//! codec), or the host's own clock when no server is given.

use std::{
    fmt, io,
    net::{ToSocketAddrs, UdpSocket},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nishati_meter_core::uplink::sntp::{self, SntpError};

/// How long one SNTP request waits for its answer.
pub const SNTP_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub enum TimeError {
    /// The server's name gave no address.
    Unresolved(String),
    /// Sending, or no answer within [`SNTP_TIMEOUT`] (or the port refused it).
    Io(io::Error),
    /// An answer the meter may not take its time from.
    Reply(SntpError),
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unresolved(server) => write!(f, "SNTP server {server} has no address"),
            Self::Io(e) => write!(f, "SNTP: {e}"),
            Self::Reply(e) => write!(f, "SNTP answer refused: {e:?}"),
        }
    }
}

pub enum TimeSource {
    /// `HOST:PORT` of an SNTP server.
    Sntp(String),
    /// The host's clock (no `--sntp`).
    System,
}

impl TimeSource {
    /// The time now, in unix seconds.
    pub fn fetch(&self) -> Result<u64, TimeError> {
        match self {
            Self::Sntp(server) => query(server, SNTP_TIMEOUT),
            Self::System => {
                Ok(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs())
            }
        }
    }
}

/// One SNTP request to `server`; its answer's transmit time in unix seconds. The socket is
/// connected to the server, so a datagram from anywhere else is not taken for its answer.
pub fn query(server: &str, timeout: Duration) -> Result<u64, TimeError> {
    let address = server
        .to_socket_addrs()
        .map_err(|_| TimeError::Unresolved(server.into()))?
        .next()
        .ok_or_else(|| TimeError::Unresolved(server.into()))?;
    let local = if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).map_err(TimeError::Io)?;
    socket.connect(address).map_err(TimeError::Io)?;
    socket.set_read_timeout(Some(timeout)).map_err(TimeError::Io)?;
    socket.send(&sntp::request()).map_err(TimeError::Io)?;
    // Room for extension fields after the 48 bytes the codec reads.
    let mut reply = [0u8; 128];
    let n = socket.recv(&mut reply).map_err(TimeError::Io)?;
    sntp::parse_reply(&reply[..n]).map_err(TimeError::Reply)
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    const NTP_TO_UNIX: u64 = 2_208_988_800;

    /// A server on loopback that answers one request with `answer(request)`.
    fn server(answer: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let mut request = [0u8; 128];
            let (n, from) = socket.recv_from(&mut request).unwrap();
            socket.send_to(&answer(&request[..n]), from).unwrap();
        });
        address
    }

    fn reply(first: u8, stratum: u8, unix_secs: u64) -> Vec<u8> {
        let mut packet = vec![0u8; 48];
        packet[0] = first;
        packet[1] = stratum;
        packet[40..44].copy_from_slice(&((unix_secs + NTP_TO_UNIX) as u32).to_be_bytes());
        packet
    }

    #[test]
    fn the_servers_time_is_the_meters() {
        let address = server(|request| {
            assert_eq!(request.len(), 48);
            assert_eq!(request[0], 0x23, "version 4, client mode");
            reply(0x24, 2, 1_796_342_400)
        });
        assert_eq!(query(&address, SNTP_TIMEOUT).unwrap(), 1_796_342_400);
    }

    #[test]
    fn an_unsynchronised_server_sets_no_time() {
        let address = server(|_| reply(0xE4, 16, 1_796_342_400));
        let error = query(&address, SNTP_TIMEOUT).unwrap_err();
        assert!(matches!(error, TimeError::Reply(SntpError::Unsynchronised)), "{error}");
    }

    #[test]
    fn a_silent_server_is_an_error_after_the_timeout() {
        // Bound and never read: the request is taken and not answered.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let error = query(&address, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, TimeError::Io(_)), "{error}");
    }
}
