//! The meter's pinned TLS (`uplink::tls`) against real TLS 1.3 servers on loopback, started and
//! stopped by each test with a certificate made for it: OpenSSL's `s_server`, and Mosquitto
//! with a TLS listener, which the core's MQTT session publishes to. The right pin opens the
//! connection and carries data both ways; any other pin is refused before a byte of application
//! data, with the presented fingerprint named.

use std::{
    cell::Cell,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use embedded_tls::blocking::{TlsConfig, TlsConnection, TlsContext, TlsError};
use nishati_meter_core::{
    settings::Tls,
    signer::MeterKey,
    uplink::{
        mqtt::{self, Connect, MqttError},
        pin::{fingerprint, PinError},
        session::Session,
        tls::{PinnedServer, READ_RECORD_LEN, WRITE_RECORD_LEN},
    },
};
use nishati_reading::Reading;
use rand_core::OsRng;

/// std's TCP under embedded-io's traits, as embassy-net's socket is on the chip.
struct Socket(TcpStream);

impl ErrorType for Socket {
    type Error = ErrorKind;
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).map_err(|_| ErrorKind::Other)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).map_err(|_| ErrorKind::Other)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().map_err(|_| ErrorKind::Other)
    }
}

/// OpenSSL's TLS 1.3 server answering `GET /` with its status page; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    der: Vec<u8>,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl").args(args).stderr(Stdio::null()).status();
    assert!(status.expect("openssl on PATH").success(), "openssl {args:?}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nishati-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed broker certificate (`-newkey ec -pkeyopt ...` or `-newkey ed25519`).
fn certificate(dir: &Path, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("broker.crt"), dir.join("broker.key"));
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-nodes", "-subj", "/CN=broker.test", "-days", "2"]);
    args.extend_from_slice(&["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()]);
    openssl(&args);
    (cert, key)
}

const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn listening(server: Server) -> Server {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", server.port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen on {}", server.port);
        thread::sleep(Duration::from_millis(50));
    }
    server
}

fn der_of(dir: &Path, cert: &Path) -> Vec<u8> {
    let der_path = dir.join("broker.der");
    openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        der_path.to_str().unwrap(),
    ]);
    std::fs::read(der_path).unwrap()
}

fn start(name: &str, newkey: &[&str]) -> Server {
    let dir = scratch(name);
    let (cert, key) = certificate(&dir, newkey);
    let der = der_of(&dir, &cert);
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-tls1_3", "-www", "-quiet"])
        .args(["-cert", cert.to_str().unwrap(), "-key", key.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    listening(Server { child, port, der, dir })
}

/// Mosquitto with one TLS listener on loopback and anonymous clients.
fn start_mosquitto(name: &str) -> Server {
    let dir = scratch(name);
    let (cert, key) = certificate(&dir, P256);
    // Mosquitto started as root drops to its own user, which must read the test's key.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let der = der_of(&dir, &cert);
    let port = free_port();
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\nallow_anonymous true\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .args(["-c", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto on PATH");
    listening(Server { child, port, der, dir })
}

/// The pin as the installer types it: `openssl x509 -noout -fingerprint -sha256`'s output.
fn openssl_pin(server: &Server) -> [u8; 32] {
    let hex: Vec<String> = fingerprint(&server.der).iter().map(|b| format!("{b:02X}")).collect();
    match Tls::parse(&hex.join(":")).unwrap() {
        Tls::Pinned(pin) => pin,
        other => panic!("a fingerprint parses as a pin, not {other:?}"),
    }
}

/// Opens TLS to the server with `pin`, asks for `/` and returns the answer's first line.
fn fetch(
    server: &Server,
    pin: [u8; 32],
    refused: &Cell<Option<PinError>>,
) -> Result<String, TlsError> {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut read_record, mut write_record) = (vec![0; READ_RECORD_LEN], vec![0; WRITE_RECORD_LEN]);
    let mut tls: TlsConnection<'_, Socket, embedded_tls::blocking::Aes128GcmSha256> =
        TlsConnection::new(Socket(stream), &mut read_record, &mut write_record);
    let config = TlsConfig::new().with_server_name("broker.test");
    tls.open(TlsContext::new(&config, PinnedServer::new(OsRng, pin, refused)))?;
    tls.write(b"GET / HTTP/1.0\r\n\r\n")?;
    tls.flush()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.contains(&b'\n') {
        let n = tls.read(&mut buf)?;
        assert!(n > 0, "the server closed before its status line");
        answer.extend_from_slice(&buf[..n]);
    }
    let line = answer.split(|&b| b == b'\n').next().unwrap();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

fn the_pinned_certificate_is_accepted_and_any_other_refused(name: &str, newkey: &[&str]) {
    let server = start(name, newkey);
    let refused = Cell::new(None);
    let pin = openssl_pin(&server);
    assert_eq!(fetch(&server, pin, &refused).expect("the pinned server"), "HTTP/1.0 200 ok");
    assert_eq!(refused.get(), None);

    let mut other = pin;
    other[0] ^= 0xFF;
    let refusal = fetch(&server, other, &refused);
    assert!(matches!(refusal, Err(TlsError::InvalidCertificate)), "{refusal:?}");
    assert_eq!(refused.get(), Some(PinError::FingerprintMismatch { presented: pin }));
}

#[test]
fn a_p256_broker_is_trusted_by_its_pin_alone() {
    the_pinned_certificate_is_accepted_and_any_other_refused("p256", P256);
}

#[test]
fn an_ed25519_broker_is_trusted_by_its_pin_alone() {
    the_pinned_certificate_is_accepted_and_any_other_refused("ed25519", &["-newkey", "ed25519"]);
}

#[test]
fn a_broker_with_a_key_the_meter_cannot_check_is_refused_by_name() {
    // P-384: the meter offers its signature scheme (embedded-tls's default list) but cannot
    // verify it, so the pinned certificate alone is not enough.
    let server = start("p384", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    let refused = Cell::new(None);
    let refusal = fetch(&server, openssl_pin(&server), &refused);
    assert!(matches!(refusal, Err(TlsError::InvalidCertificate)), "{refusal:?}");
    assert_eq!(refused.get(), Some(PinError::UnsupportedKey));
}

/// The next packet from the broker, read through TLS.
fn next_packet(
    tls: &mut TlsConnection<'_, Socket, embedded_tls::blocking::Aes128GcmSha256>,
    inbox: &mut Vec<u8>,
) -> mqtt::Incoming {
    loop {
        match mqtt::decode(inbox) {
            Ok((packet, used)) => {
                inbox.drain(..used);
                return packet;
            }
            Err(MqttError::Short) => {}
            Err(error) => panic!("the broker sent a bad packet: {error:?}"),
        }
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).expect("the broker's answer");
        assert!(n > 0, "the broker closed the connection");
        inbox.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn the_session_publishes_to_mosquitto_over_pinned_tls_and_takes_its_puback() {
    let server = start_mosquitto("mosquitto");
    let refused = Cell::new(None);
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut read_record, mut write_record) = (vec![0; READ_RECORD_LEN], vec![0; WRITE_RECORD_LEN]);
    let mut tls = TlsConnection::new(Socket(stream), &mut read_record, &mut write_record);
    let config = TlsConfig::new().with_server_name("broker.test");
    let provider = PinnedServer::new(OsRng, openssl_pin(&server), &refused);
    tls.open(TlsContext::new(&config, provider)).expect("Mosquitto's pinned TLS");

    let key = MeterKey::from_seed(&[7; 32]);
    let reading =
        Reading { counter: 41, timestamp: 1_796_342_400, exported_wh: 1_200, imported_wh: 0 };
    let mut session = Session::<2>::new(30);
    let mut out = [0u8; 320];
    let connect =
        Connect { client_id: "meter-41", username: None, password: None, keepalive_secs: 30 };
    let n = session.connect(&connect, 0, &mut out).unwrap();
    tls.write(&out[..n]).unwrap();
    tls.flush().unwrap();
    let mut inbox = Vec::new();
    session.on_incoming(next_packet(&mut tls, &mut inbox));
    assert!(session.add(key.sign_reading(&reading, &[9; 32])));
    let n = session.next_publish("nishati/test/meters/m/readings", 1, &mut out).unwrap().unwrap();
    tls.write(&out[..n]).unwrap();
    tls.flush().unwrap();
    session.on_incoming(next_packet(&mut tls, &mut inbox));
    assert_eq!(session.take_delivered(), Some(41));
    assert_eq!(refused.get(), None);
}
