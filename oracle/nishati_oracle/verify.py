"""From a submitted reading to a durably stored one: every check the chain makes, plus the
ones only the oracle can make (a known meter, plausible power, duplicates)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey

from nishati_client.chain import Chain, cluster_time
from nishati_client.errors import AccountNotFound, NishatiClientError
from nishati_client.pda import meter_record_address
from nishati_client.program import NishatiClient
from nishati_client.readings import (
    LastReading,
    Reading,
    ReadingError,
    SignedReading,
    check,
    verify_signature,
)
from nishati_oracle.ingest import Outcome, Reason, Status, Submission
from nishati_oracle.metrics import Metrics
from nishati_oracle.settings import OracleSettings
from nishati_oracle.store import MeterState, Store, StoredReading

log = logging.getLogger(__name__)

# The store keeps counters and Wh in signed 64-bit columns; no real meter comes near this.
MAX_STORED_VALUE = 2**63 - 1


@dataclass(frozen=True)
class MeterInfo:
    """What the chain says of a meter: its household and that meter's last accepted reading."""

    household: Pubkey
    last: LastReading | None
    last_timestamp: int


class MeterRegistry:
    """Meter key → household, from the chain's MeterRecord and Household accounts, cached."""

    def __init__(self, client: NishatiClient, market: Pubkey, ttl_secs: float) -> None:
        self.client = client
        self.market = market
        self.ttl_secs = ttl_secs
        self._cache: dict[Pubkey, tuple[float, MeterInfo | None]] = {}

    async def lookup(self, meter: Pubkey) -> MeterInfo | None:
        now = time.monotonic()
        cached = self._cache.get(meter)
        if cached is not None and now - cached[0] < self.ttl_secs:
            return cached[1]
        info = await self._fetch(meter)
        self._cache[meter] = (now, info)
        return info

    async def _fetch(self, meter: Pubkey) -> MeterInfo | None:
        program_id = self.client.program.program_id
        address, _ = meter_record_address(program_id, self.market, meter)
        try:
            record = await self.client.meter_record(address)
            if record.retired:
                return None
            household = await self.client.household(record.household)
        except AccountNotFound:
            return None
        if household.meter != meter:
            return None
        return MeterInfo(household.address, household.last_reading, household.last_timestamp)


class ChainClock:
    """The cluster's clock, as the program sees it: read from the Clock sysvar now and then
    and carried forward on the local monotonic clock in between. Checking skew against it
    (not the oracle's wall clock) accepts exactly the readings the chain will accept."""

    def __init__(self, chain: Chain, refresh_secs: float = 30) -> None:
        self.chain = chain
        self.refresh_secs = refresh_secs
        self._read_at: float | None = None
        self._cluster_time = 0

    async def now(self) -> int:
        """The cluster's time; while the chain is unreachable, the last reading carried on."""
        elapsed = None if self._read_at is None else time.monotonic() - self._read_at
        if elapsed is None or elapsed >= self.refresh_secs:
            try:
                self._cluster_time = await cluster_time(self.chain)
            except NishatiClientError:
                if elapsed is None:
                    raise
                log.warning("cluster clock unreachable; carrying the last reading forward")
                return self._cluster_time + int(elapsed)
            self._read_at = time.monotonic()
            elapsed = 0
        return self._cluster_time + int(elapsed)


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


class ReadingPipeline:
    """Verifies batches of readings and stores the accepted ones before answering.

    Batches run one at a time (a lock): each reading is checked against its meter's last
    accepted one, which the batch before may just have moved.
    """

    def __init__(
        self,
        settings: OracleSettings,
        market: Pubkey,
        store: Store,
        registry: MeterRegistry,
        metrics: Metrics,
        chain_clock: ChainClock,
    ) -> None:
        self.settings = settings
        self.market = market
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.chain_clock = chain_clock
        self._lock = asyncio.Lock()

    async def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        started = time.perf_counter()
        async with self._lock:
            outcomes = await self._submit(batch)
        self.metrics.ingest_seconds.observe(time.perf_counter() - started)
        for outcome in outcomes:
            if outcome.status is Status.accepted:
                self.metrics.accepted.inc()
            elif outcome.status is Status.duplicate:
                self.metrics.duplicates.inc()
            else:
                self.metrics.rejected.labels(str(outcome.reason)).inc()
        return outcomes

    async def _submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        now = await self.chain_clock.now()
        keys = {str(s.meter) for s in batch}
        states = await self.store.meter_states(keys)
        new_states: dict[str, MeterState] = {}
        changed: dict[str, MeterState] = {}
        accepted: list[StoredReading] = []
        outcomes: list[Outcome] = []
        for submission in batch:
            key = str(submission.meter)
            state = states.get(key) or new_states.get(key)
            if state is None:
                try:
                    info = await self.registry.lookup(submission.meter)
                except NishatiClientError as e:
                    # A meter never seen before needs the chain; the others never wait for it.
                    outcomes.append(Outcome(Status.rejected, Reason.ChainUnavailable, None, str(e)))
                    continue
                if info is not None:
                    state = new_states[key] = _state_from_chain(submission.meter, info)
            outcome, reading = await self._check(submission, state, now, accepted)
            outcomes.append(outcome)
            if reading is None or state is None:
                continue
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
            state.has_last = True
            state.last_counter = reading.counter
            state.last_timestamp = reading.timestamp
            state.last_exported_wh = reading.exported_wh
            state.last_imported_wh = reading.imported_wh
            if key not in new_states:
                changed[key] = state
        if accepted or new_states:
            await self.store.accept(list(new_states.values()), accepted, list(changed.values()))
        return outcomes

    async def _check(
        self,
        submission: Submission,
        state: MeterState | None,
        now: int,
        batch: Sequence[StoredReading],
    ) -> tuple[Outcome, Reading | None]:
        def rejected(reason: Reason, detail: str) -> tuple[Outcome, None]:
            return Outcome(Status.rejected, reason, None, detail), None

        try:
            signed = SignedReading(submission.message, submission.signature, submission.meter)
            reading = Reading.decode(submission.message)
            if reading.market != self.market:
                return rejected(Reason.ReadingForAnotherMarket, f"market {reading.market}")
            verify_signature(signed)
        except ReadingError as e:
            return rejected(Reason(e.name), str(e))
        except ValueError as e:
            return rejected(Reason.MalformedSubmission, str(e))
        if state is None:
            return rejected(Reason.UnknownMeter, f"{submission.meter} is not a registered meter")
        if max(reading.counter, reading.exported_wh, reading.imported_wh) > MAX_STORED_VALUE:
            return rejected(Reason.MalformedSubmission, "values beyond 2^63 - 1")
        if state.has_last and reading.counter <= state.last_counter:
            earlier = next(
                (r for r in batch if r.meter == state.meter and r.counter == reading.counter),
                None,
            ) or await self.store.stored(state.meter, reading.counter)
            if earlier is not None and earlier.message == submission.message:
                return Outcome(Status.duplicate, None, reading.counter), None
        try:
            check(
                submission.message,
                self.market,
                _last(state),
                now,
                max_skew=self.settings.max_clock_skew_secs,
                not_before=state.last_timestamp,
            )
        except ReadingError as e:
            return rejected(Reason(e.name), str(e))
        if state.has_last and not self._plausible(reading, state):
            return rejected(
                Reason.ImplausiblePower,
                f"more than {self.settings.max_power_w} W since the last reading",
            )
        return Outcome(Status.accepted, None, reading.counter), reading

    def _plausible(self, reading: Reading, state: MeterState) -> bool:
        """The energy since the last reading, over the time since, stays under the power a
        home can draw or export: ``Wh * 3600 <= W * s``."""
        elapsed = reading.timestamp - state.last_timestamp
        energy = max(
            reading.exported_wh - state.last_exported_wh,
            reading.imported_wh - state.last_imported_wh,
        )
        return energy * 3_600 <= self.settings.max_power_w * elapsed
