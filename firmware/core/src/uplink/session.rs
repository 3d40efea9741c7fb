//! The MQTT side of the uplink as a state machine without I/O: the driver (the chip's
//! embassy-net task, or the host runner's TCP loop) moves bytes and time; the session says
//! what to send, which readings are in flight under which packet id, and when a reading was
//! acknowledged so that the driver may take it out of the backlog.
//!
//! The window holds the backlog's oldest readings, in counter order. A reading leaves only
//! after its PUBACK and only from the front, so a drop mid-publish loses nothing and keeps
//! the order: after the next CONNACK the whole window is sent again, with DUP set.

use super::mqtt::{self, Incoming, MqttError, PINGREQ_PACKET};
use crate::signer::{SignedReading, SIGNATURE_LEN};

/// Connections lost or refused in a row after which the driver sends the backlog to the oracle's
/// HTTP ingest (`uplink::http`) while it goes on trying the broker.
pub const HTTP_FALLBACK_AFTER: u32 = 3;

/// How long a CONNECT waits for its CONNACK before the connection counts as failed.
pub const CONNACK_TIMEOUT_MS: u64 = 10_000;

/// Bytes of a PUBLISH payload: signature ‖ reading, as the oracle's `decode_message` reads it.
pub const PAYLOAD_LEN: usize = SignedReading::LEN;

/// The payload the oracle expects: the signature first, then the signed reading.
pub fn payload(reading: &SignedReading) -> [u8; PAYLOAD_LEN] {
    let mut out = [0u8; PAYLOAD_LEN];
    out[..SIGNATURE_LEN].copy_from_slice(&reading.signature);
    out[SIGNATURE_LEN..].copy_from_slice(&reading.message);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Disconnected,
    /// CONNECT sent, CONNACK awaited.
    Connecting,
    Connected,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    packet_id: u16,
    reading: SignedReading,
    /// Published on this connection (a reconnect clears it: sent again, with DUP).
    sent: bool,
    /// Published before, on this connection or an earlier one.
    dup: bool,
    acked: bool,
}

/// What the driver does after [`Session::tick`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    Idle,
    /// Send these bytes (a PINGREQ) now.
    Ping,
    /// The broker did not answer in time (a ping, or the CONNACK): drop the connection.
    Dead,
}

pub struct Session<const W: usize> {
    window: [Option<InFlight>; W],
    next_id: u16,
    state: State,
    keepalive_ms: u64,
    last_sent_ms: u64,
    ping_sent_ms: Option<u64>,
    /// Connections lost or refused in a row; the driver falls back to HTTP past a limit.
    pub failures: u32,
}

impl<const W: usize> Session<W> {
    pub fn new(keepalive_secs: u16) -> Self {
        Self {
            window: [None; W],
            next_id: 1,
            state: State::Disconnected,
            keepalive_ms: u64::from(keepalive_secs) * 1000,
            last_sent_ms: 0,
            ping_sent_ms: None,
            failures: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The CONNECT to send on a fresh connection.
    pub fn connect(
        &mut self,
        connect: &mqtt::Connect<'_>,
        now_ms: u64,
        out: &mut [u8],
    ) -> Result<usize, MqttError> {
        self.state = State::Connecting;
        self.last_sent_ms = now_ms;
        self.ping_sent_ms = None;
        for entry in self.window.iter_mut().flatten() {
            entry.sent = false;
        }
        mqtt::encode_connect(connect, out)
    }

    /// The connection dropped (or a CONNACK refused it): everything in flight is sent again.
    pub fn connection_lost(&mut self) {
        self.state = State::Disconnected;
        self.failures = self.failures.saturating_add(1);
        for entry in self.window.iter_mut().flatten() {
            entry.sent = false;
        }
    }

    /// Whether the driver should deliver over HTTP ([`HTTP_FALLBACK_AFTER`] failures in a row);
    /// a CONNACK ends it.
    pub fn falls_back_to_http(&self) -> bool {
        self.failures >= HTTP_FALLBACK_AFTER
    }

    /// Empties the window while disconnected: the driver delivered from the backlog's front
    /// another way (HTTP), so the window is filled from the backlog again.
    pub fn clear_window(&mut self) {
        debug_assert!(self.state == State::Disconnected, "the window is cleared offline");
        self.window = [None; W];
    }

    /// How many readings are in the window; the next one to add is the backlog's
    /// `in_flight()`-th.
    pub fn in_flight(&self) -> usize {
        self.window.iter().flatten().count()
    }

    /// Adds the backlog's next reading to the window; false if the window is full.
    pub fn add(&mut self, reading: SignedReading) -> bool {
        let Some(slot) = self.window.iter_mut().find(|slot| slot.is_none()) else {
            return false;
        };
        let packet_id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        *slot = Some(InFlight { packet_id, reading, sent: false, dup: false, acked: false });
        true
    }

    /// The next PUBLISH to send on this connection, oldest first, or `None`.
    pub fn next_publish(
        &mut self,
        topic: &str,
        now_ms: u64,
        out: &mut [u8],
    ) -> Result<Option<usize>, MqttError> {
        if self.state != State::Connected {
            return Ok(None);
        }
        let Some(entry) = self.window.iter_mut().flatten().find(|e| !e.sent && !e.acked) else {
            return Ok(None);
        };
        let n =
            mqtt::encode_publish(topic, entry.packet_id, entry.dup, &payload(&entry.reading), out)?;
        entry.sent = true;
        entry.dup = true;
        self.last_sent_ms = now_ms;
        Ok(Some(n))
    }

    /// A packet from the broker.
    pub fn on_incoming(&mut self, packet: Incoming) {
        match packet {
            Incoming::ConnAck { .. } => {
                self.state = State::Connected;
                self.failures = 0;
            }
            Incoming::PubAck { packet_id } => {
                if let Some(entry) =
                    self.window.iter_mut().flatten().find(|e| e.packet_id == packet_id)
                {
                    entry.acked = true;
                }
            }
            Incoming::PingResp => self.ping_sent_ms = None,
        }
    }

    /// The counter of the oldest reading, once it is acknowledged: the driver removes it from
    /// the backlog (`Storage::acknowledge`) and calls again.
    pub fn take_delivered(&mut self) -> Option<u32> {
        let first = self.window.iter().position(Option::is_some)?;
        let entry = self.window[first].filter(|e| e.acked)?;
        // Keep the window in order: the rest move up one slot.
        self.window[first..].rotate_left(1);
        self.window[W - 1] = None;
        Some(entry.reading.counter())
    }

    /// Keepalive: a PINGREQ when the line has been quiet for the keepalive, and a dead
    /// connection when a ping went unanswered for as long again, or a CONNACK for
    /// [`CONNACK_TIMEOUT_MS`].
    pub fn tick(&mut self, now_ms: u64) -> Tick {
        if self.state == State::Connecting {
            let waited = now_ms.saturating_sub(self.last_sent_ms);
            return if waited >= CONNACK_TIMEOUT_MS { Tick::Dead } else { Tick::Idle };
        }
        if self.state != State::Connected || self.keepalive_ms == 0 {
            return Tick::Idle;
        }
        if let Some(sent) = self.ping_sent_ms {
            return if now_ms.saturating_sub(sent) >= self.keepalive_ms {
                Tick::Dead
            } else {
                Tick::Idle
            };
        }
        if now_ms.saturating_sub(self.last_sent_ms) >= self.keepalive_ms {
            self.ping_sent_ms = Some(now_ms);
            self.last_sent_ms = now_ms;
            return Tick::Ping;
        }
        Tick::Idle
    }

    pub const PING: [u8; 2] = PINGREQ_PACKET;
}

/// Reconnect delays: exponential from `base_ms` to `max_ms`, jittered over the upper half by an
/// injected random source so that meters cut off together do not return together.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base_ms: u32,
    pub max_ms: u32,
}

impl Backoff {
    /// The delay before reconnect attempt `failures` (1 for the first failure).
    pub fn delay_ms(&self, failures: u32, random: u32) -> u32 {
        let shift = failures.saturating_sub(1).min(20);
        let ceiling = self.base_ms.saturating_mul(1 << shift).min(self.max_ms).max(1);
        ceiling / 2 + random % (ceiling / 2 + 1)
    }
}
