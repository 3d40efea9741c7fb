//! NOR flash in a file, written through on every operation so that a process killed at any
//! moment restarts with what the flash held: NOR semantics (a write only clears bits, an
//! erase sets a sector to 0xFF), as `sequential-storage` expects of a `MultiwriteNorFlash`.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::Path,
};

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

pub const SECTOR: usize = 4096;

/// A failed file operation, logged where it happened (the storage crate keeps only its kind).
#[derive(Debug)]
pub struct FileFlashError;

fn failed(error: io::Error) -> FileFlashError {
    eprintln!("flash file: {error}");
    FileFlashError
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

pub struct FileFlash {
    file: File,
    len: usize,
}

impl FileFlash {
    /// Opens the flash image at `path`, creating it erased (all 0xFF) with `len` bytes.
    pub fn open(path: &Path, len: usize) -> io::Result<Self> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if file.metadata()?.len() != len as u64 {
            file.write_all_at(&vec![0xFF; len], 0)?;
            file.sync_all()?;
        }
        Ok(Self { file, len })
    }

    fn check(&self, offset: u32, len: usize) -> Result<u64, FileFlashError> {
        let end = offset as usize + len;
        if end > self.len {
            return Err(failed(io::Error::other("out of bounds")));
        }
        Ok(u64::from(offset))
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len())?;
        self.file.read_exact_at(bytes, at).map_err(failed)
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let at = self.check(from, (to - from) as usize)?;
        self.file.write_all_at(&vec![0xFF; (to - from) as usize], at).map_err(failed)?;
        self.file.sync_data().map_err(failed)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.check(offset, bytes.len())?;
        let mut old = vec![0u8; bytes.len()];
        self.file.read_exact_at(&mut old, at).map_err(failed)?;
        let new: Vec<u8> = old.iter().zip(bytes).map(|(o, b)| o & b).collect();
        self.file.write_all_at(&new, at).map_err(failed)?;
        self.file.sync_data().map_err(failed)
    }
}

impl MultiwriteNorFlash for FileFlash {}
