//! The session against a fake broker over in-memory bytes, with the backlog in simulated
//! flash: lost acknowledgements, dropped connections, order.

use embassy_futures::block_on;
use nishati_reading::Reading;

use super::{
    mqtt::{self, Connect, Incoming},
    readings_topic,
    session::{Backoff, Session, State, Tick, CONNACK_TIMEOUT_MS, HTTP_FALLBACK_AFTER},
    TOPIC_MAX_LEN,
};
use crate::{
    signer::MeterKey,
    sim_flash::SimFlash,
    store::{Layout, Storage, SECTOR},
};

const LAYOUT: Layout = Layout { settings: 0..2 * SECTOR, backlog: 2 * SECTOR..5 * SECTOR };
const MARKET: [u8; 32] = [9; 32];

/// What a broker received: (packet id, dup, counter) per PUBLISH.
#[derive(Default)]
struct FakeBroker {
    received: Vec<(u16, bool, u32)>,
}

impl FakeBroker {
    /// Parses one PUBLISH the session wrote and checks its topic and payload layout.
    fn publish(&mut self, bytes: &[u8], topic: &str) -> u16 {
        assert_eq!(bytes[0] & 0xF6, 0x32, "QoS 1 PUBLISH");
        let dup = bytes[0] & 0x08 != 0;
        // A payload of 101 bytes and a topic: one or two remaining-length bytes.
        let (remaining, header) = if bytes[1] & 0x80 == 0 {
            (usize::from(bytes[1]), 2)
        } else {
            (usize::from(bytes[1] & 0x7F) + 128 * usize::from(bytes[2]), 3)
        };
        assert_eq!(bytes.len(), header + remaining);
        let topic_len = usize::from(u16::from_be_bytes([bytes[header], bytes[header + 1]]));
        assert_eq!(&bytes[header + 2..header + 2 + topic_len], topic.as_bytes());
        let at = header + 2 + topic_len;
        let id = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let payload = &bytes[at + 2..];
        assert_eq!(payload.len(), 101);
        let message: [u8; 37] = payload[64..].try_into().unwrap();
        self.received.push((id, dup, Reading::counter_of(&message)));
        id
    }
}

fn storage_with(readings: u32) -> Storage<SimFlash<Vec<u8>>> {
    let key = MeterKey::from_seed(&[3; 32]);
    let mut storage = Storage::new(SimFlash::new(5), LAYOUT).unwrap();
    for counter in 1..=readings {
        let reading = Reading {
            counter,
            timestamp: 1_796_342_400 + counter * 60,
            exported_wh: u64::from(counter) * 10,
            imported_wh: 0,
        };
        block_on(storage.push_reading(&key.sign_reading(&reading, &MARKET))).unwrap();
    }
    storage
}

fn connect(session: &mut Session<4>, out: &mut [u8]) {
    let c = Connect { client_id: "meter", username: None, password: None, keepalive_secs: 30 };
    session.connect(&c, 0, out).unwrap();
    session.on_incoming(Incoming::ConnAck { session_present: false });
}

/// Fills the window from the backlog and sends what is unsent; returns the packet ids.
fn pump(
    session: &mut Session<4>,
    storage: &mut Storage<SimFlash<Vec<u8>>>,
    broker: &mut FakeBroker,
    topic: &str,
) -> Vec<u16> {
    while let Some(reading) = block_on(storage.nth_reading(session.in_flight())).unwrap() {
        if !session.add(reading) {
            break;
        }
    }
    let mut out = [0u8; 256];
    let mut ids = Vec::new();
    while let Some(n) = session.next_publish(topic, 0, &mut out).unwrap() {
        ids.push(broker.publish(&out[..n], topic));
    }
    ids
}

fn deliver(session: &mut Session<4>, storage: &mut Storage<SimFlash<Vec<u8>>>) -> Vec<u32> {
    let mut delivered = Vec::new();
    while let Some(counter) = session.take_delivered() {
        block_on(storage.acknowledge(counter)).unwrap();
        delivered.push(counter);
    }
    delivered
}

fn topic() -> ([u8; TOPIC_MAX_LEN], usize) {
    let mut buf = [0u8; TOPIC_MAX_LEN];
    let len = readings_topic("nishati", "Market", "Meter", &mut buf).unwrap().len();
    (buf, len)
}

#[test]
fn the_topic_is_the_oracles() {
    let mut buf = [0u8; TOPIC_MAX_LEN];
    assert_eq!(
        readings_topic("nishati", "Mk", "Me", &mut buf),
        Ok("nishati/Mk/meters/Me/readings")
    );
}

#[test]
fn a_window_is_published_in_order_and_leaves_after_its_acks() {
    let (buf, len) = topic();
    let topic = core::str::from_utf8(&buf[..len]).unwrap();
    let mut storage = storage_with(6);
    let mut session = Session::<4>::new(30);
    let mut broker = FakeBroker::default();
    let mut out = [0u8; 64];
    connect(&mut session, &mut out);
    let ids = pump(&mut session, &mut storage, &mut broker, topic);
    assert_eq!(broker.received.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // The second acknowledgement first: nothing leaves until the oldest is acknowledged.
    session.on_incoming(Incoming::PubAck { packet_id: ids[1] });
    assert_eq!(deliver(&mut session, &mut storage), Vec::<u32>::new());
    session.on_incoming(Incoming::PubAck { packet_id: ids[0] });
    assert_eq!(deliver(&mut session, &mut storage), [1, 2]);
    let more = pump(&mut session, &mut storage, &mut broker, topic);
    assert_eq!(broker.received[4..].iter().map(|r| r.2).collect::<Vec<_>>(), [5, 6]);
    for id in ids[2..].iter().chain(&more) {
        session.on_incoming(Incoming::PubAck { packet_id: *id });
    }
    assert_eq!(deliver(&mut session, &mut storage), [3, 4, 5, 6]);
    assert_eq!(block_on(storage.oldest_reading()).unwrap(), None);
}

#[test]
fn a_lost_puback_or_a_drop_mid_publish_resends_with_dup_and_loses_nothing() {
    let (buf, len) = topic();
    let topic = core::str::from_utf8(&buf[..len]).unwrap();
    let mut storage = storage_with(3);
    let mut session = Session::<4>::new(30);
    let mut broker = FakeBroker::default();
    let mut out = [0u8; 64];
    connect(&mut session, &mut out);
    let ids = pump(&mut session, &mut storage, &mut broker, topic);
    // Reading 1 acknowledged; 2's PUBACK is lost; the connection drops before 3's.
    session.on_incoming(Incoming::PubAck { packet_id: ids[0] });
    assert_eq!(deliver(&mut session, &mut storage), [1]);
    session.connection_lost();
    assert_eq!(session.state(), State::Disconnected);
    assert_eq!(session.failures, 1);
    let mut waiting = [0u32; 4];
    let n = block_on(storage.waiting_counters(&mut waiting)).unwrap();
    assert_eq!(&waiting[..n], &[2, 3]);
    connect(&mut session, &mut out);
    assert_eq!(session.failures, 0);
    let again = pump(&mut session, &mut storage, &mut broker, topic);
    assert_eq!(&broker.received[3..], &[(ids[1], true, 2), (ids[2], true, 3)]);
    for id in again {
        session.on_incoming(Incoming::PubAck { packet_id: id });
    }
    assert_eq!(deliver(&mut session, &mut storage), [2, 3]);
    assert_eq!(block_on(storage.oldest_reading()).unwrap(), None);
}

#[test]
fn nothing_is_published_before_the_connack() {
    let mut storage = storage_with(1);
    let mut session = Session::<4>::new(30);
    let c = Connect { client_id: "meter", username: None, password: None, keepalive_secs: 30 };
    let mut out = [0u8; 256];
    session.connect(&c, 0, &mut out).unwrap();
    session.add(block_on(storage.oldest_reading()).unwrap().unwrap());
    assert_eq!(session.next_publish("t", 0, &mut out), Ok(None));
    let (packet, _) = mqtt::decode(&[0x20, 2, 0, 0]).unwrap();
    session.on_incoming(packet);
    assert!(session.next_publish("t", 0, &mut out).unwrap().is_some());
}

#[test]
fn keepalive_pings_when_quiet_and_declares_a_silent_broker_dead() {
    let mut session = Session::<4>::new(30);
    let mut out = [0u8; 64];
    connect(&mut session, &mut out);
    assert_eq!(session.tick(29_999), Tick::Idle);
    assert_eq!(session.tick(30_000), Tick::Ping);
    assert_eq!(Session::<4>::PING, [0xC0, 0]);
    session.on_incoming(Incoming::PingResp);
    assert_eq!(session.tick(59_999), Tick::Idle);
    assert_eq!(session.tick(60_000), Tick::Ping);
    assert_eq!(session.tick(89_999), Tick::Idle);
    assert_eq!(session.tick(90_000), Tick::Dead);
}

#[test]
fn a_connack_that_never_comes_is_a_dead_connection() {
    let mut session = Session::<4>::new(30);
    let c = Connect { client_id: "meter", username: None, password: None, keepalive_secs: 30 };
    let mut out = [0u8; 64];
    session.connect(&c, 1_000, &mut out).unwrap();
    assert_eq!(session.tick(1_000 + CONNACK_TIMEOUT_MS - 1), Tick::Idle);
    assert_eq!(session.tick(1_000 + CONNACK_TIMEOUT_MS), Tick::Dead);
}

#[test]
fn failures_in_a_row_fall_back_to_http_and_the_window_refills_from_what_it_left() {
    let (buf, len) = topic();
    let topic = core::str::from_utf8(&buf[..len]).unwrap();
    let mut storage = storage_with(6);
    let mut session = Session::<4>::new(30);
    let mut broker = FakeBroker::default();
    let mut out = [0u8; 64];
    connect(&mut session, &mut out);
    pump(&mut session, &mut storage, &mut broker, topic);
    for _ in 0..HTTP_FALLBACK_AFTER - 1 {
        session.connection_lost();
        assert!(!session.falls_back_to_http());
    }
    session.connection_lost();
    assert!(session.falls_back_to_http());
    // Readings 1 to 3 went over HTTP, out of the window's four.
    for counter in 1..=3 {
        block_on(storage.acknowledge(counter)).unwrap();
    }
    session.clear_window();
    assert_eq!(session.in_flight(), 0);
    connect(&mut session, &mut out);
    assert!(!session.falls_back_to_http());
    let ids = pump(&mut session, &mut storage, &mut broker, topic);
    let sent: Vec<(bool, u32)> = broker.received[4..].iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(sent, [(false, 4), (false, 5), (false, 6)]);
    for id in ids {
        session.on_incoming(Incoming::PubAck { packet_id: id });
    }
    assert_eq!(deliver(&mut session, &mut storage), [4, 5, 6]);
    assert_eq!(block_on(storage.oldest_reading()).unwrap(), None);
}

#[test]
fn backoff_grows_to_its_ceiling_with_jitter() {
    let backoff = Backoff { base_ms: 1000, max_ms: 60_000 };
    assert_eq!(backoff.delay_ms(1, 0), 500);
    assert_eq!(backoff.delay_ms(1, 500), 1000);
    assert_eq!(backoff.delay_ms(3, 0), 2000);
    assert_eq!(backoff.delay_ms(3, 7), 2007);
    assert_eq!(backoff.delay_ms(30, u32::MAX), 30_000 + u32::MAX % 30_001);
    assert!(backoff.delay_ms(30, u32::MAX) <= 60_000);
}
