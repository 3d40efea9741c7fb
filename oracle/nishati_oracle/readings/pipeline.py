"""From a submitted reading to a durably stored one: every check the chain makes, against the
chain's clock and what the chain holds of the household and the market (so "stored" is never
said of a reading the chain would refuse now), plus the ones only the oracle can make (a known
meter, plausible power, duplicates)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiClientError
from nishati_client.readings import (
    LastReading,
    Reading,
    ReadingError,
    SignedReading,
    check_progress,
    signatures_valid,
)
from nishati_oracle.core.group_commit import GroupCommit
from nishati_oracle.core.metrics import INGEST_STEPS, Metrics, observe_steps, steps_ms
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.clock import ChainClock
from nishati_oracle.readings.ingest import Outcome, Reason, Status, Submission
from nishati_oracle.readings.registry import MeterInfo, MeterRegistry
from nishati_oracle.readings.rules import MarketLimits, within_export_limit
from nishati_oracle.readings.store import MeterMoved, MeterState, Store, StoredReading

log = structlog.get_logger(__name__)

# The store keeps counters and Wh in signed 64-bit columns; no real meter comes near this.
MAX_STORED_VALUE = 2**63 - 1
# Times a group is checked and stored when other replicas keep storing readings of its meters
# first (each time, against the rows they left).
COMMIT_ATTEMPTS = 3
# From this many signatures a submit verifies them in a worker thread (the extension releases
# the GIL), so the event loop goes on parsing and answering meanwhile: 32 take about 2-5 ms,
# the hop to the thread and back about 0.05-0.2 ms; for a few it would be most of the time.
THREAD_VERIFY_FROM = 32


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
    signed: SignedReading


@dataclass
class _Job:
    """One :meth:`ReadingPipeline.submit` waiting for the commit of the group it joined."""

    items: list[_Checked | Outcome]
    # Chain lookups made before queueing, for meters not yet stored; an error is the chain's.
    found: dict[str, MeterInfo | None | NishatiClientError]
    now: int
    # The market's minting limits; the chain's error if they could not be read.
    limits: MarketLimits | NishatiClientError
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

    The last accepted reading of each meter is kept in memory as last committed, moved only
    after its transaction committed; the database is the arbiter: a transaction moves each
    meter's row only from the state the group was checked against, so when another replica
    stored readings of one of its meters first (:class:`~.store.MeterMoved`), nothing is stored
    and the group is checked again against the rows read afresh.
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
        limits: MarketLimits | NishatiClientError
        try:
            limits = await self.registry.limits.get()
        except NishatiClientError as e:
            limits = e
        items = await self._stateless(batch)
        found = await self._prepare(items)
        job = _Job(items, found, now, limits, time.perf_counter())
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
        steps = observe_steps(self._steps, times)
        if took >= self.settings.storage.slow_log_secs:
            log.warning(
                "slow submit",
                ms=round(took * 1e3, 1),
                steps=steps_ms(INGEST_STEPS, steps),
                readings=len(job.items),
                group_submits=job.group_size,
            )

    async def _stateless(self, batch: Sequence[Submission]) -> list[_Checked | Outcome]:
        """The checks that need no meter state, in the order the chain makes them: each
        message's format and market, then the signatures of those that passed, in one call."""
        items = [self._format(submission) for submission in batch]
        signed = [item.signed for item in items if isinstance(item, _Checked)]
        if len(signed) >= THREAD_VERIFY_FROM:
            valid = await asyncio.to_thread(signatures_valid, signed)
        else:
            valid = signatures_valid(signed)
        verdicts = iter(valid)
        return [
            _rejected(Reason.InvalidSignature, f"reading is not signed by {item.key}")
            if isinstance(item, _Checked) and not next(verdicts)
            else item
            for item in items
        ]

    def _format(self, submission: Submission) -> _Checked | Outcome:
        """A submission's message decoded and its market checked."""
        try:
            signed = SignedReading(submission.message, submission.signature, submission.meter)
            reading = Reading.decode(submission.message)
        except ReadingError as e:
            return _rejected(Reason(e.name), str(e))
        except ValueError as e:
            return _rejected(Reason.MalformedSubmission, str(e))
        if not reading.is_for(self.market):
            return _rejected(
                Reason.ReadingForAnotherMarket, f"market tag {reading.market_tag.hex()}"
            )
        return _Checked(submission, str(submission.meter), reading, signed)

    async def _prepare(
        self, items: Sequence[_Checked | Outcome]
    ) -> dict[str, MeterInfo | None | NishatiClientError]:
        """Loads the stored rows of meters not in memory yet, and looks up on chain the meters
        with none and those whose household the registry has not read yet (after a restart),
        outside the writer: the others never wait for the chain."""
        checked = [i for i in items if isinstance(i, _Checked)]
        missing = {i.key for i in checked if i.key not in self._states}
        if missing:
            for key, state in (await self.store.meter_states(missing)).items():
                # A commit since the query may have moved it further: the newer stays.
                self._states.setdefault(key, state)
        unknown = list(
            dict.fromkeys(
                i.submission.meter
                for i in checked
                if i.key not in self._states or self.registry.on_chain(i.submission.meter) is None
            )
        )
        if not unknown:
            return {}
        try:
            looked_up = await self.registry.lookup_many(unknown)
        except NishatiClientError as e:
            return {str(meter): e for meter in unknown}
        return {str(meter): info for meter, info in looked_up.items()}

    async def _commit(self, group: Sequence[_Job]) -> list[list[Outcome]]:
        """Every reading of the group against its meter's state, then one transaction; again
        against the database's rows if another replica stored readings of its meters first."""
        started = time.perf_counter()
        keys = {i.key for job in group for i in job.items if isinstance(i, _Checked)}
        unloaded = [
            k for k in keys if k not in self._states and not any(k in j.found for j in group)
        ]
        if unloaded:  # a meter no submit looked up (e.g. after a failed group): read it now
            for key, row in (await self.store.meter_states(unloaded)).items():
                self._states.setdefault(key, row)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            checked_group = await self._check_group(group)
            answers, working, new_states, changed, accepted = checked_group
            checked = time.perf_counter()
            if not (accepted or new_states):
                break
            moved = [working[key] for key in changed]
            was = [self._states[key] for key in changed]
            try:
                await self.store.accept(list(new_states.values()), accepted, moved, was)
            except MeterMoved:
                # The database holds what another replica stored: the group is checked again
                # against it.
                for key in working:
                    self._states.pop(key, None)
                if attempt == COMMIT_ATTEMPTS:
                    raise
                fresh = await self.store.meter_states(list(working))
                self._states.update(fresh)
                continue
            except BaseException:
                # The transaction may have committed before failing (a lost answer): these
                # meters are read again from the database when next seen, never assumed.
                for key in working:
                    self._states.pop(key, None)
                raise
            self._states.update(working)
            break
        stored = time.perf_counter()
        for job in group:
            job.started_at, job.checked_at, job.stored_at = started, checked, stored
            job.group_size = len(group)
        self.groups += 1
        return answers

    async def _check_group(
        self, group: Sequence[_Job]
    ) -> tuple[
        list[list[Outcome]],
        dict[str, MeterState],
        dict[str, MeterState],
        set[str],
        list[StoredReading],
    ]:
        """The group's outcomes, the meters' states after it (``working``: those new to the
        oracle, and those it moves) and the readings to store."""
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
                outcome = await self._check(item, state, job, stored_now)
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
        return answers, working, new_states, changed, accepted

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
        job: _Job,
        stored_now: dict[tuple[str, int], bytes],
    ) -> Outcome:
        """The checks against the meter's last accepted reading, then the minting rules
        against what the chain holds (:mod:`~nishati_oracle.readings.rules`)."""
        reading, submission = item.reading, item.submission
        now = job.now
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
        chain = self.registry.on_chain(submission.meter)
        if chain is None:
            looked_up = job.found.get(item.key)
            if isinstance(looked_up, NishatiClientError):
                return Outcome(Status.rejected, Reason.ChainUnavailable, None, str(looked_up))
            return _rejected(Reason.UnknownMeter, f"{submission.meter} is not a registered meter")
        try:
            check_progress(
                reading,
                _last(state),
                now,
                max_skew=self.settings.readings.max_clock_skew_secs,
                not_before=state.last_timestamp,
                meter_since=chain.meter_since,
            )
        except ReadingError as e:
            return _rejected(Reason(e.name), str(e))
        limits = job.limits
        if isinstance(limits, NishatiClientError):
            return Outcome(Status.rejected, Reason.ChainUnavailable, None, str(limits))
        minted = chain.minted(reading.exported_wh)
        # A reading the chain will allow in a few seconds (one taken in the same chain second
        # as the meter's last attestation) is taken; the batcher holds it until then.
        wait = self.settings.readings.export_wait_secs
        if not within_export_limit(minted, limits.max_export_watts, chain.attested_at, now + wait):
            return _rejected(
                Reason.ExportAboveMeterLimit,
                f"{minted:,} Wh since the last attestation is more than "
                f"{limits.max_export_watts:,} W allows over the "
                f"{max(0, now - chain.attested_at)} s of chain time since and {wait} s more",
            )
        if minted > limits.daily_mint_cap_wh:
            return _rejected(
                Reason.MintCeilingReached,
                f"{minted:,} Wh is more than the market mints in a day "
                f"({limits.daily_mint_cap_wh:,} Wh)",
            )
        return Outcome(Status.accepted, None, reading.counter)


def _rejected(reason: Reason, detail: str) -> Outcome:
    return Outcome(Status.rejected, reason, None, detail)
