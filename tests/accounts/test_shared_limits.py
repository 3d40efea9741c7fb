"""What every replica must agree on, kept in the database and tried from two replicas (two
engines on one database) on both stores: a signed change taken by one is refused by the other,
and the sign-in rate limits count the requests both take, exactly, even when they come at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import func, select

from nishati_client.signing import RequestSignature, signed_headers
from nishati_oracle.accounts.limits import RateLimit
from nishati_oracle.accounts.secrets import Keyed
from nishati_oracle.http.auth import AccessReason, AccessRefused, SignatureWindow
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.database import unavailable
from nishati_oracle.storage.schema import rate_hits, signed_changes

BODY = b'{"share_percent":50}'
PATH = "/api/v1/households/H/auto-sell"
NOW = 1_790_000_000.0
WINDOW_SECS = 300
SECRET = Keyed(b"test-auth-secret")


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' stores on one database."""
    a = await Store.open(database_url)
    b = await Store.open(database_url)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def signed_at(timestamp: int, method: str = "PUT") -> RequestSignature:
    parsed = RequestSignature.from_headers(signed_headers(Keypair(), method, PATH, BODY, timestamp))
    assert parsed is not None
    return parsed


async def refused(check: Coroutine[Any, Any, None]) -> AccessReason:
    with pytest.raises(AccessRefused) as refusal:
        await check
    return refusal.value.reason


async def test_a_signed_change_is_taken_once_among_replicas(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    now = [NOW]
    window_a = SignatureWindow(WINDOW_SECS, lambda: now[0])
    window_b = SignatureWindow(WINDOW_SECS, lambda: now[0])
    change = signed_at(int(NOW))
    await window_a.check(a.engine, change, changes=True)
    for window, store in ((window_a, a), (window_b, b)):
        reason = await refused(window.check(store.engine, change, changes=True))
        assert reason is AccessReason.ReplayedSignature
    # A read may be sent again, to either.
    read = signed_at(int(NOW), "GET")
    await window_a.check(a.engine, read, changes=False)
    await window_b.check(b.engine, read, changes=False)
    for stale in (int(NOW) - WINDOW_SECS - 1, int(NOW) + WINDOW_SECS + 1):
        reason = await refused(window_b.check(b.engine, signed_at(stale), changes=False))
        assert reason is AccessReason.StaleSignature
    # Past the window the change is stale, and its signature is deleted at the next purge.
    now[0] += WINDOW_SECS + 61
    reason = await refused(window_b.check(b.engine, change, changes=True))
    assert reason is AccessReason.StaleSignature
    await window_b.check(b.engine, signed_at(int(now[0])), changes=True)
    async with a.engine.connect() as conn:
        kept: list[float] = list((await conn.execute(select(signed_changes.c.signed_at))).scalars())
    assert kept == [int(now[0])]


async def test_a_change_sent_to_two_replicas_at_once_is_taken_once(
    replicas: tuple[Store, Store],
) -> None:
    a, b = replicas
    window = SignatureWindow(WINDOW_SECS, lambda: NOW)
    change = signed_at(int(NOW))
    results = await asyncio.gather(
        *(window.check(s.engine, change, changes=True) for s in (a, b) * 4),
        return_exceptions=True,
    )
    taken = [r for r in results if r is None]
    assert len(taken) == 1, results
    # The others are refused as replayed; on a loaded machine SQLite may also answer one
    # "database is locked" after its busy timeout, which the oracle answers with a 503 and
    # which took nothing, so the change may be sent again.
    assert all(
        (isinstance(r, AccessRefused) and r.reason is AccessReason.ReplayedSignature)
        or (isinstance(r, Exception) and unavailable(r))
        for r in results
        if r is not None
    ), results


def limits(stores: tuple[Store, Store], now: list[float], limit: int = 3) -> list[RateLimit]:
    return [
        RateLimit(s.engine, SECRET, "address", limit, WINDOW_SECS, lambda: now[0]) for s in stores
    ]


async def test_the_rate_limit_counts_the_requests_of_every_replica(
    replicas: tuple[Store, Store],
) -> None:
    now = [NOW]
    a, b = limits(replicas, now)
    assert await a.hit("192.0.2.7") is None
    now[0] += 10
    assert await b.hit("192.0.2.7") is None
    assert await a.hit("192.0.2.7") is None
    now[0] += 5
    # The fourth, at either: refused until the first is out of the window.
    assert await b.hit("192.0.2.7") == pytest.approx(WINDOW_SECS - 15)
    assert await a.hit("192.0.2.7") == pytest.approx(WINDOW_SECS - 15)
    # Another key is counted apart; the refused requests were not counted.
    assert await b.hit("192.0.2.8") is None
    now[0] = NOW + WINDOW_SECS
    assert await b.hit("192.0.2.7") is None
    assert await a.hit("192.0.2.7") == pytest.approx(10)


async def test_requests_at_once_at_two_replicas_pass_the_limit_exactly(
    replicas: tuple[Store, Store],
) -> None:
    now = [NOW]
    a, b = limits(replicas, now, limit=5)
    waits = await asyncio.gather(*(limit.hit("198.51.100.1") for limit in (a, b) * 8))
    assert sum(wait is None for wait in waits) == 5, waits
    async with replicas[0].engine.connect() as conn:
        counted = (await conn.execute(select(func.count()).select_from(rate_hits))).scalar()
    assert counted == 5


async def test_a_key_is_kept_only_as_its_keyed_digest(replicas: tuple[Store, Store]) -> None:
    now = [NOW]
    a, _ = limits(replicas, now)
    await a.hit("203.0.113.9")
    async with replicas[0].engine.connect() as conn:
        [row] = (await conn.execute(select(rate_hits.c.limit_name, rate_hits.c.key_digest))).all()
    name, key = str(row.limit_name), str(row.key_digest)
    assert name == "address"
    assert "203.0.113.9" not in key
    assert key == SECRET.digest("rate", "address", "203.0.113.9")
