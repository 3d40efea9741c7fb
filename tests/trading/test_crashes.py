"""Exactly once under crashes: at least 200 trades while the oracle is SIGKILLed at random points
and restarted, with Daraja behaving as it really does: buyers who type their PIN after the
trade's deadline cancelled it (a late success, owed back), STK Query answering 4999 "still under
processing" while the buyer decides, and B2C results that carry Daraja's own ids. Once all is
quiet, the chain, the oracle's ledger and the simulator's books are held to the invariants of
``tests/trading/invariants.py``; a failure lists every trade that breaks a rule, and why.

``--chaos-trades`` and ``--chaos-kills`` (see ``tests/conftest.py``) scale the run."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair

from nishati_client.config import ClientSettings
from nishati_client.trading import Offer
from tests.harness.trading import (
    FEE_BPS,
    OPERATOR_TOKEN,
    SELLER_PHONE,
    TradingWorld,
    trading_world,
)
from tests.trading.books import quiesce, read_books, stored_trades
from tests.trading.invariants import TOLERATED, check, report

pytestmark = pytest.mark.rpc

CONCURRENT_ORDERS = 6
SPARE_SHARE = 0.3  # orders cut off by a kill may never be stored: spares keep the count up
MAX_ORDER_WH = 3_000
DEADLINE_SECS = 60  # the least the program allows
# As with people typing a PIN, callbacks come seconds after the push: after a restart is done,
# so one whose push answer a kill took can still find its trade.
CALLBACK_DELAY_SECS = 8.0
# After the orders, the kills go on while trades settle, pay out and are refunded.
KILLS_AFTER_ORDERS_SECS = 15.0
# From the last order: its deadline, a buyer's late PIN, the refund and its result, with room
# for restarts. Past it, what is not final is reported, not waited for.
QUIESCE_SECS = DEADLINE_SECS + 120.0
DARAJA_IDS_SELLER_PHONE = "254700123457"
REGISTER_TOGETHER = 25  # buyers' households registered on chain at once


class Buyer(StrEnum):
    """How a buyer and their M-Pesa behave; ``plan`` gives each its phone ending and rules."""

    pays = "pays"
    refuses = "refuses"  # cancelled, wrong PIN, unreachable, no balance, expired, rule limited
    odd_callback = "odd_callback"  # duplicate, dropped, late, early or reordered callback
    slow_4999 = "slow_4999"  # pays within the deadline; STK Query says 4999 meanwhile
    pin_too_late = "pin_too_late"  # pays after the deadline cancel: owed back
    pin_too_late_no_reversal = "pin_too_late_no_reversal"  # ... and Daraja refuses to reverse it


WEIGHTS = {
    Buyer.pays: 8,
    Buyer.refuses: 5,
    Buyer.odd_callback: 5,
    Buyer.slow_4999: 3,
    Buyer.pin_too_late: 2,
    Buyer.pin_too_late_no_reversal: 1,
}
REFUSING = ["32", "37", "01", "11", "17", "19"]
ODD_CALLBACKS = ["90", "91", "92", "93", "94"]


def plan(kind: Buyer, phone: str, rng: random.Random) -> list[dict[str, Any]]:
    """The simulator's rules for this buyer's phone."""
    if kind is Buyer.slow_4999:
        decide = rng.uniform(5.0, DEADLINE_SECS - 12.0)
        return [{"phone": phone, "pending_reply": "4999", "decide_after_secs": decide}]
    if kind in (Buyer.pin_too_late, Buyer.pin_too_late_no_reversal):
        late = {
            "phone": phone,
            "result_code": 0,
            "decide_after_secs": DEADLINE_SECS + rng.uniform(4.0, 15.0),
            "pending_reply": rng.choice(["4999", "500.001.1001"]),
        }
        if kind is Buyer.pin_too_late:
            return [late]
        # 2006: the account rule refuses it; the buyer is paid back by B2C instead.
        return [late, {"api": "reversal", "phone": phone, "result_code": 2006}]
    return []


def suffix(kind: Buyer, rng: random.Random) -> str:
    if kind is Buyer.refuses:
        return rng.choice(REFUSING)
    if kind is Buyer.odd_callback:
        return rng.choice(ODD_CALLBACKS)
    return "00"


@dataclass(frozen=True)
class Order:
    phone: str
    kind: Buyer
    offer: Offer
    wh: int


@pytest.fixture
def trades(request: pytest.FixtureRequest) -> int:
    found: int = request.config.getoption("chaos_trades")
    return found


@pytest.fixture
def kills(request: pytest.FixtureRequest) -> int:
    found: int = request.config.getoption("chaos_kills")
    return found


def offer_wh(trades: int) -> int:
    """Enough on each of the two offers for every order, spares included, to go to one."""
    return int(trades * (1 + SPARE_SHARE)) * MAX_ORDER_WH


@pytest.fixture
async def world(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path, trades: int
) -> AsyncIterator[TradingWorld]:
    sim: dict[str, object] = {"callback_delay_secs": CALLBACK_DELAY_SECS, "long_delay_secs": 6.0}
    async with trading_world(
        rpc_url,
        rpc_payer,
        settings,
        tmp_path,
        offer_wh=offer_wh(trades),
        deadline_secs=DEADLINE_SECS,
        sim_settings=sim,
    ) as started:
        yield started


async def test_random_kills_lose_nothing_and_double_nothing(
    world: TradingWorld, trades: int, kills: int
) -> None:
    rng = random.Random(20261203)  # noqa: S311 - a reproducible test, not cryptography
    # A second seller, whose payouts' results carry Daraja's own OriginatorConversationID.
    daraja_ids_seller, daraja_ids_offer = await world.seller_with_offer(
        DARAJA_IDS_SELLER_PHONE, offer_wh(trades)
    )
    await world.sim_control(
        "/simulator/scenario",
        {"api": "b2c", "phone": DARAJA_IDS_SELLER_PHONE, "result_ids": "daraja"},
    )
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    orders: list[Order] = []
    for _ in range(int(trades * (1 + SPARE_SHARE))):
        kind = rng.choices(kinds, weights)[0]
        phone = world.phone(suffix(kind, rng))
        offer = rng.choice([world.offer, daraja_ids_offer])
        orders.append(Order(phone, kind, offer, rng.randrange(1_000, MAX_ORDER_WH)))
        for rule in plan(kind, phone, rng):
            await world.sim_control("/simulator/scenario", rule)
    for first in range(0, len(orders), REGISTER_TOGETHER):
        batch = orders[first : first + REGISTER_TOGETHER]
        await asyncio.gather(*(world.buyer(o.phone) for o in batch))
    queue: asyncio.Queue[Order] = asyncio.Queue()
    for order in orders:
        queue.put_nowait(order)
    unanswered = 0

    async def customer() -> None:
        nonlocal unanswered
        async with httpx.AsyncClient(
            base_url=world.oracle.url, timeout=30, headers=world.http.headers
        ) as http:
            while not queue.empty() and await stored_trades(world) < trades:
                order = queue.get_nowait()
                body = {"offer": str(order.offer.address), "wh": order.wh, "phone": order.phone}
                try:
                    await http.post("/api/v1/trades", json=body)
                except httpx.ConnectError:
                    # Never reached the oracle (it is down): safe to send again.
                    queue.put_nowait(order)
                    await asyncio.sleep(0.3)
                except httpx.HTTPError:
                    # Cut off mid-request: whether the trade exists is the oracle's to say.
                    unanswered += 1

    killed = 0

    async def chaos(orders_done: asyncio.Event) -> None:
        nonlocal killed
        stop_at = float("inf")
        while time.monotonic() < stop_at or killed < kills:
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            await asyncio.to_thread(world.oracle.kill)
            killed += 1
            await asyncio.to_thread(world.oracle.start)
            if orders_done.is_set() and stop_at == float("inf"):
                stop_at = time.monotonic() + KILLS_AFTER_ORDERS_SECS

    orders_done = asyncio.Event()
    killer = asyncio.create_task(chaos(orders_done))
    started = time.monotonic()
    await asyncio.gather(*(customer() for _ in range(CONCURRENT_ORDERS)))
    ordering_secs = time.monotonic() - started
    orders_done.set()
    await killer
    quiet = await quiesce(world, within_secs=QUIESCE_SECS)
    # The day's reconciliation: a PIN typed after the deadline whose callback a kill took is
    # found by the STK Query, and refunded.
    async with httpx.AsyncClient(base_url=world.oracle.url, timeout=30) as http:
        operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        answer = await http.post("/api/v1/operator/reconcile", headers=operator)
    assert answer.status_code == 200, answer.text
    quiet += await quiesce(world, within_secs=QUIESCE_SECS)

    sellers = {str(world.seller.address): SELLER_PHONE}
    sellers[str(daraja_ids_seller.address)] = DARAJA_IDS_SELLER_PHONE
    offers = [world.offer, daraja_ids_offer]
    books = await read_books(world, sellers, offers, offer_wh(trades), FEE_BPS)
    found = check(books)
    failed = [v for v in found if v.rule not in TOLERATED]
    kind_of = {o.phone: o.kind for o in orders}
    phone_of = {a: p for a, p in books.phones.items() if p in kind_of}
    mix: dict[str, int] = {}
    states: dict[str, int] = {}
    for t in books.trades:
        key = kind_of[phone_of[t.buyer]]
        mix[key] = mix.get(key, 0) + 1
        states[t.state] = states.get(t.state, 0) + 1
    print(
        f"\n{len(books.trades)} trades ({mix}) in {ordering_secs:.0f} s of orders, {killed} "
        f"kills, {unanswered} orders unanswered, quiet after {quiet:.0f} s"
        f"\nfinal states {states}; {len(books.reversals)} reversals, "
        f"{sum(p.paid and p.phone in kind_of for p in books.payouts)} B2C refunds paid"
        f"\n{report(found) or 'every invariant holds'}"
    )
    assert not failed, "\n" + report(failed)
    assert killed >= kills
    assert len(books.trades) >= trades
