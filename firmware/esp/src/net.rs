//! The chip's network: the Wi-Fi station (esp-radio), kept connected with the core's backoff;
//! DNS through the DHCP-given servers (embassy-net); and SNTP time for the signatures.

use core::cell::Cell;

use embassy_net::{
    dns::{self, DnsQueryType},
    udp::{self, PacketMetadata, UdpSocket},
    IpAddress, IpEndpoint, Stack,
};
use embassy_sync::{blocking_mutex::raw::NoopRawMutex, signal::Signal};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use esp_println::println;
use esp_radio::wifi::WifiController;
use nishati_meter_core::uplink::{
    clock::WallClock,
    session::Backoff,
    sntp::{self, SntpError},
};

/// Where the meter asks the time: the NTP pool's servers nearest it.
pub const NTP_HOST: &str = "pool.ntp.org";
const NTP_PORT: u16 = 123;
const SNTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnecting to the access point: from 1 s up to a minute.
const WIFI_BACKOFF: Backoff = Backoff { base_ms: 1_000, max_ms: 60_000 };

/// The clock set by SNTP: the meter signs nothing before it is.
pub type Time = Cell<WallClock>;
/// Raised on each sync, so that the first reading need not wait a whole period.
pub type Synced = Signal<NoopRawMutex, ()>;

// The fields are read through `Debug`, on the console.
#[allow(dead_code)]
#[derive(Debug)]
pub enum NetError {
    /// The name did not resolve (no answer, or no DNS server from DHCP).
    Dns(dns::Error),
    /// The name resolved to no IPv4 address.
    NoAddress,
    /// No answer within the wait.
    Timeout,
    Send(udp::SendError),
    Receive(udp::RecvError),
    Sntp(SntpError),
}

pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// The hardware RNG (its entropy comes from the radio while Wi-Fi is on), for jitter.
pub fn random() -> u32 {
    esp_hal::rng::Rng::new().random()
}

pub async fn resolve(stack: Stack<'_>, host: &str) -> Result<IpAddress, NetError> {
    let addresses = stack.dns_query(host, DnsQueryType::A).await.map_err(NetError::Dns)?;
    addresses.first().copied().ok_or(NetError::NoAddress)
}

/// Joins the access point and rejoins it whenever it is lost, backing off while it refuses.
pub async fn keep_wifi(mut controller: WifiController<'_>) -> ! {
    let mut failures = 0u32;
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                failures = 0;
                println!("wifi: connected");
                let reason = controller.wait_for_disconnect_async().await;
                println!("wifi: disconnected: {reason:?}");
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                println!("wifi: cannot join the network: {error:?}");
            }
        }
        let wait = WIFI_BACKOFF.delay_ms(failures.max(1), random());
        Timer::after_millis(wait.into()).await;
    }
}

/// Keeps the wall clock: syncs as soon as the network is up, then hourly, sooner after a
/// failure.
pub async fn keep_time(stack: Stack<'_>, time: &Time, synced: &Synced) -> ! {
    let mut rx_meta = [PacketMetadata::EMPTY; 2];
    let mut rx = [0u8; 2 * sntp::PACKET_LEN];
    let mut tx_meta = [PacketMetadata::EMPTY; 2];
    let mut tx = [0u8; 2 * sntp::PACKET_LEN];
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    if let Err(error) = socket.bind(0) {
        println!("time: no UDP socket for SNTP: {error:?}");
    }
    loop {
        stack.wait_config_up().await;
        let mut clock = time.get();
        if clock.sync_due(now_ms()) {
            match sync(stack, &socket).await {
                Ok(unix_secs) => {
                    clock.synced(unix_secs, now_ms());
                    println!("time: {unix_secs} (SNTP, {NTP_HOST})");
                    synced.signal(());
                }
                Err(error) => {
                    clock.failed(now_ms());
                    println!("time: SNTP failed: {error:?}");
                }
            }
            time.set(clock);
        }
        Timer::after_millis(time.get().until_sync_ms(now_ms())).await;
    }
}

async fn sync(stack: Stack<'_>, socket: &UdpSocket<'_>) -> Result<u64, NetError> {
    let server = IpEndpoint::new(resolve(stack, NTP_HOST).await?, NTP_PORT);
    socket.send_to(&sntp::request(), server).await.map_err(NetError::Send)?;
    let mut reply = [0u8; sntp::PACKET_LEN];
    loop {
        let (len, from) = with_timeout(SNTP_TIMEOUT, socket.recv_from(&mut reply))
            .await
            .map_err(|_| NetError::Timeout)?
            .map_err(NetError::Receive)?;
        // A late answer from an earlier server, or anyone else's datagram, is not the time.
        if from.endpoint == server {
            return sntp::parse_reply(&reply[..len]).map_err(NetError::Sntp);
        }
    }
}
