"""The oracle's view of the cluster clock: only its first read waits for the chain; later
reads happen in the background, one at a time, while readings are checked against the clock
carried forward."""

from __future__ import annotations

import asyncio

import pytest
from solders.account import Account
from solders.clock import Clock
from solders.pubkey import Pubkey
from solders.sysvar import CLOCK
from structlog.testing import capture_logs

from nishati_client.errors import RpcUnavailable
from nishati_oracle.readings.clock import ChainClock


class SlowClockChain:
    """A chain whose Clock sysvar answers only when ``gate`` is open, with ``unix_timestamp``
    (or ``failure``); counts the reads it was asked for."""

    def __init__(self, unix_timestamp: int) -> None:
        self.unix_timestamp = unix_timestamp
        self.gate = asyncio.Event()
        self.gate.set()
        self.reads = 0
        self.failure: Exception | None = None

    async def account(self, address: Pubkey) -> Account | None:
        assert address == CLOCK
        self.reads += 1
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        clock = Clock(1, 0, 0, 0, self.unix_timestamp)
        return Account(1, bytes(clock), Pubkey.default(), False, 0)


async def test_concurrent_first_readers_share_one_read_and_wait_for_it() -> None:
    chain = SlowClockChain(1_000)
    chain.gate.clear()
    clock = ChainClock(chain)
    waiting = [asyncio.create_task(clock.now()) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)
    chain.gate.set()
    assert await asyncio.gather(*waiting) == [1_000] * 20
    assert chain.reads == 1


async def test_a_first_read_that_fails_fails_its_callers() -> None:
    chain = SlowClockChain(1_000)
    chain.failure = RpcUnavailable("validator down")
    clock = ChainClock(chain)
    with pytest.raises(RpcUnavailable):
        await clock.now()
    chain.failure = None
    assert await clock.now() == 1_000


async def test_a_stale_clock_is_read_in_the_background_once() -> None:
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain, refresh_secs=0)
    assert await clock.now() == 1_000
    chain.gate.clear()
    chain.unix_timestamp = 2_000
    # The chain hangs: every caller is answered at once from the carried clock, one read waits.
    answers = await asyncio.wait_for(asyncio.gather(*(clock.now() for _ in range(50))), 1)
    assert answers == [1_000] * 50
    await asyncio.sleep(0)
    assert chain.reads == 2
    chain.gate.set()
    await asyncio.sleep(0.01)
    assert await clock.now() == 2_000
    await clock.close()


async def test_an_unreachable_chain_carries_the_clock_on_and_is_retried() -> None:
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain, refresh_secs=0, retry_secs=0.05)
    assert await clock.now() == 1_000
    chain.failure = RpcUnavailable("validator down")
    with capture_logs() as logged:
        assert await clock.now() == 1_000
        await asyncio.sleep(0.01)
        # Within the retry delay nothing more is asked of the chain.
        assert await clock.now() == 1_000
        assert chain.reads == 2
    [unreachable] = [e for e in logged if e["event"].startswith("cluster clock unreachable")]
    assert unreachable["log_level"] == "warning"
    assert "validator down" in unreachable["error"]
    chain.failure = None
    chain.unix_timestamp = 3_000
    await asyncio.sleep(0.06)
    assert await clock.now() == 1_000  # this call starts the retry
    await asyncio.sleep(0.01)
    assert chain.reads == 3
    assert await clock.now() == 3_000
    await clock.close()


async def test_close_cancels_a_read_in_flight() -> None:
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain, refresh_secs=0)
    await clock.now()
    chain.gate.clear()
    await clock.now()
    await asyncio.sleep(0)
    await clock.close()
    assert chain.reads == 2
    chain.gate.set()
    await asyncio.sleep(0.01)
    assert await clock.now() == 1_000
    await clock.close()


async def test_the_clock_is_never_carried_ahead_of_the_chain() -> None:
    """A chain whose clock stands still (a local validator's did) is not run ahead by the
    oracle's own: a reading checked against it is checked against what the program will see."""
    local = [100.0]
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain, refresh_secs=30, monotonic=lambda: local[0])
    assert await clock.now() == 1_000
    local[0] += 20
    assert await clock.now() == 1_000
    local[0] += 20  # stale: a read starts, and the answer meanwhile is still the last read
    assert await clock.now() == 1_000
    await asyncio.sleep(0.01)
    assert chain.reads == 2
    assert await clock.now() == 1_000  # the chain's clock did not move: neither does this one
    await clock.close()


async def test_an_answer_from_behind_never_moves_the_clock_back() -> None:
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain)
    assert await clock.fresh() == 1_000
    chain.unix_timestamp = 990  # a lagging RPC node
    assert await clock.fresh() == 1_000
    chain.unix_timestamp = 1_010
    assert await clock.fresh() == 1_010
    assert chain.reads == 3
    await clock.close()


async def test_fresh_waits_for_a_read_and_fails_with_the_chain() -> None:
    chain = SlowClockChain(1_000)
    clock = ChainClock(chain, refresh_secs=3_600)
    assert await clock.now() == 1_000
    chain.unix_timestamp = 1_500
    assert await clock.now() == 1_000
    assert await clock.fresh() == 1_500
    chain.failure = RpcUnavailable("validator down")
    with pytest.raises(RpcUnavailable):
        await clock.fresh()
    assert await clock.now() == 1_500
    await clock.close()
