//! What every meter driver gives (cumulative Wh both ways), the errors a meter can have, and the
//! byte port a wired meter is read through (the chip's UART, through an RS-485 transceiver for
//! Modbus meters).

/// Cumulative energy, in Wh, since the meter was installed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Energy {
    pub exported_wh: u64,
    pub imported_wh: u64,
}

/// Which way the energy a one-direction meter measures flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// To the grid (a meter on the solar line).
    Export,
    /// From the grid.
    Import,
}

impl Direction {
    /// `wh` as the energy of this direction, nothing the other way.
    pub fn energy(self, wh: u64) -> Energy {
        match self {
            Self::Export => Energy { exported_wh: wh, imported_wh: 0 },
            Self::Import => Energy { exported_wh: 0, imported_wh: wh },
        }
    }
}

/// Why a meter gave no reading. Each is logged with its fields and no reading is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterError {
    /// Nothing came back before the timeout: the meter is silent (unpowered, unwired, or at
    /// another address).
    Silent,
    /// A reply started but did not complete before the timeout.
    Timeout { received: usize, expected: usize },
    /// The reply's CRC does not match its bytes.
    Crc { computed: u16, received: u16 },
    /// The meter answered with a Modbus exception.
    Exception { function: u8, code: u8 },
    /// A reply from another address, for another function, or of another length.
    UnexpectedReply,
    /// A register holds no energy: not a number, infinite, negative or beyond u64 Wh.
    InvalidValue { register: u16, raw: u32 },
    /// A total went below the last one read: the meter was reset or replaced, or its counter
    /// wrapped. Readings stop until the installer sees to it; the chain would refuse them as
    /// `MeterWentBackwards`.
    WentBackwards { last: Energy, read: Energy },
    /// The port itself failed (a UART framing or overrun error).
    Port,
}

/// A half-duplex byte port: sends a request, then collects the reply.
pub trait Port {
    /// Sends `request`, then reads into `reply` until it is full or `timeout_ms` passes with no
    /// byte arriving; returns how many bytes arrived.
    fn transact(
        &mut self,
        request: &[u8],
        reply: &mut [u8],
        timeout_ms: u32,
    ) -> Result<usize, MeterError>;
}

/// A meter the firmware reads its totals from.
pub trait EnergyMeter {
    fn read(&mut self) -> Result<Energy, MeterError>;
}

/// Refuses totals that go backwards, so a reset or wrapped meter never yields a reading.
#[derive(Debug, Default)]
pub struct Monotonic {
    last: Option<Energy>,
}

impl Monotonic {
    /// Starts from the totals of the last signed reading, if any.
    pub fn new(last: Option<Energy>) -> Self {
        Self { last }
    }

    pub fn check(&mut self, read: Energy) -> Result<Energy, MeterError> {
        if let Some(last) = self.last {
            if read.exported_wh < last.exported_wh || read.imported_wh < last.imported_wh {
                return Err(MeterError::WentBackwards { last, read });
            }
        }
        self.last = Some(read);
        Ok(read)
    }
}

#[cfg(any(test, feature = "checks"))]
pub mod testing {
    use super::{MeterError, Port};

    /// A port that answers with recorded bytes and keeps the request it was sent.
    pub struct Recorded<'a> {
        pub reply: &'a [u8],
        pub request: [u8; 8],
    }

    impl Port for Recorded<'_> {
        fn transact(
            &mut self,
            request: &[u8],
            reply: &mut [u8],
            _timeout_ms: u32,
        ) -> Result<usize, MeterError> {
            self.request.copy_from_slice(request);
            let n = self.reply.len().min(reply.len());
            reply[..n].copy_from_slice(&self.reply[..n]);
            Ok(n)
        }
    }
}
