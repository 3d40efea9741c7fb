"""Group commit: submits that arrive while a transaction is being stored share the next one, and
none is answered before its readings are durable. On both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from structlog.testing import capture_logs

from nishati_client.readings import Reading, SignedReading
from nishati_oracle.core.metrics import INGEST_STEPS
from nishati_oracle.readings.ingest import Status, Submission
from nishati_oracle.readings.store import MeterState, Store, StoredReading
from tests.harness.oracle import OracleWorld


def submission(signed: SignedReading) -> Submission:
    return Submission(signed.message, signed.signature, signed.meter)


class GatedStore:
    """Wraps ``Store.accept``: each call waits for ``gate``, then stores, or fails while
    ``failures_left``; records what each call carried and what is committed."""

    def __init__(self, store: Store) -> None:
        self.real = store.accept
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.calls: list[list[int]] = []
        self.committed: set[tuple[str, int]] = set()
        self.failures_left = 0

    async def accept(
        self,
        new_meters: Sequence[MeterState],
        accepted: Sequence[StoredReading],
        states: Sequence[MeterState],
        was: Sequence[MeterState],
    ) -> None:
        self.calls.append([r.counter for r in accepted])
        self.entered.set()
        await self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("the database went away")
        await self.real(new_meters, accepted, states, was)
        self.committed.update((r.meter, r.counter) for r in accepted)


async def test_concurrent_submits_share_a_commit_and_are_answered_once_stored(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = world.services.pipeline
    a, b = await world.member(), await world.member()
    now = await world.market.now()
    # Known to the pipeline first: the submits below need no chain lookup.
    await pipeline.submit([submission(a.meter.read(now)), submission(b.meter.read(now))])
    gated = GatedStore(world.services.store)
    monkeypatch.setattr(world.services.store, "accept", gated.accept)

    a2 = a.meter.read(now + 60)
    first = asyncio.create_task(pipeline.submit([submission(a2)]))
    await asyncio.wait_for(gated.entered.wait(), 5)
    # These arrive while the first is being stored: one group, one transaction.
    a3, b2 = a.meter.read(now + 120), b.meter.read(now + 60)
    rest = [
        asyncio.create_task(pipeline.submit([submission(a3)])),
        asyncio.create_task(pipeline.submit([submission(b2)])),
        # Sent again within the same group: a duplicate, not stored twice.
        asyncio.create_task(pipeline.submit([submission(b2)])),
    ]
    await asyncio.sleep(0.05)
    assert not first.done()
    assert not any(t.done() for t in rest)

    early: list[str] = []

    def answered_only_once_stored(signed: SignedReading) -> Callable[[object], None]:
        def check(_: object) -> None:
            counter = Reading.decode(signed.message).counter
            if (str(signed.meter), counter) not in gated.committed:
                early.append(f"{signed.meter} {counter}")

        return check

    for task, signed in zip((first, *rest), (a2, a3, b2, b2), strict=True):
        task.add_done_callback(answered_only_once_stored(signed))
    gated.gate.set()
    results = [await first, *await asyncio.gather(*rest)]
    assert [[o.status for o in r] for r in results] == [
        [Status.accepted],
        [Status.accepted],
        [Status.accepted],
        [Status.duplicate],
    ]
    assert not early
    assert gated.calls == [[2], [3, 2]]
    stored = await world.services.store.meter_states([str(a.meter.public_key)])
    assert stored[str(a.meter.public_key)].last_counter == 3
    assert await world.services.store.unattested_count() == 5


async def test_a_failed_commit_fails_every_submit_of_its_group_and_remembers_nothing(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = world.services.pipeline
    a, b = await world.member(), await world.member()
    now = await world.market.now()
    await pipeline.submit([submission(a.meter.read(now)), submission(b.meter.read(now))])
    gated = GatedStore(world.services.store)
    monkeypatch.setattr(world.services.store, "accept", gated.accept)
    gated.failures_left = 2

    first = asyncio.create_task(pipeline.submit([submission(a.meter.read(now + 60))]))
    await asyncio.wait_for(gated.entered.wait(), 5)
    a3, b2 = a.meter.read(now + 120), b.meter.read(now + 60)
    group = [asyncio.create_task(pipeline.submit([submission(r)])) for r in (a3, b2)]
    await asyncio.sleep(0.05)
    gated.gate.set()
    with pytest.raises(ConnectionError):
        await first
    for task in group:
        with pytest.raises(ConnectionError):
            await task
    assert gated.calls == [[2], [3, 2]]
    assert not gated.committed
    assert await world.services.store.unattested_count() == 2
    # Nothing of the failed groups moved a meter on: the same readings are accepted now.
    again = await pipeline.submit([submission(a3), submission(b2)])
    assert [o.status for o in again] == [Status.accepted, Status.accepted]
    assert await world.services.store.unattested_count() == 4


async def test_a_failed_commit_is_answered_as_a_failure_over_http(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await world.member()
    now = await world.market.now()
    gated = GatedStore(world.services.store)
    gated.gate.set()
    gated.failures_left = 1
    monkeypatch.setattr(world.services.store, "accept", gated.accept)
    answer = await world.post(member.meter.read(now))
    # Not the database driver's own error (that would be a 503): the oracle's fault.
    assert (answer.status_code, answer.json()["reason"]) == (500, "InternalError")
    assert await world.services.store.unattested_count() == 0
    metrics = (await world.http.get("/metrics")).text
    assert "nishati_readings_accepted_total 0.0" in metrics


async def test_a_commit_that_lands_but_loses_its_answer_is_a_duplicate_when_sent_again(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = world.services.pipeline
    member = await world.member()
    now = await world.market.now()
    await pipeline.submit([submission(member.meter.read(now))])
    real = world.services.store.accept

    async def stored_then_lost(
        new_meters: Sequence[MeterState],
        accepted: Sequence[StoredReading],
        states: Sequence[MeterState],
        was: Sequence[MeterState],
    ) -> None:
        await real(new_meters, accepted, states, was)
        raise ConnectionError("the answer was lost")

    monkeypatch.setattr(world.services.store, "accept", stored_then_lost)
    second = member.meter.read(now + 60)
    with pytest.raises(ConnectionError):
        await pipeline.submit([submission(second)])
    monkeypatch.undo()
    # The meter is read again from the database: its last reading is the one that landed.
    again = await pipeline.submit([submission(second), submission(member.meter.read(now + 120))])
    assert [o.status for o in again] == [Status.duplicate, Status.accepted]
    assert await world.services.store.unattested_count() == 3


async def test_a_submit_behind_a_slow_commit_shows_the_wait_as_queued(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, metrics = world.services.pipeline, world.services.metrics
    a, b = await world.member(), await world.member()
    now = await world.market.now()
    await pipeline.submit([submission(a.meter.read(now)), submission(b.meter.read(now))])
    gated = GatedStore(world.services.store)
    monkeypatch.setattr(world.services.store, "accept", gated.accept)

    def observed(step: str, le: str = "+Inf") -> float:
        labels = {"step": step, "le": le}
        return (
            metrics.registry.get_sample_value("nishati_ingest_step_seconds_bucket", labels) or 0.0
        )

    before = {(step, le): observed(step, le) for step in INGEST_STEPS for le in ("0.1", "+Inf")}

    def grew(step: str, le: str = "+Inf") -> float:
        return observed(step, le) - before[step, le]

    with capture_logs() as logged:
        first = asyncio.create_task(pipeline.submit([submission(a.meter.read(now + 60))]))
        await asyncio.wait_for(gated.entered.wait(), 5)
        behind = asyncio.create_task(pipeline.submit([submission(b.meter.read(now + 60))]))
        await asyncio.sleep(0.15)
        gated.gate.set()
        await asyncio.gather(first, behind)
    # Each submit observed each step once; the first waited in its store step, the second
    # queued behind it.
    assert {step: grew(step) for step in INGEST_STEPS} == dict.fromkeys(INGEST_STEPS, 2)
    assert grew("queued", "0.1") == 1
    assert grew("store", "0.1") == 1
    slow = [e for e in logged if e["event"] == "slow submit"]
    assert len(slow) == 2
    assert all(list(e["steps"]) == list(INGEST_STEPS) for e in slow)
    assert all(e["readings"] == 1 and e["group_submits"] == 1 for e in slow)
