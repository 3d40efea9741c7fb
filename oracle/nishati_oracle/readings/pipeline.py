"""From a submitted reading to a durably stored one: every check the chain makes, plus the
ones only the oracle can make (a known meter, plausible power, duplicates)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from solders.pubkey import Pubkey

from nishati_client.chain import AccountReader, cluster_time
from nishati_client.errors import NishatiClientError
from nishati_client.program import NishatiClient
from nishati_client.readings import (
    LastReading,
    Reading,
    ReadingError,
    SignedReading,
    check_progress,
    verify_signature,
)
from nishati_oracle.core.group_commit import GroupCommit
from nishati_oracle.core.metrics import INGEST_STEPS, Metrics, observe_steps
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.ingest import Outcome, Reason, Status, Submission
from nishati_oracle.readings.store import MeterState, Store, StoredReading

log = logging.getLogger(__name__)

# The store keeps counters and Wh in signed 64-bit columns; no real meter comes near this.
MAX_STORED_VALUE = 2**63 - 1
# How soon a failed read of the cluster's clock is tried again.
RETRY_CLOCK_SECS = 1.0
# How long the registry lets stale meters gather before reading their records again.
GATHER_RECHECKS_SECS = 1.0


@dataclass(frozen=True)
class MeterInfo:
    """What the chain says of a meter: its household and that meter's last accepted reading."""

    household: Pubkey
    last: LastReading | None
    last_timestamp: int


class MeterRegistry:
    """Meter key → household, from the chain's MeterRecord and Household accounts, cached.

    A meter the oracle already keeps state for is not looked up again before its readings
    are checked: :meth:`registered` answers from memory at once, and a meter not confirmed
    within ``ttl_secs`` is queued to be read again in the background, up to a hundred
    MeterRecords a request. A meter its household replaced (its record retired) is refused
    from then on."""

    def __init__(
        self,
        client: NishatiClient,
        market: Pubkey,
        ttl_secs: float,
        gather_secs: float = GATHER_RECHECKS_SECS,
    ) -> None:
        self.client = client
        self.market = market
        self.ttl_secs = ttl_secs
        self.gather_secs = gather_secs
        self._cache: dict[Pubkey, tuple[float, MeterInfo | None]] = {}
        self._confirmed: dict[Pubkey, float] = {}
        self._retired: set[Pubkey] = set()
        # Meters to read again, in the order they were found stale (a dict: an ordered set).
        self._stale: dict[Pubkey, None] = {}
        self._rechecking: asyncio.Task[None] | None = None

    async def lookup(self, meter: Pubkey) -> MeterInfo | None:
        return (await self.lookup_many([meter]))[meter]

    async def lookup_many(self, meters: Iterable[Pubkey]) -> dict[Pubkey, MeterInfo | None]:
        """Each meter's household and last reading (``None`` for a meter not registered here);
        the ones not cached are read together: their records, then their households."""
        now = time.monotonic()
        found: dict[Pubkey, MeterInfo | None] = {}
        unread: list[Pubkey] = []
        for meter in dict.fromkeys(meters):
            cached = self._cache.get(meter)
            if cached is not None and now - cached[0] < self.ttl_secs:
                found[meter] = cached[1]
            else:
                unread.append(meter)
        if not unread:
            return found
        live = await self._live_records(unread)
        households = dict(
            zip(live, await self.client.households_at(list(live.values())), strict=True)
        )
        for meter in unread:
            household = households.get(meter)
            info = None
            if household is not None and household.meter == meter:
                info = MeterInfo(
                    household.address, household.last_reading, household.last_timestamp
                )
                self._confirmed[meter] = now
            found[meter] = info
            self._cache[meter] = (now, info)
        return found

    def registered(self, meter: Pubkey) -> bool:
        """Whether a meter the oracle keeps state for is still registered, as far as it knows:
        its state says it was, until the chain says its record is retired or gone."""
        if meter in self._retired:
            return False
        confirmed = self._confirmed.get(meter)
        if confirmed is None or time.monotonic() - confirmed >= self.ttl_secs:
            self._stale[meter] = None
            if self._rechecking is None:
                self._rechecking = asyncio.create_task(self._recheck())
        return True

    async def close(self) -> None:
        """Stops reading stale meters again."""
        if self._rechecking is not None:
            self._rechecking.cancel()
            await asyncio.gather(self._rechecking, return_exceptions=True)

    async def _recheck(self) -> None:
        """Reads the stale meters' records, a request per hundred, until none is left; waits
        ``gather_secs`` first, so the meters going stale meanwhile share the requests."""
        try:
            while self._stale:
                await asyncio.sleep(self.gather_secs)
                meters = list(self._stale)
                try:
                    live = await self._live_records(meters)
                except NishatiClientError as e:
                    log.warning("could not read %d meter records again: %s", len(meters), e)
                    continue
                now = time.monotonic()
                for meter in meters:
                    self._stale.pop(meter, None)
                    if meter not in live:
                        self._retired.add(meter)
                        log.info(
                            "meter %s is no longer registered; its readings are refused", meter
                        )
                    else:
                        self._confirmed[meter] = now
        finally:
            self._rechecking = None

    async def _live_records(self, meters: Sequence[Pubkey]) -> dict[Pubkey, Pubkey]:
        """The household of each meter whose MeterRecord exists and is not retired."""
        program = self.client.program
        addresses = [program.meter_record_address(self.market, meter) for meter in meters]
        records = await self.client.meter_records(addresses)
        return {
            meter: record.household
            for meter, record in zip(meters, records, strict=True)
            if record is not None and not record.retired
        }


class ChainClock:
    """The cluster's clock, as the program sees it: read from the Clock sysvar now and then
    and carried forward on the local monotonic clock in between. Checking skew against it
    (not the oracle's wall clock) accepts exactly the readings the chain will accept.

    Only the first reading waits for the chain. Later reads run in the background, one at a
    time: on a busy validator one takes a hundred milliseconds or more, and every reading
    submitted meanwhile would wait for it (and send its own)."""

    def __init__(
        self, chain: AccountReader, refresh_secs: float = 30, retry_secs: float = RETRY_CLOCK_SECS
    ) -> None:
        self.chain = chain
        self.refresh_secs = refresh_secs
        self.retry_secs = retry_secs
        self._read_at: float | None = None
        self._cluster_time = 0
        self._next_read = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def now(self) -> int:
        """The cluster's time; while the chain is unreachable, the last reading carried on."""
        if self._read_at is None:
            # Nothing to carry forward yet: wait for the chain, and fail with it. Shielded, so
            # one caller giving up does not cancel the read the others wait for.
            await asyncio.shield(self._read())
        elif time.monotonic() >= self._next_read:
            self._read()
        assert self._read_at is not None
        return self._cluster_time + int(time.monotonic() - self._read_at)

    async def close(self) -> None:
        """Cancels a read still in flight."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    def _read(self) -> asyncio.Task[None]:
        """The read in flight, or a new one."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_clock())
            self._reading.add_done_callback(self._done)
        return self._reading

    async def _read_clock(self) -> None:
        self._next_read = time.monotonic() + self.retry_secs
        self._cluster_time = await cluster_time(self.chain)
        self._read_at = time.monotonic()
        self._next_read = self._read_at + self.refresh_secs

    def _done(self, task: asyncio.Task[None]) -> None:
        self._reading = None
        if task.cancelled():
            return
        error = task.exception()  # retrieved here; a first read's callers raise it themselves
        if error is None or self._read_at is None:
            return
        if isinstance(error, NishatiClientError):
            log.warning("cluster clock unreachable; carrying the last reading forward: %s", error)
        else:
            log.error("reading the cluster clock failed", exc_info=error)


def _state_from_chain(meter: Pubkey, info: MeterInfo) -> MeterState:
    last = info.last
    return MeterState(
        meter=str(meter),
        household=str(info.household),
        has_last=last is not None,
        last_counter=last.counter if last else 0,
        last_timestamp=last.timestamp if last else info.last_timestamp,
        last_exported_wh=last.exported_wh if last else 0,
        last_imported_wh=last.imported_wh if last else 0,
        attested_counter=last.counter if last else None,
        attested_exported_wh=last.exported_wh if last else None,
    )


def _last(state: MeterState) -> LastReading | None:
    if not state.has_last:
        return None
    return LastReading(
        state.last_counter, state.last_timestamp, state.last_exported_wh, state.last_imported_wh
    )


@dataclass
class _Checked:
    """A submission past the checks that need no meter state: its decoded reading."""

    submission: Submission
    key: str
    reading: Reading


@dataclass
class _Job:
    """One :meth:`ReadingPipeline.submit` waiting for the commit of the group it joined."""

    items: list[_Checked | Outcome]
    # Chain lookups made before queueing, for meters not yet stored; an error is the chain's.
    found: dict[str, MeterInfo | None | NishatiClientError]
    now: int
    queued_at: float
    # Set by the writer: when its group's checks started and ended, when its transaction
    # committed, and how many submits the group took.
    started_at: float = 0.0
    checked_at: float = 0.0
    stored_at: float = 0.0
    group_size: int = 0

    @property
    def size(self) -> int:
        return len(self.items)


class ReadingPipeline:
    """Verifies batches of readings and stores the accepted ones before answering.

    Each :meth:`submit` first makes the checks that need no meter state (format, market,
    signature) and the lookups that may wait (a meter's stored row, a new meter's chain
    account), then joins a queue. One writer task takes everything queued
    (:class:`~nishati_oracle.core.group_commit.GroupCommit`): checks each reading in queue order
    against its meter's last accepted one (which a reading before it in the group may just
    have moved), stores the group's accepted readings in one transaction, and only then
    answers every submit of the group. A failed transaction fails
    every submit of its group, and nothing of it is remembered as accepted.

    The last accepted reading of each meter is kept in memory as last committed: only this
    pipeline moves it, and only after its transaction committed.
    """

    def __init__(
        self,
        settings: OracleSettings,
        market: Pubkey,
        store: Store,
        registry: MeterRegistry,
        metrics: Metrics,
        chain_clock: ChainClock,
        max_group_readings: int | None = None,
    ) -> None:
        self.settings = settings
        self.market = market
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.chain_clock = chain_clock
        self._states: dict[str, MeterState] = {}
        # A group takes whole submits up to this many readings (always at least one submit).
        self._groups = GroupCommit(
            self._commit,
            max_group_readings or settings.readings.max_batch_readings,
            "reading-writer",
            size=lambda job: job.size,
        )
        self.groups = 0
        self._steps = [metrics.ingest_steps.labels(step) for step in INGEST_STEPS]

    async def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        started = time.perf_counter()
        now = await self.chain_clock.now()
        items = [self._stateless(submission) for submission in batch]
        found = await self._prepare(items)
        job = _Job(items, found, now, time.perf_counter())
        outcomes = await self._groups.submit(job)
        self._observe(job, started)
        for outcome in outcomes:
            if outcome.status is Status.accepted:
                self.metrics.accepted.inc()
            elif outcome.status is Status.duplicate:
                self.metrics.duplicates.inc()
            else:
                self.metrics.rejected.labels(str(outcome.reason)).inc()
        return outcomes

    def _observe(self, job: _Job, started: float) -> None:
        """The submit's time, by step; logged when it was slow."""
        answered = time.perf_counter()
        took = answered - started
        self.metrics.ingest_seconds.observe(took)
        times = (started, job.queued_at, job.started_at, job.checked_at, job.stored_at, answered)
        steps = observe_steps(self._steps, INGEST_STEPS, times)
        if took >= self.settings.storage.slow_log_secs:
            log.warning(
                "slow submit: %.1f ms (%s), %d readings, its group %d submits",
                took * 1e3,
                steps,
                len(job.items),
                job.group_size,
            )

    def _stateless(self, submission: Submission) -> _Checked | Outcome:
        """The checks that need no meter state, in the order the chain makes them."""
        try:
            signed = SignedReading(submission.message, submission.signature, submission.meter)
            reading = Reading.decode(submission.message)
            if not reading.is_for(self.market):
                return _rejected(
                    Reason.ReadingForAnotherMarket, f"market tag {reading.market_tag.hex()}"
                )
            verify_signature(signed)
        except ReadingError as e:
            return _rejected(Reason(e.name), str(e))
        except ValueError as e:
            return _rejected(Reason.MalformedSubmission, str(e))
        return _Checked(submission, str(submission.meter), reading)

    async def _prepare(
        self, items: Sequence[_Checked | Outcome]
    ) -> dict[str, MeterInfo | None | NishatiClientError]:
        """Loads the stored rows of meters not in memory yet, and looks up on chain the meters
        with none, outside the writer: the others never wait for the chain."""
        missing = {i.key for i in items if isinstance(i, _Checked) and i.key not in self._states}
        if not missing:
            return {}
        for key, state in (await self.store.meter_states(missing)).items():
            # A commit since the query may have moved it further: the newer stays.
            self._states.setdefault(key, state)
        unknown = [
            i.submission.meter
            for i in items
            if isinstance(i, _Checked) and i.key not in self._states
        ]
        if not unknown:
            return {}
        try:
            looked_up = await self.registry.lookup_many(unknown)
        except NishatiClientError as e:
            return {str(meter): e for meter in unknown}
        return {str(meter): info for meter, info in looked_up.items()}

    async def _commit(self, group: Sequence[_Job]) -> list[list[Outcome]]:
        """Every reading of the group against its meter's state, then one transaction."""
        started = time.perf_counter()
        keys = {i.key for job in group for i in job.items if isinstance(i, _Checked)}
        unloaded = [
            k for k in keys if k not in self._states and not any(k in j.found for j in group)
        ]
        if unloaded:  # a meter no submit looked up (e.g. after a failed group): read it now
            for key, row in (await self.store.meter_states(unloaded)).items():
                self._states.setdefault(key, row)
        working: dict[str, MeterState] = {}
        new_states: dict[str, MeterState] = {}
        changed: set[str] = set()
        accepted: list[StoredReading] = []
        stored_now: dict[tuple[str, int], bytes] = {}
        answers: list[list[Outcome]] = []
        for job in group:
            outcomes: list[Outcome] = []
            for item in job.items:
                if isinstance(item, Outcome):
                    outcomes.append(item)
                    continue
                key = item.key
                state = await self._state(item, job, working, new_states)
                if isinstance(state, NishatiClientError):
                    # A meter never seen before needs the chain; send it again later.
                    outcomes.append(
                        Outcome(Status.rejected, Reason.ChainUnavailable, None, str(state))
                    )
                    continue
                outcome = await self._check(item, state, job.now, stored_now)
                outcomes.append(outcome)
                if outcome.status is not Status.accepted or state is None:
                    continue
                reading, submission = item.reading, item.submission
                accepted.append(
                    StoredReading(
                        key,
                        reading.counter,
                        reading.timestamp,
                        reading.exported_wh,
                        reading.imported_wh,
                        submission.message,
                        submission.signature,
                        time.time(),
                    )
                )
                stored_now[(key, reading.counter)] = submission.message
                state.has_last = True
                state.last_counter = reading.counter
                state.last_timestamp = reading.timestamp
                state.last_exported_wh = reading.exported_wh
                state.last_imported_wh = reading.imported_wh
                if key not in new_states:
                    changed.add(key)
            answers.append(outcomes)
        checked = time.perf_counter()
        if accepted or new_states:
            moved = [working[key] for key in changed]
            try:
                await self.store.accept(list(new_states.values()), accepted, moved)
            except BaseException:
                # The transaction may have committed before failing (a lost answer): these
                # meters are read again from the database when next seen, never assumed.
                for key in working:
                    self._states.pop(key, None)
                raise
            self._states.update(working)
        stored = time.perf_counter()
        for job in group:
            job.started_at, job.checked_at, job.stored_at = started, checked, stored
            job.group_size = len(group)
        self.groups += 1
        return answers

    async def _state(
        self,
        item: _Checked,
        job: _Job,
        working: dict[str, MeterState],
        new_states: dict[str, MeterState],
    ) -> MeterState | None | NishatiClientError:
        """The meter's state within the group being checked (a copy: the committed one moves
        only once the group is stored), ``None`` for an unknown meter, or the chain's error
        for a meter it could not look up."""
        key = item.key
        state = working.get(key)
        if state is not None:
            return state
        known = self._states.get(key)
        if known is not None:
            state = working[key] = replace(known)
            return state
        if key in job.found:
            info = job.found[key]
        else:
            try:
                info = await self.registry.lookup(item.submission.meter)
            except NishatiClientError as e:
                return e
        if info is None or isinstance(info, NishatiClientError):
            return info
        state = working[key] = new_states[key] = _state_from_chain(item.submission.meter, info)
        return state

    async def _check(
        self,
        item: _Checked,
        state: MeterState | None,
        now: int,
        stored_now: dict[tuple[str, int], bytes],
    ) -> Outcome:
        """The checks against the meter's last accepted reading."""
        reading, submission = item.reading, item.submission
        if state is None or not self.registry.registered(submission.meter):
            return _rejected(Reason.UnknownMeter, f"{submission.meter} is not a registered meter")
        if max(reading.counter, reading.exported_wh, reading.imported_wh) > MAX_STORED_VALUE:
            return Outcome(
                Status.rejected, Reason.MalformedSubmission, None, "values beyond 2^63 - 1"
            )
        if state.has_last and reading.counter <= state.last_counter:
            earlier = stored_now.get((state.meter, reading.counter))
            if earlier is None:
                row = await self.store.stored(state.meter, reading.counter)
                earlier = None if row is None else row.message
            if earlier == submission.message:
                return Outcome(Status.duplicate, None, reading.counter)
        try:
            check_progress(
                reading,
                _last(state),
                now,
                max_skew=self.settings.readings.max_clock_skew_secs,
                not_before=state.last_timestamp,
            )
        except ReadingError as e:
            return _rejected(Reason(e.name), str(e))
        if state.has_last and not self._plausible(reading, state):
            return _rejected(
                Reason.ImplausiblePower,
                f"more than {self.settings.readings.max_power_w} W since the last reading",
            )
        return Outcome(Status.accepted, None, reading.counter)

    def _plausible(self, reading: Reading, state: MeterState) -> bool:
        """The energy since the last reading, over the time since, stays under the power a
        home can draw or export: ``Wh * 3600 <= W * s``."""
        elapsed = reading.timestamp - state.last_timestamp
        energy = max(
            reading.exported_wh - state.last_exported_wh,
            reading.imported_wh - state.last_imported_wh,
        )
        return energy * 3_600 <= self.settings.readings.max_power_w * elapsed


def _rejected(reason: Reason, detail: str) -> Outcome:
    return Outcome(Status.rejected, reason, None, detail)
