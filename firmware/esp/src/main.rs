//! The Nishati meter on an ESP32-C3 or ESP32-C6: the chip's side of `nishati-meter-core`.
//!
//! On first boot the meter key's seed is drawn from the hardware RNG (with its entropy
//! source on) and kept in the `nishati` flash partition; it never leaves the device, and only
//! its public key is printed. Every boot then resumes the reading counter from its reservation
//! in flash and reads the meter once a `READ_EVERY_SECS`, under the RTC watchdog.
//!
//! With Wi-Fi set, the network (`net`) joins it, takes an address by DHCP and the time by
//! SNTP; a reading is signed and stored in the backlog only once the time is known, and the
//! uplink (`uplink`) publishes the backlog to the broker, or posts it to the oracle when the
//! broker keeps failing. Between readings the installer's console (`console`) answers on the
//! serial ports. The tasks share one embassy executor on esp-rtos, which also runs the Wi-Fi
//! driver's threads.

#![no_std]
#![no_main]

mod console;
mod net;
mod uplink;

use core::{convert::Infallible, future::pending};

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_futures::select::{select3, select4, Either3, Either4};
use embassy_net::StackResources;
use embassy_sync::{blocking_mutex::raw::NoopRawMutex, mutex::Mutex};
use embassy_time::{with_timeout, Duration, Timer};
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use esp_backtrace as _;
use esp_bootloader_esp_idf::partitions::{read_partition_table, PARTITION_TABLE_MAX_LEN};
use esp_hal::{
    clock::CpuClock,
    peripherals::WIFI,
    rng::{Trng, TrngSource},
    rtc_cntl::{Rtc, RwdtStage},
    timer::timg::TimerGroup,
};
use esp_println::println;
use esp_radio::wifi::{
    sta::StationConfig, AuthenticationMethodConfig, Config, ControllerConfig, Interface,
    WifiController,
};
use esp_storage::FlashStorage;
use nishati_meter_core::{
    counter::Counter,
    meter::{Energy, EnergyMeter},
    settings::Settings,
    signer::{MeterKey, BASE58_MAX_LEN, SEED_LEN},
    simulated::SimulatedMeter,
    store::{Layout, Storage},
    uplink::clock::WallClock,
};
use nishati_reading::Reading;

use crate::{
    net::{now_ms, random, Synced, Time},
    uplink::{SharedStorage, Stored, Uplink},
};

esp_bootloader_esp_idf::esp_app_desc!();

/// The data partition the settings and the backlog live in (`partitions.csv`).
const PARTITION_LABEL: &str = "nishati";
const READ_EVERY_SECS: u32 = 300;
/// Reset if the main loop stops coming round: a few reading periods.
const WATCHDOG_SECS: u64 = 3 * READ_EVERY_SECS as u64;
/// The simulated meter's export, for boards with no meter wired.
const SIMULATED_EXPORT_W: u32 = 1_200;

/// The Wi-Fi driver's and the TLS buffers' heap, beside the 64 KiB reclaimed from the ROM
/// bootloader's RAM.
const HEAP_LEN: usize = 96 * 1024;
/// How long the first round waits for the first SNTP answer; without the time, a round's
/// reading is printed and not signed (the next signed one carries the same running totals).
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(60);
/// Sockets: DHCP, DNS, SNTP's UDP and the uplink's TCP.
const SOCKETS: usize = 4;

#[esp_rtos::main]
async fn main(_spawner: Spawner) -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: HEAP_LEN);
    esp_rtos::start(TimerGroup::new(peripherals.TIMG0).timer0, peripherals.FROM_CPU_INTR0);

    let mut rtc = Rtc::new(peripherals.RTC_TIMER);
    rtc.rwdt.set_timeout(RwdtStage::Stage0, esp_hal::time::Duration::from_secs(WATCHDOG_SECS));
    rtc.rwdt.enable();

    let mut flash = FlashStorage::new(peripherals.FLASH);
    let mut table = [0u8; PARTITION_TABLE_MAX_LEN];
    let partitions = read_partition_table(&mut flash, &mut table).expect("partition table");
    let partition = partitions
        .iter()
        .find(|entry| entry.label_as_str() == PARTITION_LABEL)
        .expect("no `nishati` partition: flash with firmware/esp/partitions.csv");
    let mut region = partition.as_flash_region(&mut flash);
    let nor = region.as_nor_flash().expect("the `nishati` partition must not be encrypted");
    let mut storage =
        Storage::new(BlockingAsync::new(nor), Layout::DEVICE).expect("`nishati` partition layout");

    let seed = match storage.seed().await.expect("reading the key") {
        Some(seed) => seed,
        None => {
            let _entropy = TrngSource::new(peripherals.RNG, peripherals.ADC1);
            let mut seed = [0u8; SEED_LEN];
            Trng::try_new().expect("entropy source on").read(&mut seed);
            storage.set_seed(&seed).await.expect("storing the key");
            println!("first boot: meter key made");
            seed
        }
    };
    let key = MeterKey::from_seed(&seed);
    let settings = storage.load_settings().await.expect("reading the settings");
    console::print_banner(&key, &settings);
    #[cfg(feature = "esp32c3")]
    let uart_rx = peripherals.GPIO20;
    #[cfg(feature = "esp32c6")]
    let uart_rx = peripherals.GPIO17;
    let mut console = console::Console::new(peripherals.USB_DEVICE, peripherals.UART0, uart_rx);

    let counter = Counter::resume(&mut storage).await.expect("reading the counter");
    println!("counter resumes: {counter:?}");

    let storage = Mutex::<NoopRawMutex, _>::new(storage);
    let time = Time::new(WallClock::default());
    let synced = Synced::new();
    let stored = Stored::new();
    let meter = Metering { storage: &storage, key: &key, settings: &settings, time: &time };
    match select3(
        meter.run(counter, &synced, &stored, &mut rtc),
        console.serve(&storage, &key),
        network(peripherals.WIFI, &meter, &synced, &stored),
    )
    .await
    {
        Either3::First(never) | Either3::Second(never) | Either3::Third(never) => never,
    }
}

/// What the meter's tasks share.
struct Metering<'a, F: MultiwriteNorFlash> {
    storage: &'a SharedStorage<F>,
    key: &'a MeterKey,
    settings: &'a Settings,
    time: &'a Time,
}

impl<F: MultiwriteNorFlash> Metering<'_, F> {
    /// Reads the meter every `READ_EVERY_SECS`, and signs and stores each reading once the
    /// clock is set; feeds the watchdog.
    async fn run(
        &self,
        mut counter: Counter,
        synced: &Synced,
        stored: &Stored,
        rtc: &mut Rtc<'_>,
    ) -> ! {
        let mut meter = SimulatedMeter::new(Energy { exported_wh: 0, imported_wh: 0 });
        meter.set_power(SIMULATED_EXPORT_W, 0);
        // The first reading waits a little for the time, so it need not wait a whole period.
        let _ = with_timeout(FIRST_SYNC_WAIT, synced.wait()).await;
        loop {
            rtc.rwdt.feed();
            match meter.read() {
                Ok(energy) => self.store(&mut counter, energy, stored).await,
                Err(error) => println!("meter error: {error:?}"),
            }
            Timer::after_secs(READ_EVERY_SECS.into()).await;
            meter.advance(READ_EVERY_SECS);
        }
    }

    async fn store(&self, counter: &mut Counter, energy: Energy, stored: &Stored) {
        let Energy { exported_wh, imported_wh } = energy;
        let (Some(timestamp), Some(market)) =
            (self.time.get().unix_secs(now_ms()), self.settings.market)
        else {
            let missing =
                if self.settings.market.is_none() { "no market set" } else { "no SNTP time yet" };
            println!(
                "read: exported {exported_wh} Wh, imported {imported_wh} Wh; not signed: {missing}"
            );
            return;
        };
        let mut storage = self.storage.lock().await;
        let number = match counter.take(&mut storage).await {
            Ok(number) => number,
            Err(error) => {
                println!("counter error: {error:?}");
                return;
            }
        };
        let reading = Reading { counter: number, timestamp, exported_wh, imported_wh };
        match storage.push_reading(&self.key.sign_reading(&reading, &market)).await {
            Ok(()) => {
                println!("stored {number} {exported_wh}");
                stored.signal(());
            }
            Err(error) => println!("backlog error: {error:?}"),
        }
    }
}

/// Wi-Fi, the IP stack, the clock and the uplink; without Wi-Fi settings, nothing.
async fn network<F: MultiwriteNorFlash>(
    wifi: WIFI<'static>,
    meter: &Metering<'_, F>,
    synced: &Synced,
    stored: &Stored,
) -> ! {
    let settings = meter.settings;
    if settings.wifi_ssid.is_empty() {
        println!("network: no Wi-Fi set (console: wifi SSID PASSWORD, then reboot)");
        match pending::<Infallible>().await {}
    }
    let station = StationConfig::default()
        .with_ssid(settings.wifi_ssid.as_str().try_into().expect("the settings hold 1 to 32 bytes"))
        .with_authentication(AuthenticationMethodConfig::Wpa2Personal(
            settings.wifi_password.expose().try_into().expect("the settings hold 8 to 63 bytes"),
        ));
    let interface = Interface::station();
    let config = ControllerConfig::default().with_initial_config(Config::Station(station));
    let controller = match WifiController::new(wifi, config) {
        Ok(controller) => controller,
        Err(error) => {
            println!("network: the Wi-Fi driver did not start: {error:?}");
            match pending::<Infallible>().await {}
        }
    };
    let mut resources = StackResources::<SOCKETS>::new();
    let seed = u64::from(random()) << 32 | u64::from(random());
    let (stack, mut runner) = embassy_net::new(
        interface,
        embassy_net::Config::dhcpv4(Default::default()),
        &mut resources,
        seed,
    );
    let mut base58 = [0u8; BASE58_MAX_LEN];
    let uplink = Uplink {
        stack,
        storage: meter.storage,
        stored,
        settings,
        meter: meter.key.public_key(),
        meter_base58: meter.key.public_key_base58(&mut base58),
    };
    match select4(
        runner.run(),
        net::keep_wifi(controller),
        net::keep_time(stack, meter.time, synced),
        uplink::run(uplink),
    )
    .await
    {
        Either4::First(never)
        | Either4::Second(never)
        | Either4::Third(never)
        | Either4::Fourth(never) => never,
    }
}
