//! What an installer sets on the meter without rebuilding it: the Wi-Fi network, the oracle's
//! MQTT broker and HTTP API, and the market the meter reads for. Kept in flash as one value of
//! the settings map (`crate::store`), so a power cut while they are saved leaves either the old
//! settings or the new ones, never a mix of both.
//!
//! Every field is checked when it is set ([`Settings::set_wifi`] and the others): a value that
//! fails leaves the settings as they were, and nothing reaches the flash.

use core::fmt;

use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use sequential_storage::map::{SerializationError, Value};

use crate::store::{Storage, StoreError, KEY_SETTINGS};

/// Longest Wi-Fi network name (IEEE 802.11).
pub const SSID_MAX_LEN: usize = 32;
/// A WPA2/WPA3 passphrase: 8 to 63 printable ASCII characters.
pub const WIFI_PASSWORD_LEN: core::ops::RangeInclusive<usize> = 8..=63;
/// Longest broker host name, or an IPv4 address.
pub const HOST_MAX_LEN: usize = 64;
/// A meter logs in to the broker as its key in base58: up to 44 characters.
pub const BROKER_USER_MAX_LEN: usize = 44;
pub const BROKER_PASSWORD_MAX_LEN: usize = 64;
/// Longest oracle URL (`https://host[:port][/path]`).
pub const URL_MAX_LEN: usize = 96;
/// The oracle's broker speaks MQTT over TLS on its standard port unless told otherwise.
pub const MQTTS_PORT: u16 = 8883;
/// A certificate's SHA-256 fingerprint.
pub const FINGERPRINT_LEN: usize = 32;

/// Bytes the largest settings value takes in flash (`store::BUFFER_LEN` holds it).
pub(crate) const ENCODED_MAX_LEN: usize = 1
    + (1 + SSID_MAX_LEN)
    + (1 + 63)
    + (1 + HOST_MAX_LEN)
    + 2
    + (1 + FINGERPRINT_LEN)
    + (1 + BROKER_USER_MAX_LEN)
    + (1 + BROKER_PASSWORD_MAX_LEN)
    + (1 + URL_MAX_LEN)
    + (1 + 32);
/// The layout version of the stored value; a value of another version reads as `BadValue`.
const ENCODING_VERSION: u8 = 1;

/// Why a value was refused; nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingError {
    SsidEmpty,
    SsidTooLong {
        len: usize,
    },
    WifiPasswordLength {
        len: usize,
    },
    /// A character outside printable ASCII in a passphrase, user name or URL.
    NotPrintableAscii,
    /// Not `host:port`.
    BrokerNotHostPort,
    /// A host name with characters other than letters, digits, `-` and `.`, or too long.
    BadHost,
    /// A port that is not a number from 1 to 65535.
    BadPort,
    BrokerUserTooLong {
        len: usize,
    },
    BrokerUserEmpty,
    BrokerPasswordTooLong {
        len: usize,
    },
    /// Not `https://host[:port][/path]`: the meter sends readings over TLS only.
    UrlNotHttps,
    UrlTooLong {
        len: usize,
    },
    /// Not `on`, `off` or a SHA-256 fingerprint (64 hex digits, `:` between bytes allowed).
    BadTls,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SsidEmpty => write!(f, "the Wi-Fi network name is empty"),
            Self::SsidTooLong { len } => {
                write!(f, "the Wi-Fi network name is {len} bytes, at most {SSID_MAX_LEN}")
            }
            Self::WifiPasswordLength { len } => write!(
                f,
                "the Wi-Fi password is {len} characters, it must have {} to {}",
                WIFI_PASSWORD_LEN.start(),
                WIFI_PASSWORD_LEN.end()
            ),
            Self::NotPrintableAscii => write!(f, "only printable ASCII characters are allowed"),
            Self::BrokerNotHostPort => write!(f, "the broker must be given as host:port"),
            Self::BadHost => write!(
                f,
                "the host must be a name or an IPv4 address of at most {HOST_MAX_LEN} letters, \
                 digits, '-' and '.'"
            ),
            Self::BadPort => write!(f, "the port must be a number from 1 to 65535"),
            Self::BrokerUserTooLong { len } => {
                write!(f, "the broker user is {len} bytes, at most {BROKER_USER_MAX_LEN}")
            }
            Self::BrokerUserEmpty => write!(f, "the broker user is empty"),
            Self::BrokerPasswordTooLong { len } => {
                write!(f, "the broker password is {len} bytes, at most {BROKER_PASSWORD_MAX_LEN}")
            }
            Self::UrlNotHttps => write!(f, "the oracle URL must be https://host[:port][/path]"),
            Self::UrlTooLong { len } => {
                write!(f, "the oracle URL is {len} bytes, at most {URL_MAX_LEN}")
            }
            Self::BadTls => write!(
                f,
                "tls takes on, off, or the broker certificate's SHA-256 fingerprint (64 hex digits)"
            ),
        }
    }
}

/// Text of at most `N` bytes, kept without a heap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Text<N> {
    pub const EMPTY: Self = Self { bytes: [0; N], len: 0 };

    /// `None` if `text` is longer than `N` bytes.
    fn new(text: &str) -> Option<Self> {
        let mut out = Self::EMPTY;
        let target = out.bytes.get_mut(..text.len())?;
        target.copy_from_slice(text.as_bytes());
        out.len = text.len() as u8;
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("made from a str, or checked when read from flash")
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn encode(&self, out: &mut Writer<'_>) -> Result<(), SerializationError> {
        out.put(&[self.len])?;
        out.put(&self.bytes[..usize::from(self.len)])
    }

    fn decode(input: &mut Reader<'_>) -> Result<Self, SerializationError> {
        let len = usize::from(input.take(1)?[0]);
        let text = core::str::from_utf8(input.take(len)?)
            .map_err(|_| SerializationError::InvalidFormat)?;
        Self::new(text).ok_or(SerializationError::InvalidFormat)
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A password: never shown, in `show` or in a log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret<const N: usize>(Text<N>);

impl<const N: usize> Secret<N> {
    /// The password itself, for the driver that logs in with it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { "********" })
    }
}

/// How the meter's MQTT connection trusts the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain MQTT: only for a broker on a private network.
    Off,
    /// TLS, the broker's certificate checked against the roots the uplink carries.
    On,
    /// TLS, and only the certificate whose SHA-256 fingerprint is this (a broker with its own,
    /// self-signed certificate).
    Pinned([u8; FINGERPRINT_LEN]),
}

impl Tls {
    /// `on`, `off`, or a fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it
    /// (hex, either case, bytes separated by `:` or not).
    pub fn parse(text: &str) -> Result<Self, SettingError> {
        match text {
            "on" => return Ok(Self::On),
            "off" => return Ok(Self::Off),
            _ => {}
        }
        let text = text.strip_prefix("sha256:").unwrap_or(text);
        let mut digits = text.bytes().filter(|&b| b != b':').map(|b| (b as char).to_digit(16));
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        for byte in &mut fingerprint {
            match (digits.next(), digits.next()) {
                (Some(Some(high)), Some(Some(low))) => *byte = (high << 4 | low) as u8,
                _ => return Err(SettingError::BadTls),
            }
        }
        if digits.next().is_some() {
            return Err(SettingError::BadTls);
        }
        Ok(Self::Pinned(fingerprint))
    }
}

/// The meter's provisioning. An empty text or `None`: not set yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub wifi_ssid: Text<SSID_MAX_LEN>,
    pub wifi_password: Secret<63>,
    pub broker_host: Text<HOST_MAX_LEN>,
    pub broker_port: u16,
    pub broker_tls: Tls,
    pub broker_user: Text<BROKER_USER_MAX_LEN>,
    pub broker_password: Secret<BROKER_PASSWORD_MAX_LEN>,
    pub oracle_url: Text<URL_MAX_LEN>,
    /// The market the meter's readings name (its account address).
    pub market: Option<[u8; 32]>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            wifi_ssid: Text::EMPTY,
            wifi_password: Secret(Text::EMPTY),
            broker_host: Text::EMPTY,
            broker_port: MQTTS_PORT,
            broker_tls: Tls::On,
            broker_user: Text::EMPTY,
            broker_password: Secret(Text::EMPTY),
            oracle_url: Text::EMPTY,
            market: None,
        }
    }
}

fn printable_ascii(text: &str) -> Result<(), SettingError> {
    if text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        Ok(())
    } else {
        Err(SettingError::NotPrintableAscii)
    }
}

fn host(text: &str) -> Result<Text<HOST_MAX_LEN>, SettingError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let labels_ok = text.split('.').all(|label| !label.is_empty());
    if text.is_empty() || !labels_ok || !text.bytes().all(allowed) {
        return Err(SettingError::BadHost);
    }
    Text::new(text).ok_or(SettingError::BadHost)
}

fn port(text: &str) -> Result<u16, SettingError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SettingError::BadPort);
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(SettingError::BadPort),
    }
}

impl Settings {
    pub fn set_wifi(&mut self, ssid: &str, password: &str) -> Result<(), SettingError> {
        if ssid.is_empty() {
            return Err(SettingError::SsidEmpty);
        }
        let ssid = Text::new(ssid).ok_or(SettingError::SsidTooLong { len: ssid.len() })?;
        printable_ascii(password)?;
        if !WIFI_PASSWORD_LEN.contains(&password.len()) {
            return Err(SettingError::WifiPasswordLength { len: password.len() });
        }
        let password = Text::new(password).expect("at most 63 bytes");
        self.wifi_ssid = ssid;
        self.wifi_password = Secret(password);
        Ok(())
    }

    /// `host:port`, a name or an IPv4 address.
    pub fn set_broker(&mut self, host_port: &str) -> Result<(), SettingError> {
        let (name, number) = host_port.rsplit_once(':').ok_or(SettingError::BrokerNotHostPort)?;
        let (name, number) = (host(name)?, port(number)?);
        self.broker_host = name;
        self.broker_port = number;
        Ok(())
    }

    pub fn set_broker_tls(&mut self, tls: Tls) {
        self.broker_tls = tls;
    }

    pub fn set_broker_login(&mut self, user: &str, password: &str) -> Result<(), SettingError> {
        printable_ascii(user)?;
        printable_ascii(password)?;
        if user.is_empty() {
            return Err(SettingError::BrokerUserEmpty);
        }
        let user = Text::new(user).ok_or(SettingError::BrokerUserTooLong { len: user.len() })?;
        let password = Text::new(password)
            .ok_or(SettingError::BrokerPasswordTooLong { len: password.len() })?;
        self.broker_user = user;
        self.broker_password = Secret(password);
        Ok(())
    }

    /// The broker takes the meter without a login (its client certificate or the network).
    pub fn clear_broker_login(&mut self) {
        self.broker_user = Text::EMPTY;
        self.broker_password = Secret(Text::EMPTY);
    }

    /// `https://host[:port][/path]`.
    pub fn set_oracle_url(&mut self, url: &str) -> Result<(), SettingError> {
        printable_ascii(url)?;
        if url.len() > URL_MAX_LEN {
            return Err(SettingError::UrlTooLong { len: url.len() });
        }
        let rest = url.strip_prefix("https://").ok_or(SettingError::UrlNotHttps)?;
        let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
        if authority.contains(' ') || rest.contains(' ') {
            return Err(SettingError::UrlNotHttps);
        }
        match authority.rsplit_once(':') {
            Some((name, number)) => {
                host(name)?;
                port(number)?;
            }
            None => {
                host(authority)?;
            }
        }
        self.oracle_url = Text::new(url).expect("length checked");
        Ok(())
    }

    pub fn set_market(&mut self, market: [u8; 32]) {
        self.market = Some(market);
    }
}

/// Writes the stored value into a buffer, refusing to run past it.
struct Writer<'a> {
    buffer: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SerializationError> {
        let end = self.at + bytes.len();
        let target = self.buffer.get_mut(self.at..end).ok_or(SerializationError::BufferTooSmall)?;
        target.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], SerializationError> {
        if self.bytes.len() < len {
            return Err(SerializationError::InvalidFormat);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }
}

impl<'a> Value<'a> for Settings {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let mut out = Writer { buffer, at: 0 };
        out.put(&[ENCODING_VERSION])?;
        self.wifi_ssid.encode(&mut out)?;
        self.wifi_password.0.encode(&mut out)?;
        self.broker_host.encode(&mut out)?;
        out.put(&self.broker_port.to_le_bytes())?;
        match &self.broker_tls {
            Tls::Off => out.put(&[0])?,
            Tls::On => out.put(&[1])?,
            Tls::Pinned(fingerprint) => {
                out.put(&[2])?;
                out.put(fingerprint)?;
            }
        }
        self.broker_user.encode(&mut out)?;
        self.broker_password.0.encode(&mut out)?;
        self.oracle_url.encode(&mut out)?;
        match &self.market {
            Some(market) => {
                out.put(&[1])?;
                out.put(market)?;
            }
            None => out.put(&[0])?,
        }
        Ok(out.at)
    }

    fn deserialize_from(buffer: &'a [u8]) -> Result<(Self, usize), SerializationError> {
        let mut input = Reader { bytes: buffer };
        if input.take(1)? != [ENCODING_VERSION] {
            return Err(SerializationError::InvalidFormat);
        }
        let settings = Settings {
            wifi_ssid: Text::decode(&mut input)?,
            wifi_password: Secret(Text::decode(&mut input)?),
            broker_host: Text::decode(&mut input)?,
            broker_port: u16::from_le_bytes(input.take(2)?.try_into().expect("took two bytes")),
            broker_tls: match input.take(1)?[0] {
                0 => Tls::Off,
                1 => Tls::On,
                2 => Tls::Pinned(input.take(FINGERPRINT_LEN)?.try_into().expect("took 32 bytes")),
                _ => return Err(SerializationError::InvalidFormat),
            },
            broker_user: Text::decode(&mut input)?,
            broker_password: Secret(Text::decode(&mut input)?),
            oracle_url: Text::decode(&mut input)?,
            market: match input.take(1)?[0] {
                0 => None,
                _ => Some(input.take(32)?.try_into().expect("took 32 bytes")),
            },
        };
        Ok((settings, buffer.len() - input.bytes.len()))
    }
}

impl<F: MultiwriteNorFlash> Storage<F> {
    /// The settings as last saved; the defaults on a meter never provisioned.
    pub async fn load_settings(&mut self) -> Result<Settings, StoreError> {
        let (mut map, buffer) = self.settings();
        let stored: Option<Settings> = map.fetch_item(buffer, &KEY_SETTINGS).await?;
        Ok(stored.unwrap_or_default())
    }

    /// Saves all the settings in one write of the map: a power cut keeps the old ones whole.
    pub async fn save_settings(&mut self, settings: &Settings) -> Result<(), StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.store_item(buffer, &KEY_SETTINGS, settings).await?)
    }
}

#[cfg(test)]
mod tests {
    use embassy_futures::block_on;

    use super::*;
    use crate::{
        sim_flash::SimFlash,
        store::{Layout, SECTOR},
    };

    const SMALL: Layout = Layout { settings: 0..2 * SECTOR, backlog: 2 * SECTOR..4 * SECTOR };

    fn provisioned() -> Settings {
        let mut s = Settings::default();
        s.set_wifi("Shamba Solar", "mvua-nyingi-2026").unwrap();
        s.set_broker("mqtt.nishati.example:8883").unwrap();
        s.set_broker_login("meter-17", "s3cret").unwrap();
        s.set_oracle_url("https://oracle.nishati.example/v1").unwrap();
        s.set_market([7; 32]);
        s
    }

    /// Every field at its longest: the value the map's buffer is sized for.
    fn longest() -> Settings {
        let mut s = Settings::default();
        s.set_wifi(&"s".repeat(32), &"p".repeat(63)).unwrap();
        s.set_broker(&format!("{}:65535", "h".repeat(64))).unwrap();
        s.set_broker_login(&"u".repeat(BROKER_USER_MAX_LEN), &"w".repeat(BROKER_PASSWORD_MAX_LEN))
            .unwrap();
        s.set_broker_tls(Tls::Pinned([0xAB; 32]));
        let url = format!("https://o.example/{}", "p".repeat(URL_MAX_LEN - 18));
        s.set_oracle_url(&url).unwrap();
        s.set_market([0xFF; 32]);
        s
    }

    #[test]
    fn settings_round_trip_through_flash() {
        block_on(async {
            let mut storage = Storage::new(SimFlash::new(4), SMALL).unwrap();
            assert_eq!(storage.load_settings().await, Ok(Settings::default()));
            for settings in [provisioned(), longest(), Settings::default()] {
                storage.save_settings(&settings).await.unwrap();
                let flash = SimFlash::from_bytes(storage.into_flash().into_bytes());
                storage = Storage::new(flash, SMALL).unwrap();
                assert_eq!(storage.load_settings().await, Ok(settings));
            }
        });
    }

    /// Every read of the map passes over the settings: the key, the counter and the impulse
    /// total must still read back beside the longest settings.
    #[test]
    fn the_other_values_read_back_beside_the_longest_settings() {
        block_on(async {
            let mut storage = Storage::new(SimFlash::new(4), SMALL).unwrap();
            storage.set_seed(&[9; 32]).await.unwrap();
            storage.save_settings(&longest()).await.unwrap();
            storage.set_impulses(5).await.unwrap();
            assert_eq!(storage.seed().await, Ok(Some([9; 32])));
            assert_eq!(storage.counter_reserved().await, Ok(None));
            assert_eq!(storage.impulses().await, Ok(Some(5)));
            assert_eq!(storage.load_settings().await, Ok(longest()));
        });
    }

    #[test]
    fn the_longest_settings_fill_the_encoding_exactly() {
        let mut buffer = [0u8; ENCODED_MAX_LEN];
        assert_eq!(longest().serialize_into(&mut buffer), Ok(ENCODED_MAX_LEN));
    }

    #[test]
    fn passwords_are_masked_in_debug() {
        let text = format!("{:?}", provisioned());
        assert!(!text.contains("mvua-nyingi-2026") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("Shamba Solar") && text.contains("********"), "{text}");
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let before = provisioned();
        let mut s = before;
        assert_eq!(s.set_wifi("", "12345678"), Err(SettingError::SsidEmpty));
        assert_eq!(
            s.set_wifi(&"s".repeat(33), "12345678"),
            Err(SettingError::SsidTooLong { len: 33 })
        );
        assert_eq!(s.set_wifi("net", "1234567"), Err(SettingError::WifiPasswordLength { len: 7 }));
        assert_eq!(
            s.set_wifi("net", &"p".repeat(64)),
            Err(SettingError::WifiPasswordLength { len: 64 })
        );
        assert_eq!(s.set_wifi("net", "pässwörd1"), Err(SettingError::NotPrintableAscii));
        assert_eq!(s.set_broker("mqtt.example"), Err(SettingError::BrokerNotHostPort));
        assert_eq!(s.set_broker("mqtt.example:0"), Err(SettingError::BadPort));
        assert_eq!(s.set_broker("mqtt.example:65536"), Err(SettingError::BadPort));
        assert_eq!(s.set_broker("mqtt.example:+80"), Err(SettingError::BadPort));
        assert_eq!(s.set_broker("mqtt_example:1883"), Err(SettingError::BadHost));
        assert_eq!(s.set_broker("mqtt..example:1883"), Err(SettingError::BadHost));
        assert_eq!(s.set_broker(&format!("{}:1883", "h".repeat(65))), Err(SettingError::BadHost));
        assert_eq!(s.set_broker_login("", "x"), Err(SettingError::BrokerUserEmpty));
        assert_eq!(
            s.set_broker_login(&"u".repeat(45), "x"),
            Err(SettingError::BrokerUserTooLong { len: 45 })
        );
        assert_eq!(s.set_oracle_url("http://oracle.example"), Err(SettingError::UrlNotHttps));
        assert_eq!(s.set_oracle_url("https://"), Err(SettingError::BadHost));
        assert_eq!(s.set_oracle_url("https://oracle.example:99999/"), Err(SettingError::BadPort));
        assert_eq!(
            s.set_oracle_url(&format!("https://{}", "o".repeat(URL_MAX_LEN))),
            Err(SettingError::UrlTooLong { len: URL_MAX_LEN + 8 })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn tls_is_on_off_or_a_pinned_fingerprint() {
        assert_eq!(Tls::parse("on"), Ok(Tls::On));
        assert_eq!(Tls::parse("off"), Ok(Tls::Off));
        assert_eq!(Tls::parse(&"0f".repeat(32)), Ok(Tls::Pinned([0x0F; 32])));
        assert_eq!(Tls::parse(&["AB"; 32].join(":")), Ok(Tls::Pinned([0xAB; 32])));
        assert_eq!(Tls::parse(&format!("sha256:{}", "c".repeat(64))), Ok(Tls::Pinned([0xCC; 32])));
        for bad in ["yes", "", &"0f".repeat(31), &"0f".repeat(33), &"0g".repeat(32)] {
            assert_eq!(Tls::parse(bad), Err(SettingError::BadTls), "{bad}");
        }
        assert_eq!(Settings::default().broker_tls, Tls::On);
    }

    #[test]
    fn good_values_are_taken() {
        let mut s = Settings::default();
        s.set_broker("192.168.1.10:1883").unwrap();
        assert_eq!((s.broker_host.as_str(), s.broker_port), ("192.168.1.10", 1883));
        s.set_oracle_url("https://oracle.example:8443").unwrap();
        assert_eq!(s.oracle_url.as_str(), "https://oracle.example:8443");
        s.set_wifi(&"s".repeat(32), "12345678").unwrap();
        s.clear_broker_login();
        assert!(s.broker_user.is_empty() && s.broker_password.is_empty());
    }

    const SEED: [u8; 32] = [0x33; 32];

    /// With the key stored, saves settings in turn, with the impulse total written between
    /// them so the map fills its sectors and erases them again; the power is cut at write or
    /// erase `at`. Returns the settings saved for sure and the ones being saved when the power
    /// went, or `None` if the scenario ended before operation `at`.
    fn save_with_cut_at(at: usize) -> Option<(Vec<u8>, Settings, Settings)> {
        let versions = [provisioned(), longest(), Settings::default(), provisioned()];
        let mut storage = Storage::new(SimFlash::new(4), SMALL).expect("layout");
        block_on(storage.set_seed(&SEED)).expect("no cut yet");
        let flash = storage.into_flash().cut_power_after(at);
        let mut storage = Storage::new(flash, SMALL).expect("layout");
        let mut saved = Settings::default();
        block_on(async {
            for round in 0..60u64 {
                let next = versions[round as usize % versions.len()];
                if storage.save_settings(&next).await.is_err() {
                    return Some((storage.into_flash().into_bytes(), saved, next));
                }
                saved = next;
                if storage.set_impulses(round).await.is_err() {
                    return Some((storage.into_flash().into_bytes(), saved, saved));
                }
            }
            assert!(storage.into_flash().erases() >= 2, "the scenario recycles no sector");
            None
        })
    }

    #[test]
    fn a_power_cut_at_every_write_leaves_the_old_or_the_new_settings() {
        let mut at = 0;
        while let Some((bytes, old, new)) = save_with_cut_at(at) {
            let mut storage = Storage::new(SimFlash::from_bytes(bytes), SMALL).unwrap();
            let found = block_on(storage.load_settings()).expect("settings readable after a cut");
            assert!(found == old || found == new, "cut at {at}: a mix {found:?}");
            assert_eq!(block_on(storage.seed()), Ok(Some(SEED)), "cut at {at}: the key");
            at += 1;
        }
        assert!(at > 20, "only {at} writes");
        println!("settings saved with the power cut at each of {at} writes and erases");
    }
}
