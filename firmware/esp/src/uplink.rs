//! The uplink on the chip: the core's MQTT session (`uplink::session`) over embassy-net TCP,
//! in TLS 1.3 to a pinned broker (`tls`) unless `tls off`, publishing the backlog's readings
//! oldest first and removing each on its PUBACK; when the broker has failed
//! `HTTP_FALLBACK_AFTER` times in a row, the backlog goes to the oracle's HTTP ingest
//! (`uplink::http`), one reading per request, before the broker is tried again.

extern crate alloc;

use alloc::{format, string::String, vec};
use core::{cell::Cell, cell::RefCell, convert::Infallible, future::pending};

use embassy_futures::select::{select, select3, Either};
use embassy_net::{
    tcp::{self, ConnectError, TcpSocket},
    IpAddress, IpEndpoint, Stack,
};
use embassy_sync::{blocking_mutex::raw::NoopRawMutex, mutex::Mutex, signal::Signal};
use embassy_time::{with_timeout, Duration, Timer};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use embedded_tls::{TlsConfig, TlsConnection, TlsContext, TlsError};
use esp_hal::rng::Trng;
use esp_println::println;
use nishati_meter_core::{
    backlog::BacklogError,
    settings::{Settings, Tls, FINGERPRINT_LEN},
    signer::{BASE58_MAX_LEN, PUBLIC_KEY_LEN},
    store::Storage,
    uplink::{
        endpoint::{https_host_port, HTTPS_PORT},
        http::{self, HttpError, Verdict},
        mqtt::{self, Connect, MqttError},
        pin::PinError,
        readings_topic,
        session::{Backoff, Session, State, Tick, HTTP_FALLBACK_AFTER},
        tls::{PinnedServer, READ_RECORD_LEN, WRITE_RECORD_LEN},
        TOPIC_MAX_LEN,
    },
};

use crate::net::{now_ms, random, resolve, NetError};

/// The oracle's topic root (`NISHATI_MQTT_TOPIC_ROOT`'s default).
pub const TOPIC_ROOT: &str = "nishati";
/// Readings published and not yet acknowledged, at most.
const WINDOW: usize = 8;
const KEEPALIVE_SECS: u16 = 60;
/// Reconnecting to the broker: from 2 s up to 5 min, jittered.
const BACKOFF: Backoff = Backoff { base_ms: 2_000, max_ms: 300_000 };
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The handshake, or an HTTP answer, must come within this.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const TCP_BUFFER_LEN: usize = 1_536;
/// A PUBLISH (a 144-byte topic and the 101-byte payload) or a CONNECT with its login.
const PACKET_MAX_LEN: usize = 320;
/// The oracle's answer as far as its status and its refusal's reason.
const ANSWER_MAX_LEN: usize = 1_024;

pub type SharedStorage<F> = Mutex<NoopRawMutex, Storage<F>>;
/// Raised when a reading is stored, so that it is published at once.
pub type Stored = Signal<NoopRawMutex, ()>;
type MeterSession = RefCell<Session<WINDOW>>;

// The fields are read through `Debug`, on the console.
#[allow(dead_code)]
#[derive(Debug)]
pub enum UplinkError {
    /// No broker set yet (console: `broker HOST:PORT`, then `reboot`).
    NoBroker,
    /// No market set yet: the readings' topic names it (console: `market ADDRESS`).
    NoMarket,
    /// `tls on` would check the broker against root certificates, and the chip carries none:
    /// pin the broker's certificate (console: `tls SHA256`), or `tls off` on a private network.
    NoPinnedCertificate,
    Net(NetError),
    /// No TCP connection within `CONNECT_TIMEOUT`.
    ConnectTimeout,
    Connect(ConnectError),
    /// The TLS handshake failed (the server's alert, or a protocol error).
    Tls(TlsError),
    /// The server's certificate is refused: not the pinned one, or not signed by its key.
    Pin(PinError),
    /// No TRNG for the handshake's keys (the radio is its entropy source).
    NoEntropy,
    /// The connection failed mid-way.
    Io(ErrorKind),
    /// The server closed the connection.
    Closed,
    Mqtt(MqttError),
    /// The broker did not answer the CONNECT, or a ping, in time.
    Silent,
    Backlog(BacklogError),
    Http(HttpError),
    /// The oracle cannot take readings now (408, 429, 5xx, or it could not reach the chain).
    OracleBusy(u16),
    /// The oracle answered with a status that says the meter's request is wrong.
    OracleUnexpected(u16),
    /// The oracle's answer did not come within `ANSWER_TIMEOUT`.
    OracleTimeout,
}

fn io<E: embedded_io_async::Error>(error: E) -> UplinkError {
    UplinkError::Io(error.kind())
}

/// What the uplink needs from the rest of the meter.
pub struct Uplink<'a, F: MultiwriteNorFlash> {
    pub stack: Stack<'a>,
    pub storage: &'a SharedStorage<F>,
    pub stored: &'a Stored,
    pub settings: &'a Settings,
    pub meter: [u8; PUBLIC_KEY_LEN],
    pub meter_base58: &'a str,
}

/// The broker as the settings name it.
struct Broker<'a> {
    host: &'a str,
    port: u16,
    pin: Option<[u8; FINGERPRINT_LEN]>,
    topic: String,
}

fn pinned(settings: &Settings) -> Option<[u8; FINGERPRINT_LEN]> {
    match settings.broker_tls {
        Tls::Pinned(pin) => Some(pin),
        Tls::On | Tls::Off => None,
    }
}

fn broker<'a>(settings: &'a Settings, meter: &str) -> Result<Broker<'a>, UplinkError> {
    if settings.broker_host.is_empty() {
        return Err(UplinkError::NoBroker);
    }
    let market = settings.market.ok_or(UplinkError::NoMarket)?;
    let pin = match settings.broker_tls {
        Tls::Off => None,
        Tls::On => return Err(UplinkError::NoPinnedCertificate),
        Tls::Pinned(pin) => Some(pin),
    };
    let mut market_base58 = [0u8; BASE58_MAX_LEN];
    let len = bs58::encode(market).onto(&mut market_base58[..]).expect("32 bytes fit");
    let market = core::str::from_utf8(&market_base58[..len]).expect("base58 is ASCII");
    let mut topic = [0u8; TOPIC_MAX_LEN];
    let topic = readings_topic(TOPIC_ROOT, market, meter, &mut topic)
        .expect("the root and two keys fit")
        .into();
    Ok(Broker { host: settings.broker_host.as_str(), port: settings.broker_port, pin, topic })
}

/// The oracle's ingest, if its URL is set; trusted, as the broker, only by the pinned
/// certificate (the chip carries no root certificates), so one server with one certificate
/// serves both.
fn oracle(settings: &Settings) -> Result<Option<Oracle<'_>>, UplinkError> {
    let Some((host, port)) = https_host_port(settings.oracle_url.as_str()) else {
        return Ok(None);
    };
    let pin = pinned(settings).ok_or(UplinkError::NoPinnedCertificate)?;
    Ok(Some(Oracle { host, port, pin }))
}

#[derive(Clone, Copy)]
struct Oracle<'a> {
    host: &'a str,
    port: u16,
    pin: [u8; FINGERPRINT_LEN],
}

/// Runs the uplink for as long as the meter runs.
pub async fn run<F: MultiwriteNorFlash>(up: Uplink<'_, F>) -> ! {
    let session = RefCell::new(Session::<WINDOW>::new(KEEPALIVE_SECS));
    let refused = Cell::new(None);
    let broker = broker(up.settings, up.meter_base58);
    if let Err(error) = &broker {
        println!("uplink: no broker connection: {error:?}");
    }
    let oracle = oracle(up.settings).unwrap_or_else(|error| {
        println!("uplink: no HTTP fallback: {error:?}");
        None
    });
    if broker.is_err() && oracle.is_none() {
        println!("uplink: off until the settings are complete (console: show)");
        match pending::<Infallible>().await {}
    }
    loop {
        up.stack.wait_config_up().await;
        if let Ok(broker) = &broker {
            let error = converse_with_broker(&up, broker, &session, &refused).await;
            session.borrow_mut().connection_lost();
            report("broker", error, &refused);
        }
        let failures = session.borrow().failures;
        if let Some(oracle) = oracle.filter(|_| broker.is_err() || failures >= HTTP_FALLBACK_AFTER)
        {
            match post_backlog(&up, oracle, &refused).await {
                Ok(0) => {}
                Ok(delivered) => println!("uplink: {delivered} readings delivered over HTTP"),
                Err(error) => report("oracle", error, &refused),
            }
        }
        if broker.is_err() {
            // Only the oracle: it is posted to when there is a reading for it.
            up.stored.wait().await;
        } else {
            Timer::after_millis(BACKOFF.delay_ms(failures, random()).into()).await;
        }
    }
}

/// The error on the console, with the certificate's refusal by name when that was the cause.
fn report(peer: &str, error: UplinkError, refused: &Cell<Option<PinError>>) {
    match (refused.take(), error) {
        (Some(pin), UplinkError::Tls(_)) => println!("uplink: {peer}: {:?}", UplinkError::Pin(pin)),
        (_, error) => println!("uplink: {peer}: {error:?}"),
    }
}

async fn connect<'s>(
    stack: Stack<'s>,
    host: &str,
    port: u16,
    rx: &'s mut [u8],
    tx: &'s mut [u8],
) -> Result<TcpSocket<'s>, UplinkError> {
    let address: IpAddress = resolve(stack, host).await.map_err(UplinkError::Net)?;
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_timeout(Some(Duration::from_secs(2 * u64::from(KEEPALIVE_SECS))));
    with_timeout(CONNECT_TIMEOUT, socket.connect(IpEndpoint::new(address, port)))
        .await
        .map_err(|_| UplinkError::ConnectTimeout)?
        .map_err(UplinkError::Connect)?;
    Ok(socket)
}

/// The handshake with a pinned server, over any byte stream.
async fn open_tls<'b, S: Read + Write + 'b>(
    socket: S,
    host: &str,
    pin: [u8; FINGERPRINT_LEN],
    refused: &Cell<Option<PinError>>,
    read_record: &'b mut [u8],
    write_record: &'b mut [u8],
) -> Result<TlsConnection<'b, S, embedded_tls::Aes128GcmSha256>, UplinkError> {
    let rng = Trng::try_new().map_err(|_| UplinkError::NoEntropy)?;
    let mut tls = TlsConnection::new(socket, read_record, write_record);
    let config = TlsConfig::new().with_server_name(host);
    let context = TlsContext::new(&config, PinnedServer::new(rng, pin, refused));
    with_timeout(ANSWER_TIMEOUT, tls.open(context))
        .await
        .map_err(|_| UplinkError::Silent)?
        .map_err(UplinkError::Tls)?;
    Ok(tls)
}

/// One connection to the broker, until it fails.
async fn converse_with_broker<F: MultiwriteNorFlash>(
    up: &Uplink<'_, F>,
    broker: &Broker<'_>,
    session: &MeterSession,
    refused: &Cell<Option<PinError>>,
) -> UplinkError {
    let (mut rx, mut tx) = (vec![0u8; TCP_BUFFER_LEN], vec![0u8; TCP_BUFFER_LEN]);
    let mut socket = match connect(up.stack, broker.host, broker.port, &mut rx, &mut tx).await {
        Ok(socket) => socket,
        Err(error) => return error,
    };
    let (reader, writer) = socket.split();
    let result = match broker.pin {
        None => publish(up, broker, session, reader, writer).await,
        Some(pin) => {
            let (reader, writer) = (Mutex::new(reader), Mutex::new(writer));
            let duplex = Duplex { reader: &reader, writer: &writer };
            let mut read_record = vec![0u8; READ_RECORD_LEN];
            let mut write_record = vec![0u8; WRITE_RECORD_LEN];
            match open_tls(duplex, broker.host, pin, refused, &mut read_record, &mut write_record)
                .await
            {
                Ok(mut tls) => {
                    let (reader, writer) = tls.split();
                    publish(up, broker, session, reader, writer).await
                }
                Err(error) => Err(error),
            }
        }
    };
    socket.abort();
    match result {
        Err(error) => error,
    }
}

/// The MQTT conversation: the CONNECT, then the backlog published as the session allows while
/// the broker's answers are read, until either side fails.
async fn publish<F: MultiwriteNorFlash>(
    up: &Uplink<'_, F>,
    broker: &Broker<'_>,
    session: &MeterSession,
    reader: impl Read,
    mut writer: impl Write,
) -> Result<Infallible, UplinkError> {
    let password = up.settings.broker_password.expose();
    let connect = Connect {
        client_id: up.meter_base58,
        username: Some(up.settings.broker_user.as_str()).filter(|user| !user.is_empty()),
        password: Some(password.as_bytes()).filter(|_| !password.is_empty()),
        keepalive_secs: KEEPALIVE_SECS,
    };
    let mut out = [0u8; PACKET_MAX_LEN];
    let n =
        session.borrow_mut().connect(&connect, now_ms(), &mut out).map_err(UplinkError::Mqtt)?;
    writer.write_all(&out[..n]).await.map_err(io)?;
    writer.flush().await.map_err(io)?;
    let answered = Signal::<NoopRawMutex, ()>::new();
    match select(
        read_answers(up, session, reader, &answered),
        send_backlog(up, broker, session, writer, &answered, now_ms()),
    )
    .await
    {
        Either::First(result) | Either::Second(result) => result,
    }
}

async fn read_answers<F: MultiwriteNorFlash>(
    up: &Uplink<'_, F>,
    session: &MeterSession,
    mut reader: impl Read,
    answered: &Signal<NoopRawMutex, ()>,
) -> Result<Infallible, UplinkError> {
    // The broker's packets to a publisher are 2 to 4 bytes.
    let mut inbox = [0u8; 64];
    let mut have = 0;
    loop {
        if have == inbox.len() {
            return Err(UplinkError::Mqtt(MqttError::BufferTooSmall));
        }
        let n = reader.read(&mut inbox[have..]).await.map_err(io)?;
        if n == 0 {
            return Err(UplinkError::Closed);
        }
        have += n;
        loop {
            match mqtt::decode(&inbox[..have]) {
                Ok((packet, used)) => {
                    inbox.copy_within(used..have, 0);
                    have -= used;
                    session.borrow_mut().on_incoming(packet);
                }
                Err(MqttError::Short) => break,
                Err(error) => return Err(UplinkError::Mqtt(error)),
            }
        }
        loop {
            let Some(counter) = session.borrow_mut().take_delivered() else { break };
            up.storage.lock().await.acknowledge(counter).await.map_err(UplinkError::Backlog)?;
            println!("delivered {counter}");
        }
        answered.signal(());
    }
}

async fn send_backlog<F: MultiwriteNorFlash>(
    up: &Uplink<'_, F>,
    broker: &Broker<'_>,
    session: &MeterSession,
    mut writer: impl Write,
    answered: &Signal<NoopRawMutex, ()>,
    connect_sent_ms: u64,
) -> Result<Infallible, UplinkError> {
    let mut out = [0u8; PACKET_MAX_LEN];
    let connack_by = connect_sent_ms + ANSWER_TIMEOUT.as_millis();
    loop {
        match session.borrow().state() {
            State::Connecting if now_ms() >= connack_by => return Err(UplinkError::Silent),
            State::Disconnected => return Err(UplinkError::Closed),
            State::Connecting | State::Connected => {}
        }
        {
            let mut storage = up.storage.lock().await;
            loop {
                let next = session.borrow().in_flight();
                match storage.nth_reading(next).await.map_err(UplinkError::Backlog)? {
                    Some(reading) if session.borrow_mut().add(reading) => {}
                    _ => break,
                }
            }
        }
        loop {
            let packet = session
                .borrow_mut()
                .next_publish(&broker.topic, now_ms(), &mut out)
                .map_err(UplinkError::Mqtt)?;
            let Some(n) = packet else { break };
            writer.write_all(&out[..n]).await.map_err(io)?;
        }
        let tick = session.borrow_mut().tick(now_ms());
        match tick {
            Tick::Ping => writer.write_all(&Session::<WINDOW>::PING).await.map_err(io)?,
            Tick::Dead => return Err(UplinkError::Silent),
            Tick::Idle => {}
        }
        writer.flush().await.map_err(io)?;
        select3(up.stored.wait(), answered.wait(), Timer::after_secs(1)).await;
    }
}

/// The backlog to the oracle's HTTP ingest, oldest first, one TLS connection per reading
/// (`Connection: close`); stops at the first reading the oracle cannot take now. Returns how
/// many left the backlog.
async fn post_backlog<F: MultiwriteNorFlash>(
    up: &Uplink<'_, F>,
    oracle: Oracle<'_>,
    refused: &Cell<Option<PinError>>,
) -> Result<u32, UplinkError> {
    let Oracle { host, port, pin } = oracle;
    let authority = if port == HTTPS_PORT { String::from(host) } else { format!("{host}:{port}") };
    let mut delivered = 0;
    loop {
        let oldest = up.storage.lock().await.oldest_reading().await;
        let Some(reading) = oldest.map_err(UplinkError::Backlog)? else { return Ok(delivered) };
        let mut request = [0u8; http::REQUEST_MAX_LEN];
        let n = http::encode_request(&authority, &up.meter, &reading, &mut request)
            .map_err(UplinkError::Http)?;
        let mut answer = [0u8; ANSWER_MAX_LEN];
        let len = post(up.stack, host, port, pin, refused, &request[..n], &mut answer).await?;
        let counter = reading.counter();
        match http::parse_answer(&answer[..len]).map_err(UplinkError::Http)? {
            Verdict::Delivered => println!("delivered {counter} (HTTP)"),
            Verdict::Rejected => {
                let body = answer[..len].split(|&b| b == b'\n').next_back().unwrap_or_default();
                let reason = core::str::from_utf8(body).unwrap_or("(not text)");
                println!("rejected {counter} by the oracle: {reason}");
            }
            Verdict::Transient(status) => return Err(UplinkError::OracleBusy(status)),
            Verdict::Unexpected(status) => return Err(UplinkError::OracleUnexpected(status)),
        }
        up.storage.lock().await.acknowledge(counter).await.map_err(UplinkError::Backlog)?;
        delivered += 1;
    }
}

/// One HTTPS request; the answer is read until the server closes or `answer` is full.
async fn post(
    stack: Stack<'_>,
    host: &str,
    port: u16,
    pin: [u8; FINGERPRINT_LEN],
    refused: &Cell<Option<PinError>>,
    request: &[u8],
    answer: &mut [u8],
) -> Result<usize, UplinkError> {
    let (mut rx, mut tx) = (vec![0u8; TCP_BUFFER_LEN], vec![0u8; TCP_BUFFER_LEN]);
    let mut socket = connect(stack, host, port, &mut rx, &mut tx).await?;
    let mut read_record = vec![0u8; READ_RECORD_LEN];
    let mut write_record = vec![0u8; WRITE_RECORD_LEN];
    let mut tls =
        open_tls(&mut socket, host, pin, refused, &mut read_record, &mut write_record).await?;
    tls.write_all(request).await.map_err(io)?;
    tls.flush().await.map_err(io)?;
    let mut len = 0;
    while len < answer.len() {
        match with_timeout(ANSWER_TIMEOUT, tls.read(&mut answer[len..])).await {
            Err(_) if len == 0 => return Err(UplinkError::OracleTimeout),
            Ok(Ok(0)) | Ok(Err(TlsError::ConnectionClosed)) | Err(_) => break,
            Ok(Ok(n)) => len += n,
            Ok(Err(error)) if len == 0 => return Err(UplinkError::Tls(error)),
            Ok(Err(_)) => break,
        }
    }
    socket.abort();
    Ok(len)
}

/// A TCP connection's two halves behind one clonable handle, as embedded-tls's split wants:
/// its reader only reads and its writer only writes, so neither waits on the other.
#[derive(Clone, Copy)]
struct Duplex<'a, 'd> {
    reader: &'a Mutex<NoopRawMutex, tcp::TcpReader<'d>>,
    writer: &'a Mutex<NoopRawMutex, tcp::TcpWriter<'d>>,
}

impl ErrorType for Duplex<'_, '_> {
    type Error = tcp::Error;
}

impl Read for Duplex<'_, '_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.reader.lock().await.read(buf).await
    }
}

impl Write for Duplex<'_, '_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.writer.lock().await.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.writer.lock().await.flush().await
    }
}
