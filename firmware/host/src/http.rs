//! The fallback uplink over TCP: one reading per request to the oracle's HTTP ingest (the
//! core's `uplink::http` writes the request and reads the answer's verdict). Plain HTTP: the
//! host runner talks to an oracle on a network it trusts; the chip speaks TLS.

use std::{
    fmt,
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    time::Duration,
};

use nishati_meter_core::{
    signer::{SignedReading, PUBLIC_KEY_LEN},
    uplink::http::{self, HttpError, Verdict, REQUEST_MAX_LEN},
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the oracle may take to verify and store a reading and answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer that is read: the oracle's answer to one reading is under 1 KiB.
const ANSWER_MAX_LEN: u64 = 16 * 1024;

#[derive(Debug)]
pub enum PostError {
    /// No connection, or no whole answer before the oracle closed it or the timeout.
    Io(io::Error),
    /// An answer that is not HTTP.
    Http(HttpError),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "oracle: {e}"),
            Self::Http(e) => write!(f, "oracle's answer: {e:?}"),
        }
    }
}

/// The oracle's HTTP API, from `http://HOST:PORT`.
pub struct Oracle {
    /// `HOST:PORT`, as the `Host` header names it.
    authority: String,
    address: SocketAddr,
}

/// What the oracle answered to one reading: the verdict, and the answer for the log.
pub struct Answer {
    pub verdict: Verdict,
    pub text: String,
}

impl Oracle {
    pub fn from_url(url: &str) -> Result<Self, String> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or(format!("--oracle-url {url} is not http://HOST:PORT"))?;
        let address = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or(format!("--oracle-url {url}: no address for {authority}"))?;
        Ok(Self { authority: authority.into(), address })
    }

    /// Posts one reading and reads the whole answer (the request asks the oracle to close).
    pub fn post(
        &self,
        meter: &[u8; PUBLIC_KEY_LEN],
        reading: &SignedReading,
    ) -> Result<Answer, PostError> {
        let mut request = [0u8; REQUEST_MAX_LEN];
        let n = http::encode_request(&self.authority, meter, reading, &mut request)
            .map_err(PostError::Http)?;
        let mut stream =
            TcpStream::connect_timeout(&self.address, CONNECT_TIMEOUT).map_err(PostError::Io)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(PostError::Io)?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(PostError::Io)?;
        stream.write_all(&request[..n]).map_err(PostError::Io)?;
        let mut answer = Vec::new();
        stream.take(ANSWER_MAX_LEN).read_to_end(&mut answer).map_err(PostError::Io)?;
        let verdict = http::parse_answer(&answer).map_err(PostError::Http)?;
        Ok(Answer { verdict, text: String::from_utf8_lossy(&answer).into_owned() })
    }
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, sync::mpsc, thread};

    use super::*;

    const READING: SignedReading = SignedReading { message: [7; 37], signature: [8; 64] };

    /// An oracle on loopback that answers one request with `answer` and hands the request over.
    fn oracle(answer: &'static str) -> (Oracle, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // The whole request: its head and a body of Content-Length bytes.
            while !complete(&request) {
                let n = stream.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer.as_bytes()).unwrap();
            tx.send(String::from_utf8(request).unwrap()).unwrap();
        });
        (Oracle::from_url(&url).unwrap(), rx)
    }

    fn complete(request: &[u8]) -> bool {
        let text = String::from_utf8_lossy(request);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|n| n.parse::<usize>().unwrap())
            .unwrap();
        body.len() >= length
    }

    #[test]
    fn a_reading_is_posted_to_the_ingest_and_its_answer_read() {
        let (oracle, requests) = oracle("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        let answer = oracle.post(&[1; 32], &READING).unwrap();
        assert_eq!(answer.verdict, Verdict::Delivered);
        let request = requests.recv().unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        let authority = oracle.address.to_string();
        assert!(head.starts_with(&format!("POST /api/v1/readings HTTP/1.1\r\nHost: {authority}")));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["message"], "07".repeat(37));
        assert_eq!(json["signature"], "08".repeat(64));
    }

    #[test]
    fn a_busy_oracle_keeps_the_reading() {
        let (oracle, _requests) = oracle("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(oracle.post(&[1; 32], &READING).unwrap().verdict, Verdict::Transient(503));
    }

    #[test]
    fn no_oracle_or_no_http_is_an_error() {
        let (oracle, _requests) = oracle("SSH-2.0-OpenSSH\r\n");
        let error = oracle.post(&[1; 32], &READING).err().unwrap();
        assert!(matches!(error, PostError::Http(HttpError::BadStatusLine)), "{error}");
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let gone = Oracle::from_url(&format!("http://{closed}")).unwrap();
        let error = gone.post(&[1; 32], &READING).err().unwrap();
        assert!(matches!(error, PostError::Io(_)), "{error}");
    }

    #[test]
    fn only_a_plain_http_authority_is_an_oracle_url() {
        for url in ["https://127.0.0.1:8080", "http://", "http://127.0.0.1:8080/api", "ftp://x"] {
            assert!(Oracle::from_url(url).is_err(), "{url}");
        }
    }
}
