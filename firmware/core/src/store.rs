//! The meter's settings in flash: its key seed, the counter reservation and the impulse total,
//! each a key of one `sequential-storage` map, which survives a power cut at any write (an
//! interrupted store leaves the value before it).
//!
//! Flash layout (offsets inside the data partition the chip gives): the settings map, then the
//! backlog queue (`crate::backlog`). Both are read without a RAM cache, so a `Storage` holds no
//! state but the flash and one buffer, and nothing in RAM can disagree with the flash after a
//! power cut.

use core::ops::Range;

use embedded_storage_async::nor_flash::{MultiwriteNorFlash, NorFlashError, NorFlashErrorKind};
use sequential_storage::{
    cache::{Cache, Uncached},
    map::{MapConfig, MapStorage},
};

use crate::signer::SEED_LEN;

/// Flash sector size of the ESP32 family, the unit the layout is counted in.
pub const SECTOR: u32 = 4096;
/// The settings map: a few small values, rewritten every `counter::BLOCK` readings.
pub const SETTINGS: Range<u32> = 0..4 * SECTOR;

const KEY_SEED: u8 = 1;
const KEY_COUNTER_RESERVED: u8 = 2;
const KEY_IMPULSES: u8 = 3;
/// Room for the largest item: a backlog entry (101 bytes) rounded up to flash words.
pub(crate) const BUFFER_LEN: usize = 104;

/// A flash operation that failed, without the flash driver's own type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The flash driver failed (on a device: a power cut or a hardware fault).
    Flash(NorFlashErrorKind),
    /// No room left; for the backlog, wait for acknowledgements.
    Full,
    /// What the flash holds cannot be read back even after the storage's own repair.
    Corrupted,
    /// A value in flash has the wrong size for its key.
    BadValue,
}

impl<E: NorFlashError> From<sequential_storage::Error<E>> for StoreError {
    fn from(error: sequential_storage::Error<E>) -> Self {
        match error {
            sequential_storage::Error::Storage { value, .. } => Self::Flash(value.kind()),
            sequential_storage::Error::FullStorage => Self::Full,
            sequential_storage::Error::SerializationError(_) => Self::BadValue,
            _ => Self::Corrupted,
        }
    }
}

pub(crate) type NoCache<K> = Cache<Uncached, Uncached, Uncached, K>;

/// The meter's flash partition: its settings and its backlog.
pub struct Storage<F: MultiwriteNorFlash> {
    pub(crate) flash: F,
    pub(crate) buffer: [u8; BUFFER_LEN],
}

impl<F: MultiwriteNorFlash> Storage<F> {
    pub fn new(flash: F) -> Self {
        Self { flash, buffer: [0; BUFFER_LEN] }
    }

    /// Gives the flash back (the host tests boot again from its contents).
    pub fn into_flash(self) -> F {
        self.flash
    }

    fn settings(&mut self) -> (MapStorage<u8, &mut F, NoCache<u8>>, &mut [u8; BUFFER_LEN]) {
        let map = MapStorage::new(
            &mut self.flash,
            const { MapConfig::new(SETTINGS) },
            Cache::new_uncached(),
        );
        (map, &mut self.buffer)
    }

    pub async fn seed(&mut self) -> Result<Option<[u8; SEED_LEN]>, StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.fetch_item(buffer, &KEY_SEED).await?)
    }

    pub async fn set_seed(&mut self, seed: &[u8; SEED_LEN]) -> Result<(), StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.store_item(buffer, &KEY_SEED, seed).await?)
    }

    /// Every counter handed out so far is below this value.
    pub async fn counter_reserved(&mut self) -> Result<Option<u32>, StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.fetch_item(buffer, &KEY_COUNTER_RESERVED).await?)
    }

    pub async fn set_counter_reserved(&mut self, until: u32) -> Result<(), StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.store_item(buffer, &KEY_COUNTER_RESERVED, &until).await?)
    }

    /// The impulse input's total count, as last saved.
    pub async fn impulses(&mut self) -> Result<Option<u64>, StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.fetch_item(buffer, &KEY_IMPULSES).await?)
    }

    pub async fn set_impulses(&mut self, total: u64) -> Result<(), StoreError> {
        let (mut map, buffer) = self.settings();
        Ok(map.store_item(buffer, &KEY_IMPULSES, &total).await?)
    }
}
