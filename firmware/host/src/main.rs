//! The meter's firmware logic on a host, for tests against the real Mosquitto and oracle:
//! the core's clock, counter, signer, backlog and uplink with std adapters (flash in a file, the
//! simulated meter or a recorded trace, SNTP over UDP, MQTT and the oracle's HTTP ingest over TCP).
//!
//! `nishati-meter-host --state DIR --market B58 --broker HOST:PORT [--root nishati]
//!  [--username NAME] [--sntp HOST:PORT] [--oracle-url http://HOST:PORT] [--interval-secs N]
//!  [--export-w W | --trace CSV] [--count N]`
//!
//! The meter is simulated (a constant `--export-w` from its first reading) or replays a recorded
//! trace of a real meter's registers (`--trace`, the format in `meter.rs`).
//!
//! Prints `meter <base58>` on start, then `waiting <counter>...`: the readings its flash holds,
//! oldest first (none on a first start). Then `clock <unix secs>` each time its clock is set
//! (from the SNTP server, or without `--sntp` from the host's clock; no reading is signed
//! before), `stored <counter> <exported Wh>` per signed reading once it is in the flash,
//! `delivered`, `posted` or `refused <counter>` per reading before it leaves the backlog
//! (`uplink`), and `drained <left>` once `--count` readings are taken and none is left to
//! deliver, then exits. A runner killed between storing a reading and its `stored` line lists
//! that reading as waiting at its next start: every reading it signed is printed as stored or
//! listed as waiting. With `--oracle-url`, a broker that stays unreachable has the backlog
//! posted to the oracle over HTTP. The broker's password, if any, is read from
//! `NISHATI_MQTT_PASSWORD` (not the command line, where other users see it).
//!
//! `nishati-meter-host --state DIR --market B58 --household B58` prints `meter <base58>` and
//! `proof <hex>`: the meter's signature over its registration to that household, which the
//! installer's registration carries as the meter's proof that it holds its key.

mod flash;
mod http;
mod meter;
mod time;
mod uplink;

use std::{
    io::Read,
    path::PathBuf,
    process::ExitCode,
    thread,
    time::{Duration, Instant},
};

use embassy_futures::block_on;
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use nishati_meter_core::{
    counter::Counter,
    signer::{MeterKey, SignedReading, BASE58_MAX_LEN, SEED_LEN},
    store::{Layout, Storage},
    uplink::{clock::WallClock, readings_topic, TOPIC_MAX_LEN},
};
use nishati_reading::Reading;

use crate::{
    flash::FileFlash,
    http::Oracle,
    meter::{HostMeter, Registers},
    time::TimeSource,
    uplink::{BrokerLogin, Uplink},
};

/// How long a pass waits while nothing is connected.
const IDLE: Duration = Duration::from_millis(20);

struct Args {
    state: PathBuf,
    market: String,
    broker: String,
    root: String,
    username: Option<String>,
    household: Option<String>,
    sntp: Option<String>,
    oracle_url: Option<String>,
    interval_secs: u32,
    export_w: u64,
    trace: Option<PathBuf>,
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
        sntp: None,
        oracle_url: None,
        interval_secs: 1,
        export_w: 0,
        trace: None,
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
            "--sntp" => args.sntp = Some(value.clone()),
            "--oracle-url" => args.oracle_url = Some(value.clone()),
            "--interval-secs" => args.interval_secs = number()? as u32,
            "--export-w" => args.export_w = number()?,
            "--trace" => args.trace = Some(value.clone().into()),
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

fn os_random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("the OS's random source");
    bytes
}

/// Signs and stores a reading of the meter dated by the meter's clock, and returns its counter
/// and export; while the clock is unset, nothing: no counter is used, nothing is signed.
fn take_reading<F: MultiwriteNorFlash>(
    storage: &mut Storage<F>,
    counter: &mut Counter,
    clock: &WallClock,
    now_ms: u64,
    key: &MeterKey,
    market: &[u8; 32],
    meter: &mut HostMeter,
) -> Result<Option<(u32, u64)>, String> {
    let Some(timestamp) = clock.unix_secs(now_ms) else {
        return Ok(None);
    };
    let Registers { exported_wh, imported_wh } = meter.registers(timestamp)?;
    let n = block_on(counter.take(storage)).map_err(|e| format!("{e:?}"))?;
    let reading = Reading { counter: n, timestamp, exported_wh, imported_wh };
    block_on(storage.push_reading(&key.sign_reading(&reading, market)))
        .map_err(|e| format!("{e:?}"))?;
    Ok(Some((n, exported_wh)))
}

/// The counters of the readings the flash holds, oldest first.
fn waiting<F: MultiwriteNorFlash>(
    storage: &mut Storage<F>,
    layout: &Layout,
) -> Result<Vec<u32>, String> {
    // Each entry takes at least a signed reading's bytes: room for a full backlog.
    let room = (layout.backlog.end - layout.backlog.start) as usize / SignedReading::LEN;
    let mut counters = vec![0; room];
    let n = block_on(storage.waiting_counters(&mut counters)).map_err(|e| format!("{e:?}"))?;
    counters.truncate(n);
    Ok(counters)
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
    let mut storage = Storage::new(flash, layout.clone()).map_err(|e| format!("{e:?}"))?;
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
    let listed: String = waiting(&mut storage, &layout)?.iter().map(|n| format!(" {n}")).collect();
    println!("waiting{listed}");
    let mut topic_buf = [0u8; TOPIC_MAX_LEN];
    let topic = readings_topic(&args.root, &args.market, &meter, &mut topic_buf)
        .map_err(|_| "topic too long")?
        .to_owned();
    let oracle = args.oracle_url.as_deref().map(Oracle::from_url).transpose()?;
    let broker = BrokerLogin {
        address: args.broker.clone(),
        username: args.username.clone(),
        password: std::env::var("NISHATI_MQTT_PASSWORD").ok(),
    };
    let mut uplink = Uplink::new(broker, meter.clone(), key.public_key(), topic, oracle);
    let time_source = args.sntp.clone().map_or(TimeSource::System, TimeSource::Sntp);
    let mut clock = WallClock::default();
    let mut meter = match &args.trace {
        Some(path) => HostMeter::trace(&args.state, path)?,
        None => HostMeter::simulated(&args.state, args.export_w),
    };
    let mut counter = block_on(Counter::resume(&mut storage)).map_err(|e| format!("{e:?}"))?;

    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut taken = 0u32;
    let mut left = 0u32;
    let mut next_reading = Instant::now();
    loop {
        if clock.sync_due(now_ms()) {
            match time_source.fetch() {
                Ok(unix_secs) => {
                    clock.synced(unix_secs, now_ms());
                    println!("clock {unix_secs}");
                }
                Err(e) => {
                    clock.failed(now_ms());
                    let wait = clock.until_sync_ms(now_ms());
                    eprintln!(
                        "{e}; nothing is signed before the clock is set; asking again in {wait} ms"
                    );
                }
            }
        }
        if taken < args.count && Instant::now() >= next_reading {
            let stamped = take_reading(
                &mut storage,
                &mut counter,
                &clock,
                now_ms(),
                &key,
                &market,
                &mut meter,
            )?;
            if let Some((n, exported_wh)) = stamped {
                println!("stored {n} {exported_wh}");
                taken += 1;
                next_reading = Instant::now() + Duration::from_secs(u64::from(args.interval_secs));
            }
        }
        left += uplink.step(&mut storage)?;
        let empty = block_on(storage.oldest_reading()).map_err(|e| format!("{e:?}"))?.is_none();
        if taken >= args.count && empty {
            uplink.close();
            println!("drained {left}");
            return Ok(());
        }
        if !uplink.connected() {
            thread::sleep(IDLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKET: [u8; 32] = [9; 32];

    fn state(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nishati-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn nothing_is_signed_before_the_clock_is_set_and_then_dated_by_it() {
        let dir = state("clock");
        let flash = FileFlash::open(&dir.join("flash.bin"), Layout::DEVICE.end() as usize).unwrap();
        let mut storage = Storage::new(flash, Layout::DEVICE).unwrap();
        let mut counter = block_on(Counter::resume(&mut storage)).unwrap();
        let key = MeterKey::from_seed(&[5; 32]);
        let mut meter = HostMeter::simulated(&dir, 3_600);
        let mut clock = WallClock::default();
        let mut take = |clock: &WallClock, now_ms, storage: &mut Storage<FileFlash>| {
            take_reading(storage, &mut counter, clock, now_ms, &key, &MARKET, &mut meter).unwrap()
        };
        assert_eq!(take(&clock, 1_000, &mut storage), None);
        // No counter was reserved, nothing stored, and the simulated meter has not started.
        assert_eq!(block_on(storage.counter_reserved()).unwrap(), None);
        assert_eq!(block_on(storage.oldest_reading()).unwrap(), None);
        assert!(!dir.join("installed").exists());

        clock.synced(1_796_342_400, 2_000);
        assert_eq!(take(&clock, 2_000, &mut storage), Some((1, 0)));
        assert_eq!(take(&clock, 12_000, &mut storage), Some((2, 10)));
        let first = block_on(storage.oldest_reading()).unwrap().unwrap();
        let second = block_on(storage.nth_reading(1)).unwrap().unwrap();
        for (reading, timestamp) in [(first, 1_796_342_400), (second, 1_796_342_410)] {
            let decoded = Reading::parse(&reading.message, &MARKET).unwrap();
            assert_eq!(decoded.timestamp, timestamp);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
