//! The installer's console on the chip's USB-Serial-JTAG port (the USB connector of the C3 and
//! C6 DevKits): `nishati-meter-core::console` does the work, this module moves the bytes.
//! Output goes through `esp-println`, which writes to the same port, with each `\n` sent as
//! `\r\n` for raw serial terminals.

use core::fmt::{self, Write};

use embassy_futures::block_on;
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use esp_hal::{
    delay::Delay,
    peripherals::USB_DEVICE,
    system::software_reset,
    time::{Duration, Instant},
    usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx},
    Blocking,
};
use esp_println::Printer;
use nishati_meter_core::{
    console::{run_line, write_boot_banner, Input, LineEditor, Outcome},
    settings::Settings,
    signer::MeterKey,
    store::Storage,
};

/// How often the port is looked at while nothing is typed.
const POLL_MS: u32 = 10;

/// The console's output: esp-println's printer, lines ended with CR LF.
pub struct Out;

impl Write for Out {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                Printer.write_str("\r\n")?;
            }
            Printer.write_str(part)?;
        }
        Ok(())
    }
}

/// The boot message: the meter's key in base58 and as a QR code, and how to register it.
pub fn print_banner(key: &MeterKey, settings: &Settings) {
    // The port may be closed (no cable): output is dropped, the meter goes on.
    let _ = write_boot_banner(&mut Out, key, settings);
}

pub struct Console<'d> {
    rx: UsbSerialJtagRx<'d, Blocking>,
    editor: LineEditor,
}

impl<'d> Console<'d> {
    pub fn new(usb: USB_DEVICE<'d>) -> Self {
        let (rx, _tx) = UsbSerialJtag::new(usb).split();
        Self { rx, editor: LineEditor::default() }
    }

    /// Answers the installer's commands for `period`, then returns; a `reboot` restarts the chip.
    pub fn serve_for<F: MultiwriteNorFlash>(
        &mut self,
        period: Duration,
        storage: &mut Storage<F>,
        key: &MeterKey,
    ) {
        let start = Instant::now();
        let delay = Delay::new();
        while start.elapsed() < period {
            let Ok(byte) = self.rx.read_byte() else {
                delay.delay_millis(POLL_MS);
                continue;
            };
            match self.editor.feed(byte) {
                Input::Echo(byte) => Printer::write_bytes(&[byte]),
                Input::Erase => Printer::write_bytes(b"\x08 \x08"),
                Input::Nothing => {}
                Input::Line(line) => {
                    Printer::write_bytes(b"\r\n");
                    if block_on(run_line(line, storage, key, &mut Out)) == Outcome::Reboot {
                        software_reset();
                    }
                    Printer::write_bytes(b"> ");
                }
            }
        }
    }
}
