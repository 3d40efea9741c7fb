"""One attester per market: two candidates on one database, the holder dying, and the writes of
one deposed refused by the fencing token (``readings.lease``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from solders.pubkey import Pubkey
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from nishati_oracle.readings.batcher import Attester
from nishati_oracle.readings.lease import AttesterLease, LeaseLost
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import attester_leases, readings
from tests.harness.oracle import OracleWorld

MARKET = str(Pubkey.new_unique())
# Short, so a takeover is quick; a candidate asks at every renewal.
LEASE_SECS = 1.0
RENEW_SECS = 0.1
# How long a takeover may take here: the lease, a renewal interval, and room for a busy machine.
TAKEOVER_BOUND_SECS = LEASE_SECS + RENEW_SECS + 3.0


@contextlib.asynccontextmanager
async def candidate(database_url: str, name: str) -> AsyncIterator[AttesterLease]:
    """A replica's claim on the lease, on a connection pool of its own (as another process's)."""
    engine = create_async_engine(database_url)
    try:
        yield AttesterLease(engine, MARKET, LEASE_SECS, RENEW_SECS, holder=name)
    finally:
        await engine.dispose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_of_two_candidates_only_one_holds_the_lease(store: Store, database_url: str) -> None:
    async with candidate(database_url, "a") as a, candidate(database_url, "b") as b:
        answers = await asyncio.gather(a.try_hold(), b.try_hold())
        assert sorted(answers) == [False, True]
        holder, other = (a, b) if a.held else (b, a)
        # Renewing keeps it; asking again does not take it from a live holder.
        for _ in range(3):
            assert await holder.try_hold()
            assert not await other.try_hold()
        assert holder.held
        assert not other.held
        assert holder.fence is not None
        assert holder.fence.token == 1


async def test_a_holder_that_stops_renewing_is_taken_over_within_the_lease(
    store: Store, database_url: str
) -> None:
    async with candidate(database_url, "a") as a, candidate(database_url, "b") as b:
        assert await a.try_hold()
        assert a.fence is not None
        stop = asyncio.Event()
        taken: list[float] = []
        keeping = [
            asyncio.create_task(a.keep(stop, lambda: None)),
            asyncio.create_task(b.keep(stop, lambda: taken.append(time.monotonic()))),
        ]
        # While ``a`` renews, ``b`` asks every renewal and never gets it.
        await asyncio.sleep(LEASE_SECS * 2)
        assert a.held
        assert not b.held
        assert taken == []
        # ``a`` dies: it stops renewing and releases nothing.
        keeping[0].cancel()
        died = time.monotonic()
        deadline = died + TAKEOVER_BOUND_SECS
        while not b.held:
            assert time.monotonic() < deadline, "no takeover within the bound"
            await asyncio.sleep(RENEW_SECS / 4)
        # Never before ``a``'s lease could have run out, and under a new token.
        assert taken[0] - died >= LEASE_SECS - RENEW_SECS
        assert not a.held
        assert b.fence is not None
        assert b.fence.token == a.fence.token + 1
        stop.set()
        await asyncio.gather(*keeping, return_exceptions=True)


async def test_a_deposed_attesters_writes_are_refused(store: Store, database_url: str) -> None:
    async with candidate(database_url, "a") as a, candidate(database_url, "b") as b:
        assert await a.try_hold()
        old = a.fence
        assert old is not None
        await store.record_lookup_table(old, "table-of-a", 1)
        # ``a`` is paused past its lease (its process stalled); ``b`` takes over.
        async with store.engine.begin() as conn:
            await conn.execute(
                update(attester_leases)
                .where(attester_leases.c.market == MARKET)
                .values(expires_at=0.0)
            )
        assert await b.try_hold()
        assert b.fence is not None
        assert b.fence.token == old.token + 1
        # ``a`` wakes and writes with the token it took: every write is refused, nothing lands.
        with pytest.raises(LeaseLost):
            await store.record_lookup_table(old, "table-of-a-again", 2)
        with pytest.raises(LeaseLost):
            await store.forget_lookup_table(old, "table-of-a")
        with pytest.raises(LeaseLost):
            await store.close_readings(old, "some-meter", "Deposed", 1.0)
        with pytest.raises(LeaseLost):
            await store.note_refused(old, "some-meter", 1, "Deposed")
        with pytest.raises(LeaseLost):
            await store.mark_attested(old, [], "deposed", 1.0)
        # Its renewal finds the token moved on: it knows it lost the lease.
        assert not await a.try_hold()
        assert not a.held
        # The new holder's writes pass.
        await store.record_lookup_table(b.fence, "table-of-b", 3)
        assert await store.lookup_tables(MARKET) == {"table-of-a": 1, "table-of-b": 3}


async def test_a_released_lease_is_taken_at_the_next_ask(store: Store, database_url: str) -> None:
    async with candidate(database_url, "a") as a, candidate(database_url, "b") as b:
        assert await a.try_hold()
        assert not await b.try_hold()
        await a.release()
        assert not a.held
        assert await b.try_hold()
        # A replica that released its lease (it is stopping) does not ask for it again.
        await b.release()
        assert not await a.try_hold()


async def test_a_deposed_attester_stops_and_its_readings_are_attested_once(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle's own attester, paused mid-round past its lease while another replica took
    over: the transaction it was sending lands, its writes are refused; the new holder finds
    the reading on chain, and it is marked attested once."""
    member = await world.member()
    now = await world.market.now()
    assert (await world.post(member.meter.read(now))).json()["accepted"] == 1
    services = world.services
    deposed, store = services.attester, services.store
    market = str(world.market.address)
    rival = AttesterLease(store.engine, market, LEASE_SECS, RENEW_SECS, holder="rival")
    send = services.client.meter_attest

    async def paused_while_sending(**kwargs: Any) -> Any:
        # The pause outlasts the lease: the database expires it, the rival takes it over.
        async with store.engine.begin() as conn:
            await conn.execute(
                update(attester_leases)
                .where(attester_leases.c.market == market)
                .values(expires_at=0.0)
            )
        assert await rival.try_hold()
        return await send(**kwargs)

    monkeypatch.setattr(services.client, "meter_attest", paused_while_sending)
    # Its own clock says it still holds the lease: it sends, then finds its writes refused.
    with pytest.raises(LeaseLost):
        await deposed.run_once()
    monkeypatch.undo()
    assert (await world.market.household(member)).last_counter == 1
    async with store.engine.connect() as conn:
        marked: Sequence[float | None] = (
            (await conn.execute(select(readings.c.attested_at))).scalars().all()
        )
    assert list(marked) == [None]
    # Its next round is refused before it sends anything; once it notices, it attests no more.
    with pytest.raises(LeaseLost):
        await deposed.run_once()
    assert not await deposed.lease.try_hold()
    assert await deposed.run_once() == 0
    # The new holder's attester: the chain already holds the reading, so it is recorded.
    successor = Attester(
        services.settings,
        store,
        services.client,
        deposed.oracle,
        services.market,
        deposed.policy,
        services.metrics,
        deposed.registry,
        deposed.chain_clock,
        rival,
    )
    assert await successor.run_once() == 1
    async with store.engine.connect() as conn:
        rows: Sequence[str | None] = (
            (await conn.execute(select(readings.c.attest_signature))).scalars().all()
        )
    assert list(rows) == ["reconciled"]
    assert await successor.run_once() == 0


async def test_a_request_to_attest_through_another_replica_reaches_the_attester(
    world: OracleWorld,
) -> None:
    """``POST .../attest`` may reach a replica that does not attest: the request goes through
    the database to the one that does."""
    member = await world.member()
    now = await world.market.now()
    assert (await world.post(member.meter.read(now))).json()["accepted"] == 1
    holder = world.services.attester
    assert await holder.run_once() == 1
    now = await world.elapse(60)
    # 100 Wh: under the threshold, so not due on its own.
    assert (await world.post(member.meter.read(now, exported_wh=100))).json()["accepted"] == 1
    assert await holder.run_once() == 0
    services = world.services
    market = str(world.market.address)
    other = AttesterLease(services.store.engine, market, LEASE_SECS, RENEW_SECS, holder="other")
    bystander = Attester(
        services.settings,
        services.store,
        services.client,
        holder.oracle,
        services.market,
        holder.policy,
        services.metrics,
        holder.registry,
        holder.chain_clock,
        other,
    )
    assert not await other.try_hold()
    await bystander.request(member.meter.public_key)
    assert await bystander.run_once() == 0
    assert await holder.run_once() == 1
    assert await world.market.balance(member) == 100
    # Taken once: the next round has nothing due.
    assert await holder.run_once() == 0
