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
    queue::QueueConfig,
};

use crate::signer::SEED_LEN;

/// Flash sector size of the ESP32 family, the unit the layout is counted in.
pub const SECTOR: u32 = 4096;

/// Where the settings map and the backlog queue lie, as offsets in the flash given to `Storage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub settings: Range<u32>,
    pub backlog: Range<u32>,
}

impl Layout {
    /// The device's partition. Settings: 4 sectors for a few small values, rewritten once per
    /// reading (the impulse total) and once per `counter::BLOCK` readings. Backlog: 64 sectors
    /// (256 KiB); 36 readings fit a sector, and one sector is always kept free to erase into,
    /// so 63 hold 2,268 readings: over 7 days at one per 5 minutes (2,016).
    pub const DEVICE: Layout = Layout { settings: 0..4 * SECTOR, backlog: 4 * SECTOR..68 * SECTOR };

    /// Bytes of flash the layout needs.
    pub const fn end(&self) -> u32 {
        if self.settings.end > self.backlog.end {
            self.settings.end
        } else {
            self.backlog.end
        }
    }
}

const KEY_SEED: u8 = 1;
const KEY_COUNTER_RESERVED: u8 = 2;
const KEY_IMPULSES: u8 = 3;
/// The installer's settings (`crate::settings`), one value so they change all at once.
pub(crate) const KEY_SETTINGS: u8 = 4;
/// Room for the largest item, rounded up to flash words: the installer's settings with their
/// key (a backlog entry, 101 bytes, is the next largest). Every read of the settings map passes
/// over all its items, so one buffer must hold any of them.
pub(crate) const BUFFER_LEN: usize = (1 + crate::settings::ENCODED_MAX_LEN).next_multiple_of(4);

/// A flash operation that failed, without the flash driver's own type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The flash driver failed (on a device: a power cut or a hardware fault).
    Flash(NorFlashErrorKind),
    /// No room left; for the backlog, wait for acknowledgements.
    Full,
    /// What the flash holds cannot be read back even after the storage's own repair.
    Corrupted,
    /// The layout's ranges are not whole sectors (at least two each) that do not overlap.
    BadLayout,
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
    pub(crate) layout: Layout,
    pub(crate) buffer: [u8; BUFFER_LEN],
}

impl<F: MultiwriteNorFlash> Storage<F> {
    pub fn new(flash: F, layout: Layout) -> Result<Self, StoreError> {
        let apart = layout.settings.end <= layout.backlog.start
            || layout.backlog.end <= layout.settings.start;
        let valid = apart
            && MapConfig::<F>::try_new(layout.settings.clone()).is_ok()
            && QueueConfig::<F>::try_new(layout.backlog.clone()).is_ok()
            && layout.end() as usize <= flash.capacity();
        if !valid {
            return Err(StoreError::BadLayout);
        }
        Ok(Self { flash, layout, buffer: [0; BUFFER_LEN] })
    }

    /// Gives the flash back (the host tests boot again from its contents).
    pub fn into_flash(self) -> F {
        self.flash
    }

    pub(crate) fn settings(
        &mut self,
    ) -> (MapStorage<u8, &mut F, NoCache<u8>>, &mut [u8; BUFFER_LEN]) {
        let config = MapConfig::new(self.layout.settings.clone());
        let map = MapStorage::new(&mut self.flash, config, Cache::new_uncached());
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
