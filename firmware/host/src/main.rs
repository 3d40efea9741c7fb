//! The meter's firmware logic on a host, for tests against the real Mosquitto and oracle:
//! the core's counter, signer, backlog and uplink session with std adapters (flash in a file,
//! the simulated meter, MQTT over TCP, the system clock).
//!
//! `nishati-meter-host --state DIR --market B58 --broker HOST:PORT [--root nishati]
//!  [--username NAME] [--interval-secs N] [--export-w W] [--count N]`
//!
//! Prints `meter <base58>` on start, `stored <counter> <exported Wh>` per signed reading,
//! `delivered <counter>` per acknowledgement and `drained <delivered>` once `--count` readings
//! are taken and none is left to deliver, then exits. The broker's password, if any, is read
//! from `NISHATI_MQTT_PASSWORD` (not the command line, where other users see it).
//!
//! `nishati-meter-host --state DIR --market B58 --household B58` prints `meter <base58>` and
//! `proof <hex>`: the meter's signature over its registration to that household, which the
//! installer's registration carries as the meter's proof that it holds its key.

mod flash;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::ExitCode,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use embassy_futures::block_on;
use nishati_meter_core::{
    counter::Counter,
    signer::{MeterKey, BASE58_MAX_LEN, SEED_LEN},
    store::{Layout, Storage},
    uplink::{
        mqtt::{self, Connect, MqttError},
        readings_topic,
        session::{Backoff, Session, Tick},
        TOPIC_MAX_LEN,
    },
};
use nishati_reading::Reading;

use crate::flash::FileFlash;

struct Args {
    state: PathBuf,
    market: String,
    broker: String,
    root: String,
    username: Option<String>,
    household: Option<String>,
    interval_secs: u32,
    export_w: u64,
    count: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        state: PathBuf::new(),
        market: String::new(),
        broker: String::new(),
        root: "nishati".into(),
        username: None,
        household: None,
        interval_secs: 1,
        export_w: 0,
        count: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--state" => args.state = value.clone().into(),
            "--market" => args.market = value.clone(),
            "--broker" => args.broker = value.clone(),
            "--root" => args.root = value.clone(),
            "--username" => args.username = Some(value.clone()),
            "--household" => args.household = Some(value.clone()),
            "--interval-secs" => args.interval_secs = number()? as u32,
            "--export-w" => args.export_w = number()?,
            "--count" => args.count = number()? as u32,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.market.is_empty() || args.state.as_os_str().is_empty() {
        return Err("--state and --market are required".into());
    }
    if args.household.is_none() && args.broker.is_empty() {
        return Err("--broker is required, unless --household asks for the registration".into());
    }
    Ok(args)
}

fn base58_key(flag: &str, text: &str) -> Result<[u8; 32], String> {
    bs58::decode(text)
        .into_vec()
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(format!("{flag} is not a base58 key"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as u32
}

fn os_random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the OS's random source");
    bytes
}

/// When the simulated meter started counting: the state's first start, kept in the state.
fn installed_at(state: &std::path::Path) -> Result<u32, String> {
    let path = state.join("installed");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| format!("{}: {e}", path.display())),
        Err(_) => {
            let now = now_secs();
            std::fs::write(&path, now.to_string()).map_err(|e| e.to_string())?;
            Ok(now)
        }
    }
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.state).map_err(|e| e.to_string())?;
    let layout = Layout::DEVICE;
    let flash = FileFlash::open(&args.state.join("flash.bin"), layout.end() as usize)
        .map_err(|e| format!("flash: {e}"))?;
    let mut storage = Storage::new(flash, layout).map_err(|e| format!("{e:?}"))?;
    let seed = match block_on(storage.seed()).map_err(|e| format!("{e:?}"))? {
        Some(seed) => seed,
        None => {
            let seed = os_random::<SEED_LEN>();
            block_on(storage.set_seed(&seed)).map_err(|e| format!("{e:?}"))?;
            seed
        }
    };
    let key = MeterKey::from_seed(&seed);
    let mut b58 = [0u8; BASE58_MAX_LEN];
    let meter = key.public_key_base58(&mut b58).to_owned();
    println!("meter {meter}");
    let market = base58_key("--market", &args.market)?;
    if let Some(household) = &args.household {
        let registration = key.sign_registration(&market, &base58_key("--household", household)?);
        println!("proof {}", hex(&registration.signature));
        return Ok(());
    }
    let password = std::env::var("NISHATI_MQTT_PASSWORD").ok();
    let mut topic_buf = [0u8; TOPIC_MAX_LEN];
    let topic = readings_topic(&args.root, &args.market, &meter, &mut topic_buf)
        .map_err(|_| "topic too long")?
        .to_owned();
    let installed = installed_at(&args.state)?;
    let mut counter = block_on(Counter::resume(&mut storage)).map_err(|e| format!("{e:?}"))?;

    let mut session = Session::<8>::new(30);
    let backoff = Backoff { base_ms: 200, max_ms: 5000 };
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut taken = 0u32;
    let mut delivered = 0u32;
    let mut next_reading = Instant::now();
    let mut link: Option<(TcpStream, Vec<u8>)> = None;
    let mut out = [0u8; 512];
    loop {
        if taken < args.count && Instant::now() >= next_reading {
            let n = block_on(counter.take(&mut storage)).map_err(|e| format!("{e:?}"))?;
            // The simulated meter: a constant export since the state was made, so a restarted
            // runner goes on from the total a real meter would show.
            let exported_wh =
                args.export_w * u64::from(now_secs().saturating_sub(installed)) / 3600;
            let reading =
                Reading { counter: n, timestamp: now_secs(), exported_wh, imported_wh: 0 };
            block_on(storage.push_reading(&key.sign_reading(&reading, &market)))
                .map_err(|e| format!("{e:?}"))?;
            println!("stored {n} {exported_wh}");
            taken += 1;
            next_reading = Instant::now() + Duration::from_secs(u64::from(args.interval_secs));
        }
        if link.is_none() {
            match TcpStream::connect(&args.broker) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(Duration::from_millis(50))).ok();
                    let connect = Connect {
                        client_id: &meter,
                        username: args.username.as_deref(),
                        password: password.as_deref().map(str::as_bytes),
                        keepalive_secs: 30,
                    };
                    let n = session
                        .connect(&connect, now_ms(), &mut out)
                        .map_err(|e| format!("{e:?}"))?;
                    let mut stream = stream;
                    if stream.write_all(&out[..n]).is_ok() {
                        link = Some((stream, Vec::new()));
                    } else {
                        session.connection_lost();
                    }
                }
                Err(e) => {
                    session.connection_lost();
                    let wait = backoff.delay_ms(session.failures, u32::from_le_bytes(os_random()));
                    eprintln!("broker unreachable: {e}; retrying in {wait} ms");
                    thread::sleep(Duration::from_millis(u64::from(wait)));
                    continue;
                }
            }
        }
        let (stream, inbox) = link.as_mut().expect("connected above");
        let mut broken = false;
        while let Some(reading) =
            block_on(storage.nth_reading(session.in_flight())).map_err(|e| format!("{e:?}"))?
        {
            if !session.add(reading) {
                break;
            }
        }
        while let Some(n) =
            session.next_publish(&topic, now_ms(), &mut out).map_err(|e| format!("{e:?}"))?
        {
            broken |= stream.write_all(&out[..n]).is_err();
        }
        match session.tick(now_ms()) {
            Tick::Ping => broken |= stream.write_all(&Session::<8>::PING).is_err(),
            Tick::Dead => broken = true,
            Tick::Idle => {}
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => broken = true,
            Ok(n) => inbox.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => broken = true,
        }
        loop {
            match mqtt::decode(inbox) {
                Ok((packet, used)) => {
                    inbox.drain(..used);
                    session.on_incoming(packet);
                }
                Err(MqttError::Short) => break,
                Err(e) => {
                    eprintln!("broker sent a bad packet: {e:?}");
                    broken = true;
                    break;
                }
            }
        }
        while let Some(n) = session.take_delivered() {
            block_on(storage.acknowledge(n)).map_err(|e| format!("{e:?}"))?;
            println!("delivered {n}");
            delivered += 1;
        }
        if broken {
            link = None;
            session.connection_lost();
            continue;
        }
        let empty = block_on(storage.oldest_reading()).map_err(|e| format!("{e:?}"))?.is_none();
        if taken >= args.count && empty {
            if let Some((stream, _)) = link.as_mut() {
                let _ = stream.write_all(&mqtt::DISCONNECT_PACKET);
            }
            println!("drained {delivered}");
            return Ok(());
        }
    }
}
