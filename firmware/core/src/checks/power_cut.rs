//! Power cut at every flash write and erase of a meter's life: boots, key made on first boot,
//! counters taken, impulse totals saved, readings pushed to the backlog and acknowledged. After
//! each cut the meter boots again from what the flash holds, and then: the key is the one it
//! stored, no counter is handed out twice, every reading the backlog accepted and that was not
//! acknowledged is still there, nothing acknowledged came back, and the backlog is in counter
//! order.

use core::fmt::Write as _;

use embassy_futures::block_on;
use nishati_reading::Reading;

use crate::{
    backlog::BacklogError,
    counter::Counter,
    signer::SignedReading,
    sim_flash::SimFlash,
    store::{Layout, Storage, StoreError, SECTOR},
};

/// A small partition, so the scenario fills and recycles every sector of both parts: two
/// settings sectors, three backlog sectors (108 readings).
const SMALL: Layout = Layout { settings: 0..2 * SECTOR, backlog: 2 * SECTOR..5 * SECTOR };
const READINGS: u32 = 240;
const MARKET: [u8; 32] = [1; 32];
/// Counters the scenario can reach: its readings and the blocks skipped at its few boots.
const COUNTERS: usize = 4096;

/// A set of counters below `COUNTERS`.
struct Counters([u64; COUNTERS / 64]);

impl Default for Counters {
    fn default() -> Self {
        Self([0; COUNTERS / 64])
    }
}

impl Counters {
    /// Adds `c`; false if it was there.
    fn insert(&mut self, c: u32) -> bool {
        let c = c as usize;
        assert!(c < COUNTERS, "counter {c} beyond the scenario's");
        let had = self.contains(&(c as u32));
        self.0[c / 64] |= 1 << (c % 64);
        !had
    }

    fn contains(&self, c: &u32) -> bool {
        let c = *c as usize;
        c < COUNTERS && self.0[c / 64] & (1 << (c % 64)) != 0
    }
}

/// Readings in the order they wait, as the backlog keeps them.
struct Waiting {
    items: [u32; 256],
    len: usize,
}

impl Default for Waiting {
    fn default() -> Self {
        Self { items: [0; 256], len: 0 }
    }
}

impl Waiting {
    fn as_slice(&self) -> &[u32] {
        &self.items[..self.len]
    }

    fn set(&mut self, found: &[u32]) {
        self.items[..found.len()].copy_from_slice(found);
        self.len = found.len();
    }

    fn push(&mut self, c: u32) {
        self.items[self.len] = c;
        self.len += 1;
    }

    fn remove_first(&mut self) -> u32 {
        let first = self.items[0];
        self.items.copy_within(1..self.len, 0);
        self.len -= 1;
        first
    }
}

/// What the meter has been told so far, across boots.
#[derive(Default)]
struct Witness {
    seed: Option<[u8; 32]>,
    seed_maybe: Option<[u8; 32]>,
    issued: Counters,
    last_issued: Option<u32>,
    /// Pushed (the backlog said so) and not yet acknowledged (ditto).
    waiting: Waiting,
    acknowledged: Counters,
    /// Being acknowledged when the power went: it may have left or not.
    acknowledging: Option<u32>,
    impulses: u64,
    /// Readings made, cut or not: the scenario's progress.
    made: u32,
}

/// Stands in for a signature: the backlog only stores and orders bytes.
fn reading(counter: u32) -> SignedReading {
    let reading = Reading {
        counter,
        timestamp: counter,
        exported_wh: 10 * u64::from(counter),
        imported_wh: 0,
    };
    SignedReading { message: reading.encode(&MARKET), signature: [counter as u8; 64] }
}

/// Checks a failure is the power cut (a flash error of kind `Other`).
fn cut(error: impl core::fmt::Debug) {
    let mut text = Text::default();
    let _ = write!(text, "{error:?}");
    let text = core::str::from_utf8(&text.bytes[..text.len]).unwrap_or("");
    assert!(text.contains("Other"), "a failure that is not the power cut: {text}");
}

/// The start of a text written with `write!`, without a heap.
struct Text {
    bytes: [u8; 256],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Self { bytes: [0; 256], len: 0 }
    }
}

impl core::fmt::Write for Text {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let n = text.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&text.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Boots, checks what survived, then lives on until the scenario ends or the power goes.
/// Returns `Err` at the cut.
async fn live(storage: &mut Storage<SimFlash<&mut [u8]>>, w: &mut Witness) -> Result<(), ()> {
    // Key: made once, the same ever after.
    let stored = storage.seed().await.map_err(cut)?;
    match (w.seed, stored) {
        (Some(seed), got) => assert_eq!(got, Some(seed), "the key changed"),
        (None, Some(got)) => {
            assert_eq!(Some(got), w.seed_maybe, "a key nobody stored");
            w.seed = Some(got);
        }
        (None, None) => {
            let seed = [0x5A; 32];
            w.seed_maybe = Some(seed);
            storage.set_seed(&seed).await.map_err(cut)?;
            w.seed = Some(seed);
        }
    }
    // Impulses: never below the last total saved.
    let impulses = storage.impulses().await.map_err(cut)?.unwrap_or(0);
    assert!(impulses >= w.impulses, "impulse total went back: {impulses} < {}", w.impulses);
    w.impulses = impulses;
    // Backlog: what was accepted is there, in order; nothing acknowledged returns.
    let mut found = [0u32; 256];
    let n = storage.waiting_counters(&mut found).await.map_err(cut)?;
    let found = &found[..n];
    assert!(found.windows(2).all(|p| p[0] < p[1]), "backlog out of order: {found:?}");
    for c in w.waiting.as_slice() {
        let may_have_left = w.acknowledging == Some(*c);
        assert!(found.contains(c) || may_have_left, "reading {c} lost: {found:?}");
    }
    if let Some(c) = w.acknowledging.take() {
        if !found.contains(&c) {
            w.acknowledged.insert(c);
        }
    }
    for c in found {
        assert!(w.issued.contains(c), "reading {c} never made");
        assert!(!w.acknowledged.contains(c), "acknowledged reading {c} came back");
    }
    w.waiting.set(found);

    let mut counter = Counter::resume(storage).await.map_err(cut)?;
    while w.made < READINGS {
        let c = counter.take(storage).await.map_err(cut)?;
        assert!(w.issued.insert(c), "counter {c} handed out twice");
        assert!(w.last_issued < Some(c), "counter {c} below one handed out before");
        w.last_issued = Some(c);
        w.made += 1;
        // The impulse total is saved before its reading is signed.
        storage.set_impulses(w.impulses + 3).await.map_err(cut)?;
        w.impulses += 3;
        match storage.push_reading(&reading(c)).await {
            Ok(()) => w.waiting.push(c),
            Err(BacklogError::Full) => {}
            Err(e) => {
                cut(e);
                return Err(());
            }
        }
        // The uplink delivers two of every three readings.
        if !w.made.is_multiple_of(3) {
            if let Some(oldest) = storage.oldest_reading().await.map_err(cut)? {
                assert_eq!(Some(&oldest.counter()), w.waiting.as_slice().first(), "not the oldest");
                w.acknowledging = Some(oldest.counter());
                storage.acknowledge(oldest.counter()).await.map_err(cut)?;
                w.acknowledging = None;
                w.acknowledged.insert(w.waiting.remove_first());
            }
        }
    }
    Ok(())
}

/// Lives the whole scenario with the power cut at operation `at`, then again from each boot
/// until it ends; returns whether the cut happened at all (false: `at` is past the last write).
fn life_with_cut_at(at: usize) -> bool {
    let mut w = Witness::default();
    let mut bytes = [0u8; 5 * SECTOR as usize];
    let mut flash = SimFlash::erased(&mut bytes[..]).cut_power_after(at);
    let mut was_cut = false;
    loop {
        let mut storage = Storage::new(flash, SMALL).unwrap();
        let result = block_on(live(&mut storage, &mut w));
        flash = storage.into_flash();
        match result {
            Ok(()) => break,
            Err(()) => {
                assert!(flash.is_off());
                was_cut = true;
                flash = SimFlash::from_bytes(flash.into_bytes());
            }
        }
    }
    // The last boot drains what is left, in counter order.
    let flash = SimFlash::from_bytes(flash.into_bytes());
    let mut storage = Storage::new(flash, SMALL).unwrap();
    block_on(async {
        let mut expected = w.waiting.as_slice().iter().copied();
        while let Some(oldest) = storage.oldest_reading().await.unwrap() {
            assert_eq!(Some(oldest.counter()), expected.next());
            assert_eq!(oldest, reading(oldest.counter()));
            storage.acknowledge(oldest.counter()).await.unwrap();
        }
        assert_eq!(expected.next(), None);
    });
    was_cut
}

pub fn a_power_cut_at_every_write_loses_nothing_and_reuses_nothing() {
    // Uncut, the scenario recycles the sectors of both parts of the partition.
    let mut bytes = [0u8; 5 * SECTOR as usize];
    let mut storage = Storage::new(SimFlash::erased(&mut bytes[..]), SMALL).unwrap();
    block_on(live(&mut storage, &mut Witness::default())).unwrap();
    let erases = storage.into_flash().erases();
    assert!(erases >= 5, "only {erases} sectors erased");
    let mut at = 0;
    while life_with_cut_at(at) {
        at += 1;
    }
    // The scenario makes thousands of writes; a small count means it did not run.
    assert!(at > 1000, "only {at} writes");
}

pub fn a_full_backlog_refuses_and_an_acknowledgement_makes_room() {
    let mut bytes = [0u8; 5 * SECTOR as usize];
    block_on(async {
        let mut storage = Storage::new(SimFlash::erased(&mut bytes[..]), SMALL).unwrap();
        let mut c = 1;
        while storage.push_reading(&reading(c)).await.is_ok() {
            c += 1;
        }
        assert_eq!(storage.push_reading(&reading(c)).await, Err(BacklogError::Full));
        assert_eq!(
            storage.acknowledge(2).await,
            Err(BacklogError::NotOldest { oldest: Some(1), acknowledged: 2 })
        );
        // Freeing a whole sector makes room again.
        for k in 1..=36 {
            storage.acknowledge(k).await.unwrap();
        }
        storage.push_reading(&reading(c)).await.unwrap();
    });
}

pub fn the_device_backlog_holds_seven_days() {
    let mut bytes = [0u8; Layout::DEVICE.end() as usize];
    block_on(async {
        let flash = SimFlash::erased(&mut bytes[..]);
        let mut storage = Storage::new(flash, Layout::DEVICE).unwrap();
        let week = 7 * 24 * 12;
        for c in 1..=week {
            storage.push_reading(&reading(c)).await.unwrap();
        }
        let mut first = [0u32; 3];
        assert_eq!(storage.waiting_counters(&mut first).await, Ok(3));
        assert_eq!(first, [1, 2, 3]);
    });
}

pub fn a_layout_that_overlaps_is_refused() {
    let layout = Layout { settings: 0..2 * SECTOR, backlog: SECTOR..4 * SECTOR };
    let mut bytes = [0u8; 5 * SECTOR as usize];
    let flash = SimFlash::erased(&mut bytes[..]);
    assert!(matches!(Storage::new(flash, layout), Err(StoreError::BadLayout)));
}
