//! A simulated NOR flash for host tests and the host runner: erase sets bytes to `0xFF`, a write
//! can only clear bits, and power can be cut at any chosen write or erase. The operation the
//! power is cut at is left half done (half the words written, or the first half of the sector
//! erased) and every operation after it fails, as on a device that lost its supply.
//!
//! The bytes are any buffer the caller owns: a `Vec` on the host, an array in RAM on a no_std
//! target (the QEMU test image, `firmware/qemu`).

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// ESP32 flash geometry, as esp-storage reports it.
pub const WORD: usize = 4;
pub const SECTOR: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFlashError {
    /// Power was cut: this operation was left half done, or the device is off.
    PowerCut,
    OutOfBounds,
    NotAligned,
}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::PowerCut => NorFlashErrorKind::Other,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NotAligned => NorFlashErrorKind::NotAligned,
        }
    }
}

pub struct SimFlash<B> {
    bytes: B,
    /// Writes and erases that complete before the power is cut; `None`: never cut.
    cut_after: Option<usize>,
    operations: usize,
    erases: usize,
    off: bool,
}

#[cfg(any(test, feature = "std"))]
impl SimFlash<Vec<u8>> {
    /// An erased flash of `sectors` sectors.
    pub fn new(sectors: usize) -> Self {
        Self::from_bytes(vec![0xFF; sectors * SECTOR])
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> SimFlash<B> {
    /// An erased flash over `bytes`.
    pub fn erased(mut bytes: B) -> Self {
        bytes.as_mut().fill(0xFF);
        Self::from_bytes(bytes)
    }

    /// A flash holding `bytes`, as a device finds it after a reboot.
    pub fn from_bytes(bytes: B) -> Self {
        Self { bytes, cut_after: None, operations: 0, erases: 0, off: false }
    }

    /// Cuts the power at the write or erase after the next `operations` ones.
    pub fn cut_power_after(mut self, operations: usize) -> Self {
        self.cut_after = Some(self.operations + operations);
        self
    }

    /// Writes and erases made so far.
    pub fn operations(&self) -> usize {
        self.operations
    }

    /// Sectors erased so far.
    pub fn erases(&self) -> usize {
        self.erases
    }

    pub fn is_off(&self) -> bool {
        self.off
    }

    /// The flash's contents, to boot again from.
    pub fn into_bytes(self) -> B {
        self.bytes
    }

    /// Counts an operation; `false` if the power goes at this one.
    fn power_holds(&mut self) -> Result<bool, SimFlashError> {
        if self.off {
            return Err(SimFlashError::PowerCut);
        }
        let holds = self.cut_after != Some(self.operations);
        self.operations += 1;
        self.off = !holds;
        Ok(holds)
    }

    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, SimFlashError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(SimFlashError::NotAligned);
        }
        let end = start.checked_add(len).ok_or(SimFlashError::OutOfBounds)?;
        if end > self.bytes.as_ref().len() {
            return Err(SimFlashError::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl<B> ErrorType for SimFlash<B> {
    type Error = SimFlashError;
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ReadNorFlash for SimFlash<B> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        if self.off {
            return Err(SimFlashError::PowerCut);
        }
        let range = self.range(offset, out.len(), 1)?;
        out.copy_from_slice(&self.bytes.as_ref()[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.as_ref().len()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> NorFlash for SimFlash<B> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let range = self.range(from, (to.saturating_sub(from)) as usize, SECTOR)?;
        let holds = self.power_holds()?;
        self.erases += range.len() / SECTOR;
        let end = if holds { range.end } else { range.start + range.len() / 2 };
        self.bytes.as_mut()[range.start..end].fill(0xFF);
        if holds {
            Ok(())
        } else {
            Err(SimFlashError::PowerCut)
        }
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, data.len(), WORD)?;
        let holds = self.power_holds()?;
        let len = if holds { data.len() } else { data.len() / WORD / 2 * WORD };
        for (cell, byte) in self.bytes.as_mut()[range].iter_mut().zip(&data[..len]) {
            *cell &= byte;
        }
        if holds {
            Ok(())
        } else {
            Err(SimFlashError::PowerCut)
        }
    }
}

/// A NOR cell can be written again as long as bits only go from 1 to 0, which the writes above
/// keep by AND-ing.
impl<B: AsRef<[u8]> + AsMut<[u8]>> MultiwriteNorFlash for SimFlash<B> {}
