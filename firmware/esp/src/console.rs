//! The installer's console: `nishati-meter-core::console` does the work, this module moves the
//! bytes. Input is taken from both serial ports the boards bring out: UART0 (behind the USB-UART
//! bridge of the ESP32-C3-DevKitM-1 and the C6 DevKitC's UART connector, and Wokwi's serial
//! monitor) and the chip's own USB-Serial-JTAG (boards whose USB connector goes straight to the
//! chip). Output goes through `esp-println`, which picks the port, with each `\n` sent as
//! `\r\n` for raw serial terminals.

use core::fmt::{self, Write};

use embassy_sync::{blocking_mutex::raw::NoopRawMutex, mutex::Mutex};
use embassy_time::Timer;
use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use esp_hal::{
    gpio::interconnect::PeripheralInput,
    peripherals::{UART0, USB_DEVICE},
    system::software_reset,
    uart::{self, UartRx},
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
const POLL_MS: u64 = 10;

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
    usb: UsbSerialJtagRx<'d, Blocking>,
    uart: UartRx<'d, Blocking>,
    editor: LineEditor,
}

impl<'d> Console<'d> {
    /// `uart_rx`: UART0's RX pin (GPIO20 on the C3, GPIO17 on the C6), at 115,200 baud 8N1.
    pub fn new(usb: USB_DEVICE<'d>, uart0: UART0<'d>, uart_rx: impl PeripheralInput<'d>) -> Self {
        let (usb, _tx) = UsbSerialJtag::new(usb).split();
        let uart = UartRx::new(uart0, uart::Config::default())
            .expect("115,200 baud 8N1 is a UART0 configuration")
            .with_rx(uart_rx);
        Self { usb, uart, editor: LineEditor::default() }
    }

    /// A byte typed on either port, if one is waiting.
    fn typed(&mut self) -> Option<u8> {
        if let Ok(byte) = self.usb.read_byte() {
            return Some(byte);
        }
        let mut byte = [0u8; 1];
        // A framing or parity error drops the byte: the installer sees no echo and types again.
        match self.uart.read_buffered(&mut byte) {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    /// Answers the installer's commands for as long as the meter runs; a `reboot` restarts the
    /// chip. Settings take effect from the next boot.
    pub async fn serve<F: MultiwriteNorFlash>(
        &mut self,
        storage: &Mutex<NoopRawMutex, Storage<F>>,
        key: &MeterKey,
    ) -> ! {
        loop {
            let Some(byte) = self.typed() else {
                Timer::after_millis(POLL_MS).await;
                continue;
            };
            match self.editor.feed(byte) {
                Input::Echo(byte) => Printer::write_bytes(&[byte]),
                Input::Erase => Printer::write_bytes(b"\x08 \x08"),
                Input::Nothing => {}
                Input::Line(line) => {
                    Printer::write_bytes(b"\r\n");
                    let mut storage = storage.lock().await;
                    if run_line(line, &mut storage, key, &mut Out).await == Outcome::Reboot {
                        software_reset();
                    }
                    Printer::write_bytes(b"> ");
                }
            }
        }
    }
}
