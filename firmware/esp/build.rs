//! Link arguments for binutils' ld (the Debian route, `scripts/build-firmware.sh`), which is
//! not rust-lld:
//! - no relaxation: ld relaxes the Wi-Fi blobs' data accesses into gp-relative ones that do
//!   not reach ("relocation truncated to fit: R_RISCV_GPREL_I");
//! - the blobs again as one group: they call each other in circles, and ld, unlike lld,
//!   searches each archive once, in order ("undefined reference to `misc_nvs_init'").

/// The archives esp-wifi-sys-esp32c3 and -esp32c6 0.3 link (their build.rs), less the chip's
/// Bluetooth controller (`BLUETOOTH_BLOB`).
const WIFI_BLOBS: &[&str] = &[
    "btbb",
    "coexist",
    "core",
    "espnow",
    "mesh",
    "net80211",
    "phy",
    "pp",
    "smartconfig",
    "wapi",
    "wpa_supplicant",
    "printf",
    "regulatory",
];

fn main() {
    let bluetooth_blob =
        if std::env::var_os("CARGO_FEATURE_ESP32C6").is_some() { "ble_app" } else { "btdm_app" };
    println!("cargo:rustc-link-arg=--no-relax");
    println!("cargo:rustc-link-arg=--start-group");
    println!("cargo:rustc-link-arg=-l{bluetooth_blob}");
    for blob in WIFI_BLOBS {
        println!("cargo:rustc-link-arg=-l{blob}");
    }
    println!("cargo:rustc-link-arg=--end-group");
}
