//! The uplink's driver: the core's MQTT session over a TCP connection to the broker and, while
//! the broker stays unreachable (`Session::falls_back_to_http`), the backlog posted to the
//! oracle's HTTP ingest. It goes on trying the broker meanwhile, with backoff, and the first
//! CONNACK brings the backlog back to MQTT.
//!
//! Prints `delivered <counter>` per PUBACK, `posted <counter>` per reading the oracle accepted
//! over HTTP (stored, or a duplicate of one stored) and `refused <counter>` per reading it
//! refused for good (its reason on stderr), each before the reading leaves the backlog: a
//! reading gone from the flash was always printed, and one printed may still be held by a
//! runner killed before it removed it (and is sent again).

use std::{
    io::{self, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::{Duration, Instant},
};

use embassy_futures::block_on;
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use nishati_meter_core::{
    signer::PUBLIC_KEY_LEN,
    store::Storage,
    uplink::{
        http::Verdict,
        mqtt::{self, Connect, MqttError},
        session::{Backoff, Session, Tick},
    },
};

use crate::{
    http::{Answer, Oracle},
    os_random,
};

/// Readings in flight over MQTT before the first PUBACK.
const WINDOW: usize = 8;
const KEEPALIVE_SECS: u16 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one pass waits for the broker's bytes.
const POLL: Duration = Duration::from_millis(50);
/// Readings posted in one pass, so that readings are taken and the broker tried between them.
const POST_BATCH: usize = 16;
const BACKOFF: Backoff = Backoff { base_ms: 200, max_ms: 5000 };

pub struct BrokerLogin {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

struct Link {
    stream: TcpStream,
    inbox: Vec<u8>,
}

pub struct Uplink {
    broker: BrokerLogin,
    client_id: String,
    meter: [u8; PUBLIC_KEY_LEN],
    topic: String,
    oracle: Option<Oracle>,
    session: Session<WINDOW>,
    link: Option<Link>,
    start: Instant,
    next_connect: Instant,
    next_post: Instant,
    post_failures: u32,
}

impl Uplink {
    pub fn new(
        broker: BrokerLogin,
        client_id: String,
        meter: [u8; PUBLIC_KEY_LEN],
        topic: String,
        oracle: Option<Oracle>,
    ) -> Self {
        let now = Instant::now();
        Self {
            broker,
            client_id,
            meter,
            topic,
            oracle,
            session: Session::new(KEEPALIVE_SECS),
            link: None,
            start: now,
            next_connect: now,
            next_post: now,
            post_failures: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn connected(&self) -> bool {
        self.link.is_some()
    }

    /// One pass: connects when a connection is due, exchanges with the broker while connected
    /// (waiting up to [`POLL`] for its bytes) and otherwise, past the fallback's threshold,
    /// posts readings over HTTP. Returns how many readings left the backlog.
    pub fn step<F: MultiwriteNorFlash>(&mut self, storage: &mut Storage<F>) -> Result<u32, String> {
        if self.link.is_none() && Instant::now() >= self.next_connect {
            self.open();
        }
        if self.link.is_some() {
            return self.exchange(storage);
        }
        let posting = self.session.falls_back_to_http() && self.oracle.is_some();
        if posting && Instant::now() >= self.next_post {
            return self.post_backlog(storage);
        }
        Ok(0)
    }

    /// Says goodbye to the broker, if connected.
    pub fn close(&mut self) {
        if let Some(link) = self.link.as_mut() {
            let _ = link.stream.write_all(&mqtt::DISCONNECT_PACKET);
        }
        self.link = None;
    }

    fn open(&mut self) {
        match self.dial() {
            Ok(link) => self.link = Some(link),
            Err(e) => {
                let wait = self.lost();
                eprintln!("broker unreachable: {e}; retrying in {wait} ms");
            }
        }
    }

    fn dial(&mut self) -> io::Result<Link> {
        let address = self
            .broker
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("the broker's name has no address"))?;
        let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(POLL))?;
        let connect = Connect {
            client_id: &self.client_id,
            username: self.broker.username.as_deref(),
            password: self.broker.password.as_deref().map(str::as_bytes),
            keepalive_secs: KEEPALIVE_SECS,
        };
        let mut out = [0u8; 512];
        let n = self
            .session
            .connect(&connect, self.now_ms(), &mut out)
            .map_err(|e| io::Error::other(format!("CONNECT: {e:?}")))?;
        stream.write_all(&out[..n])?;
        Ok(Link { stream, inbox: Vec::new() })
    }

    /// The connection is gone or was never made: the next attempt after a jittered backoff
    /// (its delay in ms).
    fn lost(&mut self) -> u32 {
        self.link = None;
        self.session.connection_lost();
        let wait = BACKOFF.delay_ms(self.session.failures, u32::from_le_bytes(os_random()));
        self.next_connect = Instant::now() + Duration::from_millis(u64::from(wait));
        wait
    }

    fn exchange<F: MultiwriteNorFlash>(&mut self, storage: &mut Storage<F>) -> Result<u32, String> {
        let now_ms = self.now_ms();
        let link = self.link.as_mut().expect("exchange runs connected");
        let mut broken = false;
        while let Some(reading) =
            block_on(storage.nth_reading(self.session.in_flight())).map_err(|e| format!("{e:?}"))?
        {
            if !self.session.add(reading) {
                break;
            }
        }
        let mut out = [0u8; 512];
        while let Some(n) = self
            .session
            .next_publish(&self.topic, now_ms, &mut out)
            .map_err(|e| format!("{e:?}"))?
        {
            broken |= link.stream.write_all(&out[..n]).is_err();
        }
        match self.session.tick(now_ms) {
            Tick::Ping => broken |= link.stream.write_all(&Session::<WINDOW>::PING).is_err(),
            Tick::Dead => broken = true,
            Tick::Idle => {}
        }
        let mut buf = [0u8; 256];
        match link.stream.read(&mut buf) {
            Ok(0) => broken = true,
            Ok(n) => link.inbox.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => broken = true,
        }
        loop {
            match mqtt::decode(&link.inbox) {
                Ok((packet, used)) => {
                    link.inbox.drain(..used);
                    self.session.on_incoming(packet);
                }
                Err(MqttError::Short) => break,
                Err(e) => {
                    eprintln!("broker sent a bad packet: {e:?}");
                    broken = true;
                    break;
                }
            }
        }
        let mut left = 0;
        while let Some(n) = self.session.take_delivered() {
            // Said before the reading leaves the flash: killed in between, the runner still
            // holds it and sends it again (refused by the oracle as replayed), so no reading
            // leaves the backlog without its line.
            println!("delivered {n}");
            block_on(storage.acknowledge(n)).map_err(|e| format!("{e:?}"))?;
            left += 1;
        }
        if broken {
            self.lost();
        }
        Ok(left)
    }

    /// Posts the backlog's oldest readings, in order, until it is empty, [`POST_BATCH`] are
    /// sent, or one stays (the oracle unreachable or busy: tried again after a backoff).
    fn post_backlog<F: MultiwriteNorFlash>(
        &mut self,
        storage: &mut Storage<F>,
    ) -> Result<u32, String> {
        let oracle = self.oracle.as_ref().expect("posting needs the oracle");
        // Readings the window held may leave the backlog here; the next connection fills the
        // window from the backlog's front again.
        self.session.clear_window();
        let mut left = 0;
        let mut stays = None;
        for _ in 0..POST_BATCH {
            let Some(reading) = block_on(storage.oldest_reading()).map_err(|e| format!("{e:?}"))?
            else {
                break;
            };
            let counter = reading.counter();
            match oracle.post(&self.meter, &reading) {
                Ok(Answer { verdict: Verdict::Delivered, .. }) => println!("posted {counter}"),
                Ok(Answer { verdict: Verdict::Rejected, text }) => {
                    println!("refused {counter}");
                    eprintln!("the oracle refused reading {counter} for good: {text}");
                }
                Ok(Answer { verdict, text }) => {
                    stays = Some(format!("answered {verdict:?}: {text}"));
                    break;
                }
                Err(e) => {
                    stays = Some(e.to_string());
                    break;
                }
            }
            block_on(storage.acknowledge(counter)).map_err(|e| format!("{e:?}"))?;
            left += 1;
        }
        match stays {
            Some(why) => {
                self.post_failures = self.post_failures.saturating_add(1);
                let wait = BACKOFF.delay_ms(self.post_failures, u32::from_le_bytes(os_random()));
                self.next_post = Instant::now() + Duration::from_millis(u64::from(wait));
                eprintln!("reading kept for the oracle, {why}; posting again in {wait} ms");
            }
            None => self.post_failures = 0,
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::TcpListener,
        sync::mpsc::{self, Receiver},
        thread,
    };

    use nishati_meter_core::{
        signer::MeterKey, store::Layout, uplink::session::HTTP_FALLBACK_AFTER,
    };
    use nishati_reading::Reading;

    use super::*;
    use crate::flash::FileFlash;

    const MARKET: [u8; 32] = [9; 32];

    fn storage_with(name: &str, readings: u32) -> Storage<FileFlash> {
        let path =
            std::env::temp_dir().join(format!("nishati-uplink-{name}-{}.bin", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let flash = FileFlash::open(&path, Layout::DEVICE.end() as usize).unwrap();
        let mut storage = Storage::new(flash, Layout::DEVICE).unwrap();
        let key = MeterKey::from_seed(&[3; 32]);
        for counter in 1..=readings {
            let timestamp = 1_796_342_400 + counter;
            let reading = Reading { counter, timestamp, exported_wh: 0, imported_wh: 0 };
            block_on(storage.push_reading(&key.sign_reading(&reading, &MARKET))).unwrap();
        }
        storage
    }

    /// A loopback port that refuses connections (bound, then let go).
    fn refused_port() -> String {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
    }

    fn counter_of_hex(hex: &str) -> u32 {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        Reading::counter_of(&bytes.try_into().unwrap())
    }

    /// An oracle that answers one connection per answer, in turn, then stops listening; the
    /// counter of each reading posted to it goes to the receiver.
    fn oracle(answers: Vec<&'static str>) -> (Oracle, Receiver<u32>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                let body = loop {
                    let n = stream.read(&mut buf).unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((_, body)) = text.split_once("\r\n\r\n") {
                        if body.ends_with('}') {
                            break body.to_owned();
                        }
                    }
                };
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                tx.send(counter_of_hex(json["message"].as_str().unwrap())).unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (Oracle::from_url(&url).unwrap(), rx)
    }

    /// A broker on `listener` for one connection: CONNACK, then a PUBACK per PUBLISH, whose
    /// counters go to the receiver; or, `hang_up_after` some, no PUBACK and it closes the
    /// connection and stops listening once it has that many.
    fn broker(listener: TcpListener, hang_up_after: Option<usize>) -> Receiver<u32> {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let packet = |stream: &mut TcpStream| -> Option<(u8, Vec<u8>)> {
                let mut head = [0u8; 2];
                stream.read_exact(&mut head).ok()?;
                let mut remaining = usize::from(head[1] & 0x7F);
                if head[1] & 0x80 != 0 {
                    let mut more = [0u8; 1];
                    stream.read_exact(&mut more).ok()?;
                    remaining += 128 * usize::from(more[0]);
                }
                let mut body = vec![0u8; remaining];
                stream.read_exact(&mut body).ok()?;
                Some((head[0], body))
            };
            let (connect, _) = packet(&mut stream).unwrap();
            assert_eq!(connect, 0x10, "CONNECT first");
            stream.write_all(&[0x20, 2, 0, 0]).unwrap();
            let mut received = 0;
            while let Some((kind, body)) = packet(&mut stream) {
                if kind & 0xF0 != 0x30 {
                    continue;
                }
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let id = [body[2 + topic_len], body[3 + topic_len]];
                let message: [u8; 37] = body[4 + topic_len + 64..].try_into().unwrap();
                tx.send(Reading::counter_of(&message)).unwrap();
                received += 1;
                match hang_up_after {
                    None => stream.write_all(&[0x40, 2, id[0], id[1]]).unwrap(),
                    Some(n) if received == n => return,
                    Some(_) => {}
                }
            }
        });
        rx
    }

    fn uplink(broker: String, oracle: Oracle) -> Uplink {
        let login = BrokerLogin { address: broker, username: None, password: None };
        Uplink::new(login, "meter".into(), [1; 32], "t/readings".into(), Some(oracle))
    }

    fn waiting(storage: &mut Storage<FileFlash>) -> Vec<u32> {
        let mut out = [0u32; 16];
        let n = block_on(storage.waiting_counters(&mut out)).unwrap();
        out[..n].to_vec()
    }

    /// Steps until the backlog is empty (or fails after 20 s).
    fn drain(uplink: &mut Uplink, storage: &mut Storage<FileFlash>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !waiting(storage).is_empty() {
            assert!(Instant::now() < deadline, "not drained: {:?}", waiting(storage));
            uplink.step(storage).unwrap();
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_unreachable_broker_has_the_backlog_posted_in_order_and_kept_while_the_oracle_is_busy() {
        let mut storage = storage_with("post", 3);
        let ok = "HTTP/1.1 200 OK\r\n\r\n{}";
        let (oracle, posted) = oracle(vec!["HTTP/1.1 503 Busy\r\n\r\n", ok, ok, ok]);
        let mut uplink = uplink(refused_port(), oracle);
        // Until the fallback's threshold, nothing goes over HTTP.
        uplink.step(&mut storage).unwrap();
        assert!(uplink.session.failures < HTTP_FALLBACK_AFTER);
        assert!(posted.try_recv().is_err());
        drain(&mut uplink, &mut storage);
        // The busy answer kept reading 1, sent again before the others.
        assert_eq!(posted.try_iter().collect::<Vec<_>>(), [1, 1, 2, 3]);
    }

    #[test]
    fn the_first_connack_takes_the_rest_of_the_backlog_back_to_mqtt() {
        let mut storage = storage_with("back", 5);
        let broker_address = refused_port();
        // A broker takes the whole window and goes away before acknowledging any of it.
        let unacknowledged = broker(TcpListener::bind(&broker_address).unwrap(), Some(5));
        let ok = "HTTP/1.1 200 OK\r\n\r\n{}";
        // The oracle takes two readings, then stops listening: the rest waits for the broker.
        let (oracle, posted) = oracle(vec![ok, ok]);
        let mut uplink = uplink(broker_address.clone(), oracle);
        while waiting(&mut storage).len() > 3 {
            uplink.step(&mut storage).unwrap();
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(unacknowledged.try_iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(posted.try_iter().collect::<Vec<_>>(), [1, 2]);
        let published = broker(TcpListener::bind(&broker_address).unwrap(), None);
        drain(&mut uplink, &mut storage);
        assert!(uplink.connected());
        // The window starts again from what HTTP left in the backlog.
        assert_eq!(published.try_iter().collect::<Vec<_>>(), [3, 4, 5]);
    }
}
