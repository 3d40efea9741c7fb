//! Signed readings waiting to be delivered, in a `sequential-storage` queue in flash. They are
//! pushed in counter order, so they drain in counter order; one leaves only when the uplink has
//! the broker's acknowledgement of it. A power cut while one is pushed may lose that one (it was
//! never reported as stored); a power cut while one is acknowledged may keep it, to be sent
//! again and refused by the oracle as already seen (`ReadingReplayed`), never lost.
//!
//! When the backlog is full a new reading is refused and not signed at all: readings are
//! cumulative, so the next one that fits carries the energy of those skipped.

use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use sequential_storage::{
    cache::Cache,
    queue::{QueueConfig, QueueStorage},
};

use crate::{
    signer::SignedReading,
    store::{NoCache, Storage, StoreError},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BacklogError {
    Store(StoreError),
    /// The backlog is full: nothing may be added until readings are acknowledged.
    Full,
    /// The acknowledgement is not for the oldest reading, the only one that may leave.
    NotOldest {
        oldest: Option<u32>,
        acknowledged: u32,
    },
    /// An entry of the wrong size: never written by this firmware.
    BadEntry,
}

impl From<StoreError> for BacklogError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => Self::Full,
            other => Self::Store(other),
        }
    }
}

impl<E: embedded_storage_async::nor_flash::NorFlashError> From<sequential_storage::Error<E>>
    for BacklogError
{
    fn from(error: sequential_storage::Error<E>) -> Self {
        StoreError::from(error).into()
    }
}

impl<F: MultiwriteNorFlash> Storage<F> {
    fn backlog(&mut self) -> (QueueStorage<&mut F, NoCache<()>>, &mut [u8]) {
        let config = QueueConfig::new(self.layout.backlog.clone());
        let queue = QueueStorage::new(&mut self.flash, config, Cache::new_uncached());
        (queue, &mut self.buffer)
    }

    /// Stores a signed reading at the end of the backlog.
    pub async fn push_reading(&mut self, reading: &SignedReading) -> Result<(), BacklogError> {
        let (mut queue, _) = self.backlog();
        Ok(queue.push(&reading.to_bytes(), false).await?)
    }

    /// The oldest reading not yet acknowledged: the next to send.
    pub async fn oldest_reading(&mut self) -> Result<Option<SignedReading>, BacklogError> {
        let (mut queue, buffer) = self.backlog();
        match queue.peek(buffer).await? {
            Some(bytes) => SignedReading::from_bytes(bytes).map(Some).ok_or(BacklogError::BadEntry),
            None => Ok(None),
        }
    }

    /// The reading `index` places after the oldest (0 is the oldest): the uplink sends a
    /// window of the oldest readings before the first is acknowledged.
    pub async fn nth_reading(
        &mut self,
        index: usize,
    ) -> Result<Option<SignedReading>, BacklogError> {
        let (mut queue, buffer) = self.backlog();
        let mut entries = queue.iter().await?;
        for _ in 0..index {
            if entries.next(buffer).await?.is_none() {
                return Ok(None);
            }
        }
        match entries.next(buffer).await? {
            Some(entry) => {
                SignedReading::from_bytes(&entry).map(Some).ok_or(BacklogError::BadEntry)
            }
            None => Ok(None),
        }
    }

    /// Removes the oldest reading once its delivery with `counter` is acknowledged.
    pub async fn acknowledge(&mut self, counter: u32) -> Result<(), BacklogError> {
        let (mut queue, buffer) = self.backlog();
        let mut entries = queue.iter().await?;
        let oldest = match entries.next(buffer).await? {
            Some(entry) => {
                let reading = SignedReading::from_bytes(&entry).ok_or(BacklogError::BadEntry)?;
                if reading.counter() == counter {
                    entry.pop().await?;
                    return Ok(());
                }
                Some(reading.counter())
            }
            None => None,
        };
        Err(BacklogError::NotOldest { oldest, acknowledged: counter })
    }

    /// The counters waiting, oldest first, into `out`; returns how many were written (the
    /// backlog may hold more than `out` has room for).
    pub async fn waiting_counters(&mut self, out: &mut [u32]) -> Result<usize, BacklogError> {
        let (mut queue, buffer) = self.backlog();
        let mut entries = queue.iter().await?;
        let mut n = 0;
        while n < out.len() {
            let Some(entry) = entries.next(buffer).await? else { break };
            out[n] = SignedReading::from_bytes(&entry).ok_or(BacklogError::BadEntry)?.counter();
            n += 1;
        }
        Ok(n)
    }
}
