"""Exactly once under crashes: 200 trades while the oracle is SIGKILLed at random points and
restarted. Every trade must end in one final state, settled at most once, paid out at most once,
and none lost; the chain, the simulator's books and the oracle's ledger must agree."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.config import ClientSettings
from nishati_oracle.trading.ledger import FINAL_STATES
from tests.harness.trading import TradingWorld, trading_world

pytestmark = pytest.mark.rpc

TRADES = 200
CONCURRENT_ORDERS = 6
SPARE_ORDERS = 60
# Mostly paid; every failure code and callback mode turns up too.
SUFFIXES = ["00"] * 8 + ["32", "37", "01", "11", "17", "19", "90", "91", "92", "93", "94"]
SETTLED = {"payout_confirmed", "payout_failed", "payout_sent", "settled"}


@pytest.fixture
async def world(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path
) -> AsyncIterator[TradingWorld]:
    # As with people typing a PIN, callbacks come seconds after the push: after a restart is
    # done, so one whose push answer a kill took can still find its trade.
    sim: dict[str, object] = {"callback_delay_secs": 8.0, "long_delay_secs": 6.0}
    async with trading_world(
        rpc_url,
        rpc_payer,
        settings,
        tmp_path,
        offer_wh=700_000,
        deadline_secs=60,
        sim_settings=sim,
    ) as started:
        yield started


async def test_random_kills_lose_nothing_and_double_nothing(world: TradingWorld) -> None:
    rng = random.Random(20261126)  # noqa: S311 - a reproducible test, not cryptography
    # Orders cut off by a kill may never be stored: spares keep the stored count at TRADES.
    orders = [
        (world.phone(rng.choice(SUFFIXES)), rng.randrange(1_000, 3_000))
        for _ in range(TRADES + SPARE_ORDERS)
    ]
    for phone, _ in orders:
        await world.buyer(phone)
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for order in orders:
        queue.put_nowait(order)
    answered: dict[str, str] = {}  # trade id -> buyer phone
    unanswered = 0

    async def customer() -> None:
        nonlocal unanswered
        async with httpx.AsyncClient(base_url=world.oracle.url, timeout=30) as http:
            while not queue.empty() and stored(world) < TRADES:
                phone, wh = queue.get_nowait()
                body = {"offer": str(world.offer.address), "wh": wh, "phone": phone}
                try:
                    answer = await http.post("/api/v1/trades", json=body)
                except httpx.ConnectError:
                    # Never reached the oracle (it is down): safe to send again.
                    queue.put_nowait((phone, wh))
                    await asyncio.sleep(0.3)
                    continue
                except httpx.HTTPError:
                    # Cut off mid-request: whether the trade exists is the oracle's to say.
                    unanswered += 1
                    continue
                if "trade_id" in answer.json():
                    answered[answer.json()["trade_id"]] = phone

    kills = 0

    async def chaos(until: asyncio.Event) -> None:
        nonlocal kills
        while not until.is_set():
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            await asyncio.to_thread(world.oracle.kill)
            kills += 1
            await asyncio.to_thread(world.oracle.start)

    orders_done = asyncio.Event()
    killer = asyncio.create_task(chaos(orders_done))
    await asyncio.gather(*(customer() for _ in range(CONCURRENT_ORDERS)))
    # Keep killing while the worker settles and pays.
    await asyncio.sleep(12)
    orders_done.set()
    await killer
    rows = await all_final(world, within_secs=180)

    # No lost trade: every answered order is in the ledger, and every row is final.
    assert set(answered) <= set(rows)
    assert {state for state, *_ in rows.values()} <= FINAL_STATES

    # Settled at most once: each buyer (one order each) holds exactly what its trade settled.
    phone_of = dict(answered)
    by_buyer = {row[2]: (trade_id, row) for trade_id, row in rows.items()}
    for phone, member in world.buyers.items():
        found = by_buyer.get(str(member.address))
        held = await world.market.balance(member)
        expected = found[1][1] if found and found[1][0] in SETTLED else 0
        assert held == expected, (phone, found)
        if found:
            assert phone_of.get(found[0], phone) == phone
    settled_wh = sum(row[1] for row in rows.values() if row[0] in SETTLED)
    offer = await world.client.offer(world.offer.address)
    assert offer.reserved_wh == 0
    assert offer.unreserved_wh == 700_000 - settled_wh
    for trade_id, row in rows.items():
        assert await world.market.h.chain.account(Pubkey.from_string(row[3])) is None, trade_id

    # Paid out at most once, and exactly the confirmed ones.
    books = await world.sim_control("/simulator/transactions")
    paid = {p["originator_conversation_id"]: p["amount"] for p in books["payouts"] if p["paid"]}
    confirmed = {t: row[4] for t, row in rows.items() if row[0] == "payout_confirmed"}
    assert paid == confirmed

    # Every payment the simulator took belongs to a settled trade, except where a kill took
    # both the push's answer and its callback: that trade, never told of a CheckoutRequestID,
    # was cancelled at its deadline, and the buyer is owed a refund.
    by_checkout = {row[5]: row[0] for row in rows.values() if row[5]}
    orphans = 0
    for stk in books["stk"]:
        if stk["result_code"] != 0:
            continue
        if stk["checkout_request_id"] in by_checkout:
            assert by_checkout[stk["checkout_request_id"]] in SETTLED
            continue
        orphans += 1
        trade_id, row = by_buyer[str(world.buyers[stk["phone"]].address)]
        assert (row[0], row[5]) == ("cancelled", None), trade_id
    states: dict[str, int] = {}
    for state, *_ in rows.values():
        states[state] = states.get(state, 0) + 1
    print(
        f"\n{len(rows)} trades, {kills} kills, {unanswered} orders unanswered, "
        f"{orphans} orphaned payments; final states {states}"
    )
    assert kills >= 5
    assert len(rows) >= TRADES


def stored(world: TradingWorld) -> int:
    with sqlite3.connect(world.database) as db:
        count: int = db.execute("SELECT count(*) FROM trades").fetchone()[0]
    return count


async def all_final(
    world: TradingWorld, within_secs: float
) -> dict[str, tuple[str, int, str, str, int, str | None]]:
    """Trade id -> (state, wh, buyer, trade address, payout KES, checkout id) once all are
    final."""
    deadline = time.monotonic() + within_secs
    while True:
        with sqlite3.connect(world.database) as db:
            rows = {
                r[0]: tuple(r[1:])
                for r in db.execute(
                    "SELECT id, state, wh, buyer, trade_address, payout_kes, checkout_request_id"
                    " FROM trades"
                )
            }
        waiting = {t: r[0] for t, r in rows.items() if r[0] not in FINAL_STATES}
        if not waiting:
            return rows
        assert time.monotonic() < deadline, f"not final: {waiting}"
        await asyncio.sleep(1)
