//! The meter's wall clock: unix time from SNTP, carried forward on the monotonic clock between
//! syncs. Until the first sync it has no time, and nothing may be signed.

/// How long a sync is trusted before the meter asks again: the chip's RTC drifts by tens of
/// ppm, under a second a day, so an hourly sync keeps the readings' timestamps within ms.
pub const RESYNC_EVERY_MS: u64 = 3_600_000;
/// After a failed sync, when to try again.
pub const RETRY_AFTER_MS: u64 = 10_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock {
    /// Unix milliseconds at monotonic 0, once synced.
    offset_ms: Option<u64>,
    next_sync_ms: u64,
}

impl WallClock {
    /// A reply's unix seconds, received at monotonic `now_ms`.
    pub fn synced(&mut self, unix_secs: u64, now_ms: u64) {
        self.offset_ms = Some((unix_secs * 1000).saturating_sub(now_ms));
        self.next_sync_ms = now_ms + RESYNC_EVERY_MS;
    }

    /// A sync failed (no answer, or a refused one) at monotonic `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.next_sync_ms = now_ms + RETRY_AFTER_MS;
    }

    /// Unix seconds now, or `None` before the first sync.
    pub fn unix_secs(&self, now_ms: u64) -> Option<u32> {
        let unix_ms = self.offset_ms?.checked_add(now_ms)?;
        u32::try_from(unix_ms / 1000).ok()
    }

    pub fn sync_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_sync_ms
    }

    /// Milliseconds until the next sync is due.
    pub fn until_sync_ms(&self, now_ms: u64) -> u64 {
        self.next_sync_ms.saturating_sub(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_time_before_the_first_sync() {
        let clock = WallClock::default();
        assert_eq!(clock.unix_secs(5_000), None);
        assert!(clock.sync_due(0));
    }

    #[test]
    fn time_runs_on_the_monotonic_clock_after_a_sync() {
        let mut clock = WallClock::default();
        clock.synced(1_796_342_400, 7_250);
        assert_eq!(clock.unix_secs(7_250), Some(1_796_342_400));
        assert_eq!(clock.unix_secs(7_250 + 299_999), Some(1_796_342_400 + 299));
        assert!(!clock.sync_due(7_250 + RESYNC_EVERY_MS - 1));
        assert!(clock.sync_due(7_250 + RESYNC_EVERY_MS));
        assert_eq!(clock.until_sync_ms(7_250), RESYNC_EVERY_MS);
    }

    #[test]
    fn a_failed_sync_keeps_the_time_and_retries_sooner() {
        let mut clock = WallClock::default();
        clock.failed(1_000);
        assert_eq!(clock.unix_secs(2_000), None);
        assert!(!clock.sync_due(1_000 + RETRY_AFTER_MS - 1));
        assert!(clock.sync_due(1_000 + RETRY_AFTER_MS));
        clock.synced(1_796_342_400, 20_000);
        clock.failed(RESYNC_EVERY_MS + 20_000);
        assert_eq!(clock.unix_secs(RESYNC_EVERY_MS + 20_000), Some(1_796_342_400 + 3_600));
    }

    #[test]
    fn a_resync_moves_the_clock_to_the_servers_time() {
        let mut clock = WallClock::default();
        clock.synced(1_796_342_400, 0);
        clock.synced(1_796_346_001, 3_600_000);
        assert_eq!(clock.unix_secs(3_600_000), Some(1_796_346_001));
    }
}
