//! The installer's serial console: lines typed on the meter's USB or UART port set its Wi-Fi,
//! broker, oracle and market (kept in flash, `crate::settings`) and print the proof of
//! possession the market asks for when the meter is registered to a household.
//!
//! The chip feeds received bytes to a [`LineEditor`] and gives each finished line to
//! [`run_line`], which writes its answer, or a named error, on the console. A command that
//! fails changes nothing in flash.

use core::fmt::{self, Write};

use embedded_storage_async::nor_flash::MultiwriteNorFlash;

use crate::{
    qr::{write_qr, QrError},
    settings::{SettingError, Settings, Tls},
    signer::{MeterKey, BASE58_MAX_LEN, PUBLIC_KEY_LEN},
    store::{Storage, StoreError},
};

/// Longest line the console takes: `wifi` with a quoted 32-byte name and a 63-byte password,
/// or `oracle` with a 96-byte URL, fit with room to spare.
pub const LINE_MAX_LEN: usize = 160;
/// Most words in a line (`broker-user USER PASSWORD` has three).
const MAX_WORDS: usize = 3;

pub const HELP: &str = "\
commands:
  help                          this list
  show                          the meter's key and settings (passwords masked)
  key                           the meter's public key, in base58 and as a QR code
  wifi SSID PASSWORD            the Wi-Fi network (quote a name with spaces: \"My Net\")
  broker HOST:PORT              the oracle's MQTT broker
  broker-user USER PASSWORD     the broker's login for this meter (broker-user none: no login)
  tls on|off|SHA256             MQTT over TLS (on unless the broker is on a private network);
                                SHA256: accept only the broker certificate with this
                                fingerprint (openssl x509 -noout -fingerprint -sha256)
  oracle https://HOST[:PORT][/PATH]   the oracle's HTTP API, the fallback uplink
  market ADDRESS                the market's address (base58)
  register HOUSEHOLD            this meter's proof of possession for a household (base58)
  reboot                        restart, with the settings saved
";

/// Why a line was not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    Unknown,
    /// Wrong number of words for the command; the text is its usage.
    Usage(&'static str),
    UnclosedQuote,
    /// The line is not UTF-8 text.
    NotText,
    /// Longer than `LINE_MAX_LEN`; it was dropped.
    LineTooLong,
    /// A character outside base58's alphabet, at this byte.
    BadBase58 {
        what: &'static str,
        index: usize,
    },
    /// A key that decodes to this many bytes (`None`: more than 64), not 32.
    WrongKeyLength {
        what: &'static str,
        bytes: Option<usize>,
    },
    Setting(SettingError),
    /// `register` needs the market: its address is part of the signed message.
    NoMarket,
    Store(StoreError),
}

impl From<SettingError> for CommandError {
    fn from(error: SettingError) -> Self {
        Self::Setting(error)
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => write!(f, "unknown command (help lists them)"),
            Self::Usage(usage) => write!(f, "usage: {usage}"),
            Self::UnclosedQuote => write!(f, "a quote is not closed"),
            Self::NotText => write!(f, "the line is not UTF-8 text"),
            Self::LineTooLong => write!(f, "the line is over {LINE_MAX_LEN} bytes; nothing done"),
            Self::BadBase58 { what, index } => {
                write!(f, "the {what} is not base58 (character {})", index + 1)
            }
            Self::WrongKeyLength { what, bytes: Some(bytes) } => {
                write!(f, "the {what} is {bytes} bytes, not {PUBLIC_KEY_LEN}")
            }
            Self::WrongKeyLength { what, bytes: None } => {
                write!(f, "the {what} is over 64 bytes, not {PUBLIC_KEY_LEN}")
            }
            Self::Setting(error) => write!(f, "{error}"),
            Self::NoMarket => write!(f, "set the market first: market ADDRESS"),
            Self::Store(error) => write!(f, "the flash failed ({error:?}); nothing changed"),
        }
    }
}

/// What the chip does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Restart the chip (`reboot`): the settings are in flash already.
    Reboot,
}

/// A parsed console line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Help,
    Show,
    Key,
    Wifi { ssid: &'a str, password: &'a str },
    Broker(&'a str),
    BrokerUser { user: &'a str, password: &'a str },
    NoBrokerUser,
    Tls(Tls),
    Oracle(&'a str),
    Market([u8; 32]),
    Register { household: [u8; 32] },
    Reboot,
}

/// Splits a line at spaces; a word in double quotes may hold spaces.
fn words(line: &str) -> Result<([&str; MAX_WORDS + 1], usize), CommandError> {
    let mut found = [""; MAX_WORDS + 1];
    let mut count = 0;
    let mut rest = line.trim_start_matches(' ');
    while !rest.is_empty() {
        let (word, after) = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').ok_or(CommandError::UnclosedQuote)?,
            None => rest.split_once(' ').unwrap_or((rest, "")),
        };
        // One more than a command takes, so that too many words are told, not cut.
        if count < found.len() {
            found[count] = word;
        }
        count += 1;
        rest = after.trim_start_matches(' ');
    }
    Ok((found, count))
}

fn key(text: &str, what: &'static str) -> Result<[u8; 32], CommandError> {
    let mut decoded = [0u8; 64];
    let len = bs58::decode(text).onto(&mut decoded[..]).map_err(|error| match error {
        bs58::decode::Error::BufferTooSmall => CommandError::WrongKeyLength { what, bytes: None },
        bs58::decode::Error::InvalidCharacter { index, .. }
        | bs58::decode::Error::NonAsciiCharacter { index } => {
            CommandError::BadBase58 { what, index }
        }
        _ => CommandError::BadBase58 { what, index: 0 },
    })?;
    decoded[..len].try_into().map_err(|_| CommandError::WrongKeyLength { what, bytes: Some(len) })
}

/// The command on `line`; `None` for an empty line.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, CommandError> {
    let (w, count) = words(line)?;
    let usage = |text| Err(CommandError::Usage(text));
    let command = match (w[0], count) {
        (_, 0) => return Ok(None),
        ("help", 1) => Command::Help,
        ("show", 1) => Command::Show,
        ("key", 1) => Command::Key,
        ("reboot", 1) => Command::Reboot,
        ("wifi", 3) => Command::Wifi { ssid: w[1], password: w[2] },
        ("wifi", _) => return usage("wifi SSID PASSWORD"),
        ("broker", 2) => Command::Broker(w[1]),
        ("broker", _) => return usage("broker HOST:PORT"),
        ("broker-user", 2) if w[1] == "none" => Command::NoBrokerUser,
        ("broker-user", 3) => Command::BrokerUser { user: w[1], password: w[2] },
        ("broker-user", _) => return usage("broker-user USER PASSWORD, or broker-user none"),
        ("tls", 2) => Command::Tls(Tls::parse(w[1])?),
        ("tls", _) => return usage("tls on|off|SHA256"),
        ("oracle", 2) => Command::Oracle(w[1]),
        ("oracle", _) => return usage("oracle https://HOST[:PORT][/PATH]"),
        ("market", 2) => Command::Market(key(w[1], "market address")?),
        ("market", _) => return usage("market ADDRESS"),
        ("register", 2) => Command::Register { household: key(w[1], "household address")? },
        ("register", _) => return usage("register HOUSEHOLD"),
        ("help" | "show" | "key" | "reboot", _) => return usage("a command without arguments"),
        _ => return Err(CommandError::Unknown),
    };
    Ok(Some(command))
}

fn write_base58(out: &mut impl Write, bytes: &[u8; 32]) -> fmt::Result {
    let mut text = [0u8; BASE58_MAX_LEN];
    let len = bs58::encode(bytes).onto(&mut text[..]).map_err(|_| fmt::Error)?;
    out.write_str(core::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
}

fn write_hex(out: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(out, "{byte:02x}"))
}

/// The meter's public key in base58 and as a QR code: what the installer scans or copies.
pub fn write_identity(out: &mut impl Write, key: &MeterKey) -> Result<(), QrError> {
    let mut base58 = [0u8; BASE58_MAX_LEN];
    let text = key.public_key_base58(&mut base58);
    writeln!(out, "meter public key: {text}")?;
    write_qr(text, out)
}

/// What the console prints at boot: the key, its QR code and how to register the meter.
pub fn write_boot_banner(out: &mut impl Write, key: &MeterKey, settings: &Settings) -> fmt::Result {
    write_identity(out, key).map_err(|_| fmt::Error)?;
    if settings.market.is_none() {
        writeln!(out, "not provisioned: set `market ADDRESS`, `wifi`, `broker` and `oracle`")?;
    }
    writeln!(
        out,
        "to register this meter: `register HOUSEHOLD` prints its proof; `help` lists commands"
    )
}

fn write_settings(out: &mut impl Write, key: &MeterKey, s: &Settings) -> fmt::Result {
    let mut base58 = [0u8; BASE58_MAX_LEN];
    writeln!(out, "meter        {}", key.public_key_base58(&mut base58))?;
    if s.wifi_ssid.is_empty() {
        writeln!(out, "wifi         (not set)")?;
    } else {
        writeln!(out, "wifi         {:?}, password {:?}", s.wifi_ssid, s.wifi_password)?;
    }
    if s.broker_host.is_empty() {
        writeln!(out, "broker       (not set)")?;
    } else {
        writeln!(out, "broker       {}:{}", s.broker_host.as_str(), s.broker_port)?;
    }
    match &s.broker_tls {
        Tls::Off => writeln!(out, "tls          off")?,
        Tls::On => writeln!(out, "tls          on")?,
        Tls::Pinned(fingerprint) => {
            out.write_str("tls          on, pinned to SHA-256 ")?;
            for (i, byte) in fingerprint.iter().enumerate() {
                let separator = if i == 0 { "" } else { ":" };
                write!(out, "{separator}{byte:02X}")?;
            }
            out.write_char('\n')?;
        }
    }
    if s.broker_user.is_empty() {
        writeln!(out, "broker-user  (none)")?;
    } else {
        writeln!(out, "broker-user  {}, password {:?}", s.broker_user.as_str(), s.broker_password)?;
    }
    match s.oracle_url.as_str() {
        "" => writeln!(out, "oracle       (not set)")?,
        url => writeln!(out, "oracle       {url}")?,
    }
    match &s.market {
        None => writeln!(out, "market       (not set)"),
        Some(market) => {
            out.write_str("market       ")?;
            write_base58(out, market)?;
            out.write_char('\n')
        }
    }
}

/// The proof of possession, in the form `nishati household register` and `set-meter` take it:
/// the meter's key in base58 (`--meter`) and its signature in hex (`--meter-proof`).
fn write_registration(
    out: &mut impl Write,
    key: &MeterKey,
    market: &[u8; 32],
    household: &[u8; 32],
) -> fmt::Result {
    let registration = key.sign_registration(market, household);
    let mut base58 = [0u8; BASE58_MAX_LEN];
    let meter = key.public_key_base58(&mut base58);
    out.write_str("registration of this meter to household ")?;
    write_base58(out, household)?;
    out.write_str(" in market ")?;
    write_base58(out, market)?;
    out.write_str("\nmessage      ")?;
    write_hex(out, &registration.message)?;
    writeln!(out, "\nmeter        {meter}")?;
    out.write_str("meter proof  ")?;
    write_hex(out, &registration.signature)?;
    write!(out, "\non the installer's computer:\n  nishati household register ")?;
    write_base58(out, market)?;
    write!(out, " --meter {meter} --meter-proof ")?;
    write_hex(out, &registration.signature)?;
    write!(out, " --phone ... --installer-keypair ...\nor, for a household changing its meter:\n  nishati household set-meter ")?;
    write_base58(out, household)?;
    write!(out, " --meter {meter} --meter-proof ")?;
    write_hex(out, &registration.signature)?;
    writeln!(out, " --installer-keypair ...")
}

/// Carries out `command`; a setting is saved to flash before `ok` is printed.
pub async fn execute<F: MultiwriteNorFlash>(
    command: Command<'_>,
    storage: &mut Storage<F>,
    key: &MeterKey,
    out: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let mut settings = storage.load_settings().await?;
    let before = settings;
    match command {
        Command::Help => {
            let _ = out.write_str(HELP);
        }
        Command::Show => {
            let _ = write_settings(out, key, &settings);
        }
        Command::Key => {
            let _ = write_identity(out, key);
        }
        Command::Reboot => {
            let _ = writeln!(out, "rebooting");
            return Ok(Outcome::Reboot);
        }
        Command::Register { household } => {
            let market = settings.market.ok_or(CommandError::NoMarket)?;
            let _ = write_registration(out, key, &market, &household);
        }
        Command::Wifi { ssid, password } => settings.set_wifi(ssid, password)?,
        Command::Broker(host_port) => settings.set_broker(host_port)?,
        Command::BrokerUser { user, password } => settings.set_broker_login(user, password)?,
        Command::NoBrokerUser => settings.clear_broker_login(),
        Command::Tls(tls) => settings.set_broker_tls(tls),
        Command::Oracle(url) => settings.set_oracle_url(url)?,
        Command::Market(market) => settings.set_market(market),
    }
    if settings != before {
        storage.save_settings(&settings).await?;
        let _ = writeln!(out, "ok, saved (reboot to use it)");
    } else if !matches!(
        command,
        Command::Help | Command::Show | Command::Key | Command::Register { .. }
    ) {
        let _ = writeln!(out, "ok, unchanged");
    }
    Ok(Outcome::Done)
}

/// Parses and carries out one console line, writing the answer or `error: ...` on `out`.
pub async fn run_line<F: MultiwriteNorFlash>(
    line: Result<&str, CommandError>,
    storage: &mut Storage<F>,
    key: &MeterKey,
    out: &mut impl Write,
) -> Outcome {
    let result = match line.and_then(parse) {
        Ok(None) => Ok(Outcome::Done),
        Ok(Some(command)) => execute(command, storage, key, out).await,
        Err(error) => Err(error),
    };
    result.unwrap_or_else(|error| {
        let _ = writeln!(out, "error: {error}");
        Outcome::Done
    })
}

/// What a byte typed on the console means.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Taken into the line: echo it.
    Echo(u8),
    /// The last character was erased: move back over it.
    Erase,
    /// Nothing to show (a byte ignored, or a line dropped for its length was ended).
    Nothing,
    /// Enter: the finished line, or why it cannot be read.
    Line(Result<&'a str, CommandError>),
}

/// Gathers typed bytes into lines, with backspace; a line ends at CR or LF.
pub struct LineEditor {
    line: [u8; LINE_MAX_LEN],
    len: usize,
    overflowed: bool,
    /// The line just given ended at CR: a LF right after it is the same Enter.
    after_cr: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self { line: [0; LINE_MAX_LEN], len: 0, overflowed: false, after_cr: false }
    }
}

impl LineEditor {
    pub fn feed(&mut self, byte: u8) -> Input<'_> {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Input::Nothing,
            b'\r' | b'\n' => {
                let (len, overflowed) = (self.len, self.overflowed);
                self.len = 0;
                self.overflowed = false;
                Input::Line(if overflowed {
                    Err(CommandError::LineTooLong)
                } else {
                    core::str::from_utf8(&self.line[..len]).map_err(|_| CommandError::NotText)
                })
            }
            0x08 | 0x7F => {
                if self.len == 0 || self.overflowed {
                    return Input::Nothing;
                }
                // Back over one whole UTF-8 character.
                self.len -= 1;
                while self.len > 0 && self.line[self.len] & 0xC0 == 0x80 {
                    self.len -= 1;
                }
                Input::Erase
            }
            byte if byte < 0x20 => Input::Nothing,
            _ if self.len == LINE_MAX_LEN || self.overflowed => {
                self.overflowed = true;
                Input::Nothing
            }
            byte => {
                self.line[self.len] = byte;
                self.len += 1;
                Input::Echo(byte)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use embassy_futures::block_on;
    use nishati_reading::registration;

    use super::*;
    use crate::{
        sim_flash::SimFlash,
        store::{Layout, SECTOR},
    };

    const SMALL: Layout = Layout { settings: 0..2 * SECTOR, backlog: 2 * SECTOR..4 * SECTOR };
    const MARKET: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";

    fn meter() -> MeterKey {
        MeterKey::from_seed(&[0x5A; 32])
    }

    fn storage() -> Storage<SimFlash<Vec<u8>>> {
        Storage::new(SimFlash::new(4), SMALL).unwrap()
    }

    /// Types `line` and Enter, as a terminal sends them, and returns what the meter printed.
    fn type_line(storage: &mut Storage<SimFlash<Vec<u8>>>, text: &str) -> (String, Outcome) {
        let mut editor = LineEditor::default();
        let mut out = String::new();
        let mut outcome = Outcome::Done;
        for byte in text.bytes().chain([b'\r', b'\n']) {
            if let Input::Line(line) = editor.feed(byte) {
                outcome = block_on(run_line(line, storage, &meter(), &mut out));
            }
        }
        (out, outcome)
    }

    fn flash_bytes(storage: Storage<SimFlash<Vec<u8>>>) -> Vec<u8> {
        storage.into_flash().into_bytes()
    }

    #[test]
    fn an_installer_provisions_the_meter_and_the_settings_survive_a_reboot() {
        let mut storage = storage();
        for line in [
            "wifi \"Shamba Solar\" mvua-nyingi-2026",
            "broker mqtt.nishati.example:8883",
            "broker-user 5TVbU4wM7ETY5TL46iGaBwq41dgM6tpABcWqMpu1CACW Xq3vJ0hR9cKp2mWs7TzYb4LdNf8GuEaQ",
            "tls 9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08",
            "oracle https://oracle.nishati.example",
            &format!("market {MARKET}"),
        ] {
            let (out, outcome) = type_line(&mut storage, line);
            assert!(out.starts_with("ok"), "{line}: {out}");
            assert_eq!(outcome, Outcome::Done);
        }
        let flash = SimFlash::from_bytes(flash_bytes(storage));
        let mut storage = Storage::new(flash, SMALL).unwrap();
        let (shown, _) = type_line(&mut storage, "show");
        assert!(shown.contains("wifi         \"Shamba Solar\", password ********"), "{shown}");
        assert!(shown.contains("broker       mqtt.nishati.example:8883"), "{shown}");
        assert!(
            shown.contains(
                "broker-user  5TVbU4wM7ETY5TL46iGaBwq41dgM6tpABcWqMpu1CACW, password ********"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "tls          on, pinned to SHA-256 9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:\
                 15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("oracle       https://oracle.nishati.example"), "{shown}");
        assert!(shown.contains(&format!("market       {MARKET}")), "{shown}");
        assert!(!shown.contains("mvua") && !shown.contains("Xq3vJ0"), "{shown}");
        let settings = block_on(storage.load_settings()).unwrap();
        assert_eq!(settings.wifi_password.expose(), "mvua-nyingi-2026");
        assert_eq!(settings.broker_password.expose(), "Xq3vJ0hR9cKp2mWs7TzYb4LdNf8GuEaQ");
    }

    #[test]
    fn bad_input_is_told_by_name_and_stores_nothing() {
        let mut storage = storage();
        let cases = [
            ("wifi net 1234567", "the Wi-Fi password is 7 characters, it must have 8 to 63"),
            (
                "wifi 0123456789abcdef0123456789abcdefX password",
                "the Wi-Fi network name is 33 bytes, at most 32",
            ),
            ("wifi net", "usage: wifi SSID PASSWORD"),
            ("wifi \"net password1", "a quote is not closed"),
            ("broker mqtt.example", "the broker must be given as host:port"),
            ("broker mqtt.example:70000", "the port must be a number from 1 to 65535"),
            ("oracle http://oracle.example", "the oracle URL must be https://"),
            ("market 0OIl", "the market address is not base58 (character 1)"),
            ("market 3mJr7AoUXx2Wqd", "the market address is 10 bytes, not 32"),
            (
                "market 1111111111111111111111111111111111111111111111111111111111111111111111",
                "over 64 bytes",
            ),
            ("register 11111111111111111111111111111111", "set the market first"),
            ("tls maybe", "tls takes on, off, or the broker certificate's SHA-256"),
            ("tls on off", "usage: tls on|off|SHA256"),
            ("reboot now", "usage: a command without arguments"),
            ("flash-erase", "unknown command"),
        ];
        for (line, expected) in cases {
            let (out, outcome) = type_line(&mut storage, line);
            assert!(out.starts_with("error: ") && out.contains(expected), "{line}: {out}");
            assert_eq!(outcome, Outcome::Done);
        }
        assert_eq!(storage.into_flash().operations(), 0, "a refused command wrote to flash");
    }

    #[test]
    fn a_line_too_long_is_dropped_whole() {
        let mut storage = storage();
        let long = format!("oracle https://{}", "o".repeat(LINE_MAX_LEN));
        let (out, _) = type_line(&mut storage, &long);
        assert_eq!(out, format!("error: the line is over {LINE_MAX_LEN} bytes; nothing done\n"));
        assert_eq!(block_on(storage.load_settings()), Ok(Settings::default()));
    }

    #[test]
    fn the_editor_erases_echoes_and_takes_either_line_end() {
        let mut editor = LineEditor::default();
        assert_eq!(editor.feed(b's'), Input::Echo(b's'));
        assert_eq!(editor.feed(b'x'), Input::Echo(b'x'));
        assert_eq!(editor.feed(0x7F), Input::Erase);
        for byte in "how".bytes() {
            editor.feed(byte);
        }
        assert_eq!(editor.feed(b'\n'), Input::Line(Ok("show")));
        for byte in "wifi é".bytes() {
            editor.feed(byte);
        }
        assert_eq!(editor.feed(0x08), Input::Erase);
        assert_eq!(editor.feed(b'\r'), Input::Line(Ok("wifi ")));
        assert_eq!(editor.feed(b'\n'), Input::Nothing);
        assert_eq!(editor.feed(b'\r'), Input::Line(Ok("")));
        assert_eq!(editor.feed(0xFF), Input::Echo(0xFF));
        assert_eq!(editor.feed(b'\r'), Input::Line(Err(CommandError::NotText)));
    }

    #[test]
    fn register_prints_the_proof_the_market_checks() {
        let mut storage = storage();
        type_line(&mut storage, &format!("market {MARKET}"));
        let household = [9u8; 32];
        let mut household_b58 = String::new();
        write_base58(&mut household_b58, &household).unwrap();
        let (out, _) = type_line(&mut storage, &format!("register {household_b58}"));

        let market = key(MARKET, "market").unwrap();
        let key = meter();
        let signed = key.sign_registration(&market, &household);
        let mut base58 = [0u8; BASE58_MAX_LEN];
        let meter_b58 = key.public_key_base58(&mut base58);
        let proof = hex::encode(signed.signature);
        let message = hex::encode(registration::message(&market, &household, &key.public_key()));
        assert!(out.contains(&format!("message      {message}\n")), "{out}");
        assert!(out.contains(&format!("meter        {meter_b58}\n")), "{out}");
        assert!(out.contains(&format!("meter proof  {proof}\n")), "{out}");
        assert!(
            out.contains(&format!(
                "nishati household register {MARKET} --meter {meter_b58} --meter-proof {proof}"
            )),
            "{out}"
        );
        assert!(out.contains(&format!("nishati household set-meter {household_b58} --meter")));
        // The proof verifies against the meter's key over exactly that message.
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let verifying = VerifyingKey::from_bytes(&key.public_key()).unwrap();
        verifying.verify(&signed.message, &Signature::from_bytes(&signed.signature)).unwrap();
    }

    /// The shared vectors' registration (docs/reading-vectors.json, which the client and the
    /// program are held to), typed at the console: the printed message and proof are theirs.
    #[test]
    fn register_prints_the_vectors_registration() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reading-vectors.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let reg = &doc["registration"];
        let bytes = |field: &serde_json::Value| -> [u8; 32] {
            hex::decode(field.as_str().unwrap()).unwrap().try_into().unwrap()
        };
        let meter = MeterKey::from_seed(&bytes(&reg["meter_seed"]));
        let (mut market, mut household) = (String::new(), String::new());
        write_base58(&mut market, &bytes(&reg["market"])).unwrap();
        write_base58(&mut household, &bytes(&reg["household"])).unwrap();
        let mut storage = storage();
        let mut out = String::new();
        for line in [format!("market {market}"), format!("register {household}")] {
            out.clear();
            block_on(run_line(Ok(&line), &mut storage, &meter, &mut out));
        }
        let valid = &reg["cases"][0];
        assert!(valid["error"].is_null());
        let message = valid["message"].as_str().unwrap();
        let proof = valid["signature"].as_str().unwrap();
        assert!(out.contains(&format!("message      {message}\n")), "{out}");
        assert!(out.contains(&format!("--meter-proof {proof} ")), "{out}");
    }

    #[test]
    fn show_on_a_fresh_meter_and_reboot() {
        let mut storage = storage();
        let (out, _) = type_line(&mut storage, "show");
        assert!(out.contains("wifi         (not set)") && out.contains("market       (not set)"));
        assert!(out.contains("tls          on"), "{out}");
        let (out, outcome) = type_line(&mut storage, "reboot");
        assert_eq!((out.as_str(), outcome), ("rebooting\n", Outcome::Reboot));
        let (out, _) = type_line(&mut storage, "broker-user none");
        assert_eq!(out, "ok, unchanged\n");
        let (out, _) = type_line(&mut storage, "help");
        assert_eq!(out, HELP);
    }

    #[test]
    fn the_boot_banner_shows_the_key_its_code_and_the_next_step() {
        let mut out = String::new();
        write_boot_banner(&mut out, &meter(), &Settings::default()).unwrap();
        let mut base58 = [0u8; BASE58_MAX_LEN];
        let key = meter();
        let text = key.public_key_base58(&mut base58);
        assert!(out.starts_with(&format!("meter public key: {text}\n")), "{out}");
        assert!(out.contains('█') && out.contains("not provisioned"), "{out}");
        assert!(out.contains("register HOUSEHOLD"), "{out}");
    }
}
