//! The Nishati meter on an ESP32-C3 or ESP32-C6: the chip's side of `nishati-meter-core`.
//!
//! On first boot the meter key's seed is drawn from the hardware RNG (with its entropy
//! source on) and kept in the `nishati` flash partition; it never leaves the device, and only
//! its public key is printed. Every boot then resumes the reading counter from its reservation
//! in flash and reads the meter once a `READ_EVERY_SECS`, under the RTC watchdog.
//!
//! Between readings the installer's console (`console`) answers on the serial ports: the boot
//! banner shows the public key and its QR code, and commands set Wi-Fi, broker, oracle, market.
//!
//! Signing waits for the uplink (SNTP time before the first signature, then MQTT): until it is
//! built the meter reports what it reads on the console.

#![no_std]
#![no_main]

mod console;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_futures::block_on;
use esp_backtrace as _;
use esp_bootloader_esp_idf::partitions::{read_partition_table, PARTITION_TABLE_MAX_LEN};
use esp_hal::{
    main,
    rng::{Trng, TrngSource},
    rtc_cntl::{Rtc, RwdtStage},
    time::Duration,
};
use esp_println::println;
use esp_storage::FlashStorage;
use nishati_meter_core::{
    counter::Counter,
    meter::{Energy, EnergyMeter},
    signer::{MeterKey, SEED_LEN},
    simulated::SimulatedMeter,
    store::{Layout, Storage},
};

esp_bootloader_esp_idf::esp_app_desc!();

/// The data partition the settings and the backlog live in (`partitions.csv`).
const PARTITION_LABEL: &str = "nishati";
const READ_EVERY_SECS: u32 = 300;
/// Reset if the main loop stops coming round: a few reading periods.
const WATCHDOG_SECS: u64 = 3 * READ_EVERY_SECS as u64;
/// The simulated meter's export, for boards with no meter wired.
const SIMULATED_EXPORT_W: u32 = 1_200;

#[main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default());

    let mut rtc = Rtc::new(peripherals.RTC_TIMER);
    rtc.rwdt.set_timeout(RwdtStage::Stage0, Duration::from_secs(WATCHDOG_SECS));
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

    let seed = match block_on(storage.seed()).expect("reading the key") {
        Some(seed) => seed,
        None => {
            let _entropy = TrngSource::new(peripherals.RNG, peripherals.ADC1);
            let mut seed = [0u8; SEED_LEN];
            Trng::try_new().expect("entropy source on").read(&mut seed);
            block_on(storage.set_seed(&seed)).expect("storing the key");
            println!("first boot: meter key made");
            seed
        }
    };
    let key = MeterKey::from_seed(&seed);
    let settings = block_on(storage.load_settings()).expect("reading the settings");
    console::print_banner(&key, &settings);
    #[cfg(feature = "esp32c3")]
    let uart_rx = peripherals.GPIO20;
    #[cfg(feature = "esp32c6")]
    let uart_rx = peripherals.GPIO17;
    let mut console = console::Console::new(peripherals.USB_DEVICE, peripherals.UART0, uart_rx);

    let counter = block_on(Counter::resume(&mut storage)).expect("reading the counter");
    println!("counter resumes: {counter:?}");

    let mut meter = SimulatedMeter::new(Energy { exported_wh: 0, imported_wh: 0 });
    meter.set_power(SIMULATED_EXPORT_W, 0);
    loop {
        rtc.rwdt.feed();
        match meter.read() {
            Ok(energy) => println!(
                "read: exported {} Wh, imported {} Wh",
                energy.exported_wh, energy.imported_wh
            ),
            Err(error) => println!("meter error: {error:?}"),
        }
        console.serve_for(Duration::from_secs(READ_EVERY_SECS.into()), &mut storage, &key);
        meter.advance(READ_EVERY_SECS);
    }
}
