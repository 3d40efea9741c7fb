//! The oracle's HTTP ingest as the meter's fallback when MQTT keeps failing:
//! `POST /api/v1/readings` with one reading as JSON `{"message": hex, "signature": hex,
//! "meter": base58}` (oracle/nishati_oracle/readings/http.py `SignedReadingIn`), and what its
//! answer means for the backlog.

use crate::signer::{SignedReading, BASE58_MAX_LEN, PUBLIC_KEY_LEN};

pub const READINGS_PATH: &str = "/api/v1/readings";

/// Room for the request line, headers and the JSON body of one reading.
pub const REQUEST_MAX_LEN: usize = 512 + 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The output buffer cannot hold the request.
    BufferTooSmall,
    /// The answer does not start with an `HTTP/1.x NNN` status line.
    BadStatusLine,
}

/// What the oracle's answer to one reading means for the backlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: accepted, or a duplicate of one already stored; the reading leaves the backlog.
    Delivered,
    /// 422: refused for good (its reason is in the body, to be logged); it leaves the backlog,
    /// since sending it again gets the same answer.
    Rejected,
    /// 408, 429 or 5xx, or no answer: the reading stays and is sent again later.
    Transient(u16),
    /// Any other status: the request itself is wrong (a firmware defect); the reading stays.
    Unexpected(u16),
}

/// Writes the whole HTTP/1.1 request for one reading into `out`; returns its length.
pub fn encode_request(
    host: &str,
    meter: &[u8; PUBLIC_KEY_LEN],
    reading: &SignedReading,
    out: &mut [u8],
) -> Result<usize, HttpError> {
    let mut body = [0u8; 384];
    let mut b = Cursor { out: &mut body, at: 0 };
    let mut key = [0u8; BASE58_MAX_LEN];
    let key_len = bs58::encode(meter).onto(&mut key[..]).map_err(|_| HttpError::BufferTooSmall)?;
    b.put(b"{\"message\":\"")?;
    b.hex(&reading.message)?;
    b.put(b"\",\"signature\":\"")?;
    b.hex(&reading.signature)?;
    b.put(b"\",\"meter\":\"")?;
    b.put(&key[..key_len])?;
    b.put(b"\"}")?;
    let body_len = b.at;
    let mut w = Cursor { out, at: 0 };
    w.put(b"POST ")?;
    w.put(READINGS_PATH.as_bytes())?;
    w.put(b" HTTP/1.1\r\nHost: ")?;
    w.put(host.as_bytes())?;
    w.put(b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ")?;
    w.decimal(body_len)?;
    w.put(b"\r\n\r\n")?;
    w.put(&body[..body_len])?;
    Ok(w.at)
}

/// The verdict of the whole answer: its status line, and for a 422 whether the reason is the
/// oracle's one transient refusal (`ChainUnavailable`: it could not reach the chain).
pub fn parse_answer(answer: &[u8]) -> Result<Verdict, HttpError> {
    let rest = answer
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| answer.strip_prefix(b"HTTP/1.0 "))
        .ok_or(HttpError::BadStatusLine)?;
    let digits = rest.get(..3).ok_or(HttpError::BadStatusLine)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadStatusLine);
    }
    let status = digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Ok(match status {
        200 => Verdict::Delivered,
        422 if answer.windows(CHAIN_UNAVAILABLE.len()).any(|w| w == CHAIN_UNAVAILABLE) => {
            Verdict::Transient(status)
        }
        422 => Verdict::Rejected,
        408 | 429 | 500..=599 => Verdict::Transient(status),
        other => Verdict::Unexpected(other),
    })
}

/// ingest.py `Reason.ChainUnavailable`, as it appears in the answer's JSON.
const CHAIN_UNAVAILABLE: &[u8] = b"\"ChainUnavailable\"";

struct Cursor<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        let end = self.at + bytes.len();
        self.out.get_mut(self.at..end).ok_or(HttpError::BufferTooSmall)?.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    fn hex(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for byte in bytes {
            self.put(&[DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 15)]])?;
        }
        Ok(())
    }

    fn decimal(&mut self, mut n: usize) -> Result<(), HttpError> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_the_body_the_oracle_accepts() {
        let reading = SignedReading { message: [0xAB; 37], signature: [0x01; 64] };
        let mut out = [0u8; REQUEST_MAX_LEN];
        let n = encode_request("oracle:8000", &[1; 32], &reading, &mut out).unwrap();
        let text = core::str::from_utf8(&out[..n]).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /api/v1/readings HTTP/1.1\r\nHost: oracle:8000\r\n"));
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["message"], "ab".repeat(37));
        assert_eq!(json["signature"], "01".repeat(64));
        assert_eq!(json["meter"], "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi");
        assert_eq!(
            encode_request("h", &[1; 32], &reading, &mut [0u8; 100]),
            Err(HttpError::BufferTooSmall)
        );
    }

    #[test]
    fn answers_decide_what_leaves_the_backlog() {
        assert_eq!(parse_answer(b"HTTP/1.1 200 OK\r\n"), Ok(Verdict::Delivered));
        assert_eq!(parse_answer(b"HTTP/1.1 422 Unprocessable"), Ok(Verdict::Rejected));
        let chain = b"HTTP/1.1 422 \r\n\r\n{\"reason\":\"ChainUnavailable\"}";
        assert_eq!(parse_answer(chain), Ok(Verdict::Transient(422)));
        assert_eq!(parse_answer(b"HTTP/1.0 503 "), Ok(Verdict::Transient(503)));
        assert_eq!(parse_answer(b"HTTP/1.1 429 "), Ok(Verdict::Transient(429)));
        assert_eq!(parse_answer(b"HTTP/1.1 413 "), Ok(Verdict::Unexpected(413)));
        assert_eq!(parse_answer(b"HTTP/1.1 2x0"), Err(HttpError::BadStatusLine));
        assert_eq!(parse_answer(b"SSH-2.0"), Err(HttpError::BadStatusLine));
    }
}
