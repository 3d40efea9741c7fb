//! Reading counters that a power cut can skip but never reuse. Counters are reserved ahead in
//! blocks: before the first counter of a block is handed out, the end of the block is stored in
//! flash, so every counter ever handed out is below the stored value; a boot starts from it.

use embedded_storage_async::nor_flash::MultiwriteNorFlash;

use crate::store::{Storage, StoreError};

/// Counters reserved by one flash write: a power cut skips at most this many less one. At one
/// reading per 5 minutes, a block lasts 5 hours 20 minutes.
pub const BLOCK: u32 = 64;
/// A meter's first reading (docs/reading-format.md: a replaced meter starts again from 1).
pub const FIRST: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterError {
    /// The reservation could not be stored, so no counter was handed out.
    Store(StoreError),
    /// Every u32 counter is used: the meter needs a new key (`household_set_meter`).
    Exhausted,
}

impl From<StoreError> for CounterError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

#[derive(Debug)]
pub struct Counter {
    next: u32,
    /// Counters below this one are covered by the reservation in flash.
    reserved_until: u32,
}

impl Counter {
    /// Resumes after a boot: the first counter handed out is the stored reservation's end.
    pub async fn resume<F: MultiwriteNorFlash>(
        storage: &mut Storage<F>,
    ) -> Result<Self, CounterError> {
        let next = storage.counter_reserved().await?.unwrap_or(FIRST);
        Ok(Self { next, reserved_until: next })
    }

    /// The next counter, reserving a new block in flash first when the current one is spent.
    pub async fn take<F: MultiwriteNorFlash>(
        &mut self,
        storage: &mut Storage<F>,
    ) -> Result<u32, CounterError> {
        if self.next == u32::MAX {
            return Err(CounterError::Exhausted);
        }
        if self.next == self.reserved_until {
            let until = self.next.saturating_add(BLOCK);
            storage.set_counter_reserved(until).await?;
            self.reserved_until = until;
        }
        let counter = self.next;
        self.next += 1;
        Ok(counter)
    }
}
