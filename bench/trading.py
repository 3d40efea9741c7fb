"""How fast the oracle takes Daraja's callbacks, settles paid trades on chain and finishes trades.

Run: ``.venv/bin/python -m bench.trading`` (full size) or ``--quick`` (a few minutes, for CI).
Needs the built program (``scripts/build-program.sh``) and surfpool.

Everything runs on this machine: the local validator, the Daraja simulator
(``nishati_dev.daraja_sim``) and the oracle, ``python -m nishati_oracle`` pinned to one core with
``taskset``; this process, the callback load generator, the validator and the simulator share
the other core. The oracle pays through the simulator with its default worker settings
(``NISHATI_PAYMENT_WORKER_INTERVAL_SECS`` 1 s; the worker also wakes on each stored callback).
Measured, beside their targets:

1. callback-to-settled latency: real trades, ordered through ``POST /api/v1/trades`` a few a
   second, each paid by the simulator, which calls back; from the simulator's record of the
   callback's delivery (``at`` in ``/simulator/callbacks``, taken once the oracle answered) to
   the trade's ``settled`` entry in ``GET /api/v1/payments/{trade_id}``;
2. trades per second end to end: many buyers order at once; from the first order until every
   trade is ``payout_confirmed``, and how many trades each settle transaction carried (trades
   sharing a ``chain_signature``);
3. callback acknowledgement latency at a fixed 200 callbacks/s, open loop, from a separate
   process: each STK callback is due at its time whatever the ones before are doing, and its
   latency runs from then; Daraja-shaped bodies with fresh CheckoutRequestIDs (unknown to the
   oracle: it stores and answers them as any other) and some duplicates; then the most
   callbacks per second a few connections get answered, closed loop.

Phase 3 runs last: the oracle keeps a callback no trade claims for two minutes in case its
trade's push answer is still on its way, and its worker looks at those first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import random
import re
import secrets
import sqlite3
import string
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.harness import (
    LOAD_CORE,
    ORACLE_CORE,
    BenchOracle,
    Connection,
    arguments,
    bench_main,
    load_average,
    open_loop,
    pin,
)
from bench.stats import Report, histogram_p99, ms, percentile
from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.market import MarketConfig
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer
from nishati_dev.localday import (
    as_environment,
    enrol,
    household,
    oracle_database,
    simulator_payments,
)
from nishati_dev.localnet import LocalValidator
from nishati_dev.processes import DarajaSimService
from nishati_dev.sandbox import (
    CANCEL_GRACE_SECS,
    DAILY_MINT_CAP_WH,
    Harness,
    Member,
    OpenMarket,
    fund,
    open_market,
)
from nishati_dev.settings import LocalChainSettings
from nishati_oracle.core.settings import OracleSettings, StorageSettings
from nishati_oracle.trading.ledger import FINAL_STATES

PAYER_LAMPORTS = 100_000 * 10**9
ORACLE_LAMPORTS = 50_000 * 10**9
PHONE_SALT = bytes(range(32))
CALLBACK_TOKEN = "bench-callback-token-0123456789abcdef"  # noqa: S105 (a bench value)
# The bench reads payments as an operator.
OPERATOR_TOKEN = "bench-operator-token-0123456789abcdef"  # noqa: S105 (a bench value)
CALLBACK_PATH = f"/api/v1/payments/callback/{CALLBACK_TOKEN}"
PAYOUT_PATH = f"/api/v1/payouts/result/{CALLBACK_TOKEN}"
FEE_BPS = 150
PRICE = 2_500  # cents per kWh
BUY_WH = 2_000  # KES 50 a trade
SELLERS = 4
PAYMENT_DEADLINE_SECS = 900
# The simulator: callbacks 0.2 s after a push or payout is accepted (as the trading tests),
# no "same amount within 2 minutes" refusals.
SIM_SETTINGS: dict[str, object] = {"callback_delay_secs": 0.2, "same_amount_window_secs": 0}
# Phase 1 orders this many trades a second, one request each, open loop.
ORDER_RATE = 2.0
# Buyers register this many at a time (setup).
REGISTERING = 8
FINAL = {str(state) for state in FINAL_STATES}
SETTLED_OR_LATER = {"settled", "payout_sent"} | FINAL

CALLBACK_RATE = 200
# Connections the fixed-rate callbacks come over (Daraja's senders), and the closed loop's.
OPEN_CONNECTIONS = 32
CLOSED_CONNECTIONS = (1, 8)
# Every this many callbacks, one repeats an earlier one (Daraja sends some twice).
DUPLICATE_EVERY = 20
# Share of the fixed-rate callbacks that report a failure (1032, no CallbackMetadata).
FAILED_SHARE = 0.1
# How long after the last callback was due the fixed-rate run waits for answers.
GRACE_SECS = 10.0

# Trades ordered once the callback load is over, with the unknown callbacks it left kept.
AFTER_LOAD_TRADES = 3

TARGET_ACK_P99_MS = 20.0
TARGET_SETTLE_P99_SECS = 2.0


@dataclass(frozen=True)
class Scale:
    name: str
    settle_trades: int
    burst_trades: int
    ack_secs: float
    closed_secs: float


FULL = Scale("full", settle_trades=50, burst_trades=100, ack_secs=30.0, closed_secs=10.0)
QUICK = Scale("quick", settle_trades=20, burst_trades=30, ack_secs=10.0, closed_secs=5.0)


# The market day


def market_config(oracle: Pubkey) -> MarketConfig:
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=FEE_BPS,
        min_price_cents_per_kwh=1_000,
        max_price_cents_per_kwh=5_000,
        payment_deadline_secs=PAYMENT_DEADLINE_SECS,
        cancel_grace_secs=CANCEL_GRACE_SECS,
        # Sellers' energy mints in seconds of the validator's clock, not hours.
        max_export_watts=100_000_000,
        daily_mint_cap_wh=DAILY_MINT_CAP_WH,
        max_open_trades_per_buyer=1_000,
    )


def buyer_phone(i: int) -> str:
    """A phone of its own ending in 00: the simulator pays, calling back once."""
    return f"2547{i:06d}00"


def seller_phone(i: int) -> str:
    """Ending in 56: the simulator's B2C pays the seller and sends the result once."""
    return f"2547{900_000 + i:06d}56"


@dataclass
class Day:
    market: OpenMarket
    offers: list[Offer]
    oracle: BenchOracle
    sim: DarajaSimService
    http: httpx.AsyncClient
    database: Path
    buyers: list[str] = field(default_factory=list)

    def states(self, trade_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """Trade id -> (state, chain signature), read from the oracle's database (read-only:
        polling its API would load the core it is measured on)."""
        wanted = set(trade_ids)
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT id, state, chain_signature FROM trades").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows if row[0] in wanted}

    async def wait_for(self, trade_ids: Sequence[str], states: set[str], within: float) -> float:
        """Waits until every trade is in one of ``states``; returns when that was seen (wall)."""
        deadline = time.monotonic() + within
        while True:
            found = self.states(trade_ids)
            if all(found.get(t, ("", None))[0] in states for t in trade_ids):
                return time.time()
            if time.monotonic() > deadline:
                behind = Counter(s for s, _ in found.values() if s not in states)
                raise RuntimeError(f"trades still unfinished after {within:g} s: {dict(behind)}")
            await asyncio.sleep(0.02)

    async def buy(self, phone: str, offer: Offer) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        body = {"offer": str(offer.address), "wh": BUY_WH, "phone": phone}
        # A buyer buys the same again in each phase: each order is a new one, by its key.
        key = {"Idempotency-Key": secrets.token_hex(16)}
        answer = await self.http.post("/api/v1/trades", json=body, headers=key)
        return time.perf_counter() - started, answer

    async def payment(self, trade_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/api/v1/payments/{trade_id}")
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    async def payout_result(self) -> dict[str, Any]:
        """A B2C result the simulator delivered, as it sent it."""
        async with httpx.AsyncClient(base_url=self.sim.url, timeout=60) as sim:
            answer = await sim.get("/simulator/callbacks", params={"kind": "b2c_result"})
            answer.raise_for_status()
        body: dict[str, Any] = next(r["body"] for r in answer.json() if r["outcome"] == "delivered")
        return body

    async def delivered(self) -> dict[str, float]:
        """CheckoutRequestID -> when the simulator's first STK callback for it was answered."""
        async with httpx.AsyncClient(base_url=self.sim.url, timeout=60) as sim:
            answer = await sim.get("/simulator/callbacks", params={"kind": "stk"})
            answer.raise_for_status()
        first: dict[str, float] = {}
        for record in answer.json():
            if record["outcome"] == "delivered":
                first.setdefault(record["reference"], float(record["at"]))
        return first


def entered(payment: dict[str, Any], state: str) -> float | None:
    """When the trade's history first shows ``state``."""
    return next((float(h["at"]) for h in payment["history"] if h["state"] == state), None)


async def register_buyers(market: OpenMarket, count: int) -> list[str]:
    """``count`` custodial households, each with its own phone, a few registering at once."""
    gate = asyncio.Semaphore(REGISTERING)

    async def one(i: int) -> str:
        async with gate:
            await household(market, buyer_phone(i), PHONE_SALT)
        return buyer_phone(i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def sellers_with_offers(market: OpenMarket, wh: int) -> list[tuple[Member, str, Offer]]:
    made = []
    for i in range(SELLERS):
        seller = await household(market, seller_phone(i), PHONE_SALT)
        await market.mint(seller, wh)
        offer = await market.offer(seller, wh, PRICE, expires_in=3_600)
        made.append((seller, seller_phone(i), offer))
    return made


# 1. Callback to settled


@dataclass
class Orders:
    trade_ids: list[str] = field(default_factory=list)
    checkouts: dict[str, str] = field(default_factory=dict)  # trade id -> CheckoutRequestID
    latencies: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)

    def take(self, latency: float, answer: httpx.Response) -> None:
        if answer.status_code != 201:
            self.refused[f"HTTP {answer.status_code} {answer.text[:80]}"] += 1
            return
        opened = answer.json()
        self.latencies.append(latency)
        self.trade_ids.append(opened["trade_id"])
        self.checkouts[opened["trade_id"]] = opened["checkout_request_id"]

    def problems(self) -> str:
        return "; ".join(f"{n} {why}" for why, n in self.refused.most_common(3))


async def settle_latency(report: Report, day: Day, buyers: Sequence[str]) -> None:
    orders = Orders()

    async def order(i: int, phone: str) -> None:
        orders.take(*await day.buy(phone, day.offers[i % len(day.offers)]))

    cpu, started = day.oracle.cpu_secs(), time.perf_counter()
    tasks = []
    for i, phone in enumerate(buyers):
        wait = started + i / ORDER_RATE - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(order(i, phone)))
    await asyncio.gather(*tasks)
    await day.wait_for(orders.trade_ids, FINAL, within=120 + 2 * len(buyers))
    busy = (day.oracle.cpu_secs() - cpu) / (time.perf_counter() - started)
    delivered = await day.delivered()
    to_settled: list[float] = []
    to_paid: list[float] = []
    missing = 0
    for trade_id in orders.trade_ids:
        payment = await day.payment(trade_id)
        at = delivered.get(orders.checkouts[trade_id])
        settled, paid = entered(payment, "settled"), entered(payment, "paid")
        if at is None or settled is None or paid is None:
            missing += 1
            continue
        to_settled.append(settled - at)
        to_paid.append(paid - at)
    if not to_settled:
        report.add("callback to settled", "not measured", note=orders.problems())
        return
    p50, p99 = percentile(to_settled, 50), percentile(to_settled, 99)
    report.add(
        f"callback to settled, {len(to_settled)} trades, {ORDER_RATE:g} orders/s",
        f"p50 {ms(p50)}, p99 {ms(p99)}",
        f"p99 < {TARGET_SETTLE_P99_SECS:g} s",
        p99 < TARGET_SETTLE_P99_SECS,
        f"of which callback to paid (the worker's STK Query): p50 {ms(percentile(to_paid, 50))}, "
        f"p99 {ms(percentile(to_paid, 99))}; max {ms(max(to_settled))}; from the simulator's "
        f"delivery record to the history's settled entry; oracle CPU {busy:.0%}"
        + (f"; {missing} trades without a callback or settled entry" if missing else "")
        + (f"; refused orders: {orders.problems()}" if orders.refused else ""),
    )
    report.add(
        "order (POST /api/v1/trades: trade_open on chain + STK Push), one at a time",
        f"p50 {ms(percentile(orders.latencies, 50))}, p99 {ms(percentile(orders.latencies, 99))}",
    )


# 2. Trades per second


async def throughput(report: Report, day: Day, buyers: Sequence[str]) -> None:
    settles_before = (await day.oracle.metrics(day.http)).get(
        'nishati_settle_transactions_total{result="confirmed"}', 0.0
    )
    orders = Orders()
    cpu, first = day.oracle.cpu_secs(), time.time()
    answers = await asyncio.gather(
        *(day.buy(phone, day.offers[i % len(day.offers)]) for i, phone in enumerate(buyers))
    )
    ordered = time.time() - first
    for latency, answer in answers:
        orders.take(latency, answer)
    seen = await day.wait_for(orders.trade_ids, FINAL, within=180 + 2 * len(buyers))
    busy = (day.oracle.cpu_secs() - cpu) / (seen - first)
    payments = [await day.payment(t) for t in orders.trade_ids]
    confirmed = [p for p in payments if p["state"] == "payout_confirmed"]
    others = Counter(p["state"] for p in payments if p["state"] != "payout_confirmed")
    done = max((entered(p, "payout_confirmed") or seen for p in confirmed), default=seen)
    settled = max((entered(p, "settled") or seen for p in confirmed), default=seen)
    signatures = Counter(p["chain_signature"] for p in confirmed if p["chain_signature"])
    settles = (await day.oracle.metrics(day.http)).get(
        'nishati_settle_transactions_total{result="confirmed"}', 0.0
    ) - settles_before
    secs = done - first
    report.add(
        f"trades end to end, {len(buyers)} buyers at once",
        f"{len(confirmed) / secs:,.2f} trades/s",
        note=f"{len(confirmed)} of {len(buyers)} payout_confirmed {secs:,.1f} s after the first "
        f"order; all settled on chain after {settled - first:,.1f} s; orders answered within "
        f"{ordered:,.1f} s (p50 {ms(percentile(orders.latencies, 50))}, p99 "
        f"{ms(percentile(orders.latencies, 99))} each); oracle CPU {busy:.0%}"
        + (f"; refused orders: {orders.problems()}" if orders.refused else "")
        + (f"; ended otherwise: {dict(others)}" if others else ""),
    )
    if signatures:
        sizes = sorted(signatures.values(), reverse=True)
        report.add(
            "trades per settle transaction",
            f"{len(confirmed) / len(signatures):,.1f}",
            note=f"{len(signatures)} settle transactions (sizes {sizes[:12]}"
            + (" ..." if len(sizes) > 12 else "")
            + f"); the oracle's metric counts {settles:,.0f} confirmed settle/cancel transactions",
        )


# 3. Callback acknowledgements, from a separate process


def callback_body(rng: random.Random, n: int) -> bytes:
    """An STK callback as Daraja sends it; a fresh CheckoutRequestID, and a receipt when paid."""
    checkout = f"ws_CO_{time.strftime('%d%m%Y%H%M%S')}{n:09d}{rng.randrange(10**6):06d}"
    merchant = f"{rng.randrange(10**5)}-{rng.randrange(10**8)}-1"
    phone = 254700000000 + rng.randrange(10**8)
    if rng.random() < FAILED_SHARE:
        callback: dict[str, Any] = {
            "MerchantRequestID": merchant,
            "CheckoutRequestID": checkout,
            "ResultCode": 1032,
            "ResultDesc": "Request cancelled by user.",
        }
    else:
        receipt = "".join(rng.choices(string.ascii_uppercase + string.digits, k=10))
        callback = {
            "MerchantRequestID": merchant,
            "CheckoutRequestID": checkout,
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {
                "Item": [
                    {"Name": "Amount", "Value": float(rng.randrange(1, 2_000))},
                    {"Name": "MpesaReceiptNumber", "Value": receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": int(time.strftime("%Y%m%d%H%M%S"))},
                    {"Name": "PhoneNumber", "Value": phone},
                ]
            },
        }
    return json.dumps({"Body": {"stkCallback": callback}}).encode()


def payout_bodies(template: dict[str, Any], seed: int, count: int) -> list[bytes]:
    """B2C results shaped as ``template`` (one the simulator sent), each for a payout of its
    own that no trade made: the worker finishes each at once ("unmatched")."""
    bodies = []
    for n in range(count):
        result = dict(template["Result"])
        reference = f"bench{seed:04d}{n:08d}"
        result["OriginatorConversationID"] = reference
        result["ConversationID"] = f"AG_{reference}"
        result["TransactionID"] = f"B{n:09d}"[:10]
        bodies.append(json.dumps({**template, "Result": result}).encode())
    return bodies


def callback_bodies(seed: int, count: int) -> list[bytes]:
    """``count`` callbacks; every DUPLICATE_EVERY-th repeats one sent a little earlier."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    bodies: list[bytes] = []
    for n in range(count):
        if n % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:
            bodies.append(bodies[rng.randrange(max(0, n - 200), n)])
        else:
            bodies.append(callback_body(rng, seed * 10**7 + n))
    return bodies


@dataclass
class Acks:
    latencies: list[float] = field(default_factory=list)
    unanswered: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lag: float = 0.0
    secs: float = 0.0

    def take(self, answer: tuple[int, bytes] | Exception) -> None:
        if isinstance(answer, Exception):
            self.statuses[type(answer).__name__] += 1
            return
        status, content = answer
        accepted = status == 200 and json.loads(content).get("ResultCode") == 0
        self.statuses["accepted" if accepted else f"HTTP {status}"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "unanswered": self.unanswered,
            "statuses": dict(self.statuses),
            "lag": self.lag,
            "secs": self.secs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Acks:
        return cls(d["latencies"], d["unanswered"], Counter(d["statuses"]), d["lag"], d["secs"])


async def acks_at_rate(url: str, path: str, bodies: Sequence[bytes], rate: float) -> Acks:
    """``bodies`` at ``rate`` a second over OPEN_CONNECTIONS kept connections, open loop
    (:func:`bench.harness.open_loop`); those still unanswered GRACE_SECS after the last was due
    are given up."""
    acks = Acks()
    run = await open_loop(
        url, path, bodies, 1 / rate, OPEN_CONNECTIONS, GRACE_SECS, lambda _, a: acks.take(a)
    )
    acks.latencies, acks.unanswered, acks.lag, acks.secs = (
        run.latencies,
        run.unanswered,
        run.lag,
        run.secs,
    )
    return acks


async def closed_loop(url: str, seed: int, connections: int, secs: float) -> Acks:
    """``connections`` senders, each posting a fresh callback as soon as its last is answered."""
    acks = Acks()
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    loop = asyncio.get_running_loop()
    counter = iter(range(10**7))
    end = loop.time() + secs

    async def sender() -> None:
        connection = Connection(url)
        try:
            while loop.time() < end:
                content = callback_body(rng, seed * 10**7 + next(counter))
                sent = loop.time()
                try:
                    answer: tuple[int, bytes] | Exception = await connection.post(
                        CALLBACK_PATH, content
                    )
                    acks.latencies.append(loop.time() - sent)
                except (OSError, asyncio.IncompleteReadError) as error:
                    answer = error
                acks.take(answer)
        finally:
            await connection.close()

    started = loop.time()
    await asyncio.gather(*(sender() for _ in range(connections)))
    acks.secs = loop.time() - started
    return acks


def callback_load(
    pipe: Pipe, url: str, seed: int, rate: float, secs: float, payout: dict[str, Any]
) -> None:
    """The load generator's process: builds its callbacks, says it is ready, and on "stk",
    "payout" (fixed rate) or ("closed", connections, secs) runs that load and sends back what
    it saw; None ends it."""
    bodies = callback_bodies(seed, int(rate * secs))
    results = payout_bodies(payout, seed, int(rate * secs))
    pipe.send("ready")
    while (command := pipe.recv()) is not None:
        if command == "stk":
            pipe.send(asyncio.run(acks_at_rate(url, CALLBACK_PATH, bodies, rate)).as_dict())
        elif command == "payout":
            pipe.send(asyncio.run(acks_at_rate(url, PAYOUT_PATH, results, rate)).as_dict())
        else:
            _, connections, closed_secs = command
            seed += 1
            pipe.send(asyncio.run(closed_loop(url, seed, connections, closed_secs)).as_dict())


class LoadProcess:
    """:func:`callback_load` in a process of its own (spawned: no copy of this one's loop),
    on the load core like everything but the oracle; stopped by its PID."""

    def __init__(
        self, url: str, seed: int, rate: float, secs: float, payout: dict[str, Any]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(
            target=callback_load, args=(child, url, seed, rate, secs, payout), daemon=True
        )
        self.process.start()
        child.close()

    async def ask(self, command: object, within: float) -> Any:
        if command is not None:
            self.pipe.send(command)
        if not await asyncio.to_thread(self.pipe.poll, within):
            raise RuntimeError(f"the load generator did not answer {command!r}")
        return self.pipe.recv()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.pipe.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        self.pipe.close()


def callback_backlog(database: Path) -> tuple[int, int]:
    """(callbacks stored, callbacks the worker has not finished with)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        stored, pending = db.execute(
            "SELECT count(*), sum(processed_at IS NULL) FROM callbacks"
        ).fetchone()
    return int(stored or 0), int(pending or 0)


def callbacks_due(database: Path) -> int:
    """Callbacks the worker would take now (not those parked until a trade could claim them)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (due,) = db.execute(
            "SELECT count(*) FROM callbacks WHERE processed_at IS NULL"
            " AND (retry_at IS NULL OR retry_at <= ?)",
            (time.time(),),
        ).fetchone()
    return int(due)


async def worker_caught_up(report: Report, day: Day, within_secs: float = 120) -> None:
    """Waits until the worker has handled what an earlier phase left, so each phase measures
    the answer path with the worker keeping up rather than working off a backlog."""
    started = time.perf_counter()
    for _ in range(int(within_secs / 0.2)):
        if not callbacks_due(day.database):
            break
        await asyncio.sleep(0.2)
    report.step(
        "worker catching up before a callback phase",
        f"{time.perf_counter() - started:.1f} s, {callbacks_due(day.database)} still due",
    )


async def fixed_rate(
    report: Report, scale: Scale, day: Day, load: LoadProcess, kind: str, what: str
) -> None:
    """One open-loop run of ``kind`` ("stk" or "payout") callbacks at CALLBACK_RATE."""
    await worker_caught_up(report, day)
    oracle, name = day.oracle, "nishati_callback_ack_seconds"
    counted = "stk" if kind == "stk" else "payout_result"
    before = await oracle.metrics(day.http)
    cpu, started = oracle.cpu_secs(), time.perf_counter()
    with oracle.profiled(f"callbacks-{kind}-fixed-rate"):
        acks = Acks.from_dict(await load.ask(kind, within=scale.ack_secs + GRACE_SECS + 60))
    busy = (oracle.cpu_secs() - cpu) / (time.perf_counter() - started)
    after = await oracle.metrics(day.http)

    def delta(result: str) -> float:
        key = f'nishati_callbacks_total{{kind="{counted}",result="{result}"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = len(acks.latencies) + len(acks.unanswered)
    report.add_latencies(
        f"{what} at {CALLBACK_RATE}/s, open loop, {scale.ack_secs:g} s",
        acks.latencies,
        acks.unanswered,
        TARGET_ACK_P99_MS,
        f"{len(acks.latencies):,} of {requests:,} answered, "
        f"{len(acks.latencies) / max(acks.secs, 1e-9):,.0f}/s achieved"
        + (
            f" ({len(acks.unanswered):,} given up {GRACE_SECS:g} s after the last was due)"
            if acks.unanswered
            else f", max {ms(max(acks.latencies))}"
        )
        + f"; answers {dict(acks.statuses)}; the oracle counted {delta('new'):,.0f} new, "
        f"{delta('duplicate'):,.0f} duplicates; {histogram_p99(before, after, name)}; "
        f"oracle CPU {busy:.0%}; over {OPEN_CONNECTIONS} connections from a separate "
        f"process, at most {ms(acks.lag)} late",
    )
    stored, pending = callback_backlog(day.database)
    report.notes.append(
        f"after the {kind} fixed-rate run the worker had {pending:,} of {stored:,} stored "
        "callbacks unfinished"
        + (
            " (unknown CheckoutRequestIDs are kept two minutes for a trade to claim)"
            if kind == "stk"
            else " (each unknown payout result is closed at its turn: a backlog)"
        )
    )


async def acknowledgements(report: Report, scale: Scale, day: Day) -> None:
    oracle = day.oracle
    name = "nishati_callback_ack_seconds"
    template = await day.payout_result()
    seed = secrets.randbelow(1_000)
    load = LoadProcess(oracle.url, seed, CALLBACK_RATE, scale.ack_secs, template)
    try:
        await load.ask(None, within=120)
        report.step("load average before the callback phases", load_average())
        # First the B2C results (the worker closes each unknown one at once): the answer path
        # with a worker that keeps up; then STK callbacks, whose unknown ones the worker keeps.
        await fixed_rate(
            report, scale, day, load, "payout", "B2C result ack, unknown payouts (diagnostic)"
        )
        await fixed_rate(report, scale, day, load, "stk", "STK callback ack")
        for connections in CLOSED_CONNECTIONS:
            before = await oracle.metrics(day.http)
            cpu, started = oracle.cpu_secs(), time.perf_counter()
            acks = Acks.from_dict(
                await load.ask(("closed", connections, scale.closed_secs), scale.closed_secs + 60)
            )
            busy = (oracle.cpu_secs() - cpu) / (time.perf_counter() - started)
            after = await oracle.metrics(day.http)
            answered = len(acks.latencies)
            report.add(
                f"callbacks answered, closed loop, {connections} connection"
                + ("s" if connections > 1 else "")
                + f", {scale.closed_secs:g} s",
                f"{answered / acks.secs:,.0f}/s",
                note=f"latency p50 {ms(percentile(acks.latencies, 50))}, p99 "
                f"{ms(percentile(acks.latencies, 99))}; answers {dict(acks.statuses)}; "
                f"{histogram_p99(before, after, name)}; oracle CPU {busy:.0%}",
            )
    finally:
        load.stop()


async def settle_after_load(report: Report, day: Day, buyers: Sequence[str]) -> None:
    """A few more trades (the buyers again: a new phone each is not needed, the simulator's
    same-amount rule is off) while the oracle still keeps the load's unknown callbacks."""
    stored, pending = callback_backlog(day.database)
    orders = Orders()
    for i, phone in enumerate(buyers):
        orders.take(*await day.buy(phone, day.offers[i % len(day.offers)]))
    try:
        await day.wait_for(orders.trade_ids, SETTLED_OR_LATER, within=90)
    except RuntimeError as e:
        report.add(
            f"callback to settled, {len(buyers)} trades after the callback load",
            "not settled within 90 s",
            note=f"{e}; {pending:,} unknown callbacks were kept when they were ordered",
        )
        return
    delivered = await day.delivered()
    latencies = []
    for trade_id in orders.trade_ids:
        payment = await day.payment(trade_id)
        at, settled = delivered.get(orders.checkouts[trade_id]), entered(payment, "settled")
        if at is not None and settled is not None:
            latencies.append(settled - at)
    report.add(
        f"callback to settled, {len(buyers)} trades after the callback load",
        f"max {ms(max(latencies))}" if latencies else "not measured",
        note=f"ordered one after another while the worker still kept {pending:,} of the "
        f"{stored:,} callbacks stored",
    )


# The run


def log_problems(path: Path) -> Counter[str]:
    """The oracle's warnings and errors (JSON lines), by level and message."""
    found: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                found["a traceback"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            event = re.sub(r"\S*\d\S*", "<id>", str(entry.get("event")))[:120]
            found[f"{entry['level']}: {event}"] += 1
    return found


async def run(scale: Scale, directory: Path, profiles: Path | None) -> Report:
    report = Report(
        f"trading benchmark, {scale.name} size: the oracle alone on core {ORACLE_CORE}; "
        f"load, validator and Daraja simulator on core {LOAD_CORE}"
    )
    print(f"trading benchmark, {scale.name} size; logs and databases in {directory}")
    report.step("load average at start (1, 5, 15 min)", load_average())
    # Everything but the oracle shares LOAD_CORE: this process, and what it starts from here.
    pin(os.getpid(), {LOAD_CORE})
    settings = LocalChainSettings()
    program_id = Pubkey.from_string(settings.program_id)
    payer = Keypair()
    started = time.perf_counter()
    with LocalValidator(settings, {str(payer.pubkey()): PAYER_LAMPORTS}) as validator:
        report.step("local validator start", f"{time.perf_counter() - started:,.1f} s")
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        sim = DarajaSimService(SIM_SETTINGS, directory / "daraja-sim.log")
        try:
            started = time.perf_counter()
            h = Harness(chain, payer, NishatiClient(chain, program_id), None)
            market = await open_market(h, config=market_config)
            await fund(h, market.oracle.pubkey(), ORACLE_LAMPORTS)
            trades = scale.settle_trades + scale.burst_trades
            per_seller = (trades // SELLERS + 1) * BUY_WH
            sellers = await sellers_with_offers(market, per_seller)
            buyers = await register_buyers(market, trades)
            report.step(
                f"market, {SELLERS} sellers with offers, {len(buyers)} buyers",
                f"{time.perf_counter() - started:,.1f} s",
            )
            await asyncio.to_thread(sim.start)
            key = directory / "oracle.json"
            write_keypair(key, market.oracle)
            oracle = BenchOracle({}, directory / "oracle.log", profiles)
            oracle_settings = OracleSettings(
                market=str(market.address),
                oracle_keypair=key,
                chain=ClientSettings(
                    rpc_url=validator.rpc_url, phone_salt=SecretStr(PHONE_SALT.hex())
                ),
                storage=StorageSettings(database_url=oracle_database(directory)),
                payments=simulator_payments(sim.url, oracle.url, CALLBACK_TOKEN).model_copy(
                    update={"operator_token": SecretStr(OPERATOR_TOKEN)}
                ),
            )
            oracle.env.update(as_environment(oracle_settings))
            with oracle:
                if oracle.cores() != [ORACLE_CORE]:
                    report.notes.append(f"the oracle's threads may run on cores {oracle.cores()}")
                operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
                async with httpx.AsyncClient(
                    base_url=oracle.url, timeout=60, headers=operator
                ) as http:
                    for seller, phone, _ in sellers:
                        await enrol(http, seller, phone)
                    day = Day(
                        market,
                        [offer for _, _, offer in sellers],
                        oracle,
                        sim,
                        http,
                        directory / "oracle.db",
                    )
                    report.step("load average before the trades", load_average())
                    await settle_latency(report, day, buyers[: scale.settle_trades])
                    await throughput(report, day, buyers[scale.settle_trades :])
                    await acknowledgements(report, scale, day)
                    await settle_after_load(report, day, buyers[-AFTER_LOAD_TRADES:])
                problems = log_problems(oracle.log_path)
                if problems:
                    report.notes.append(
                        "the oracle logged: "
                        + "; ".join(f"{n} x {what}" for what, n in problems.most_common(5))
                    )
        finally:
            await asyncio.to_thread(sim.stop)
            await chain.close()
    return report


def main() -> None:
    args = arguments(__doc__ or "", "the fixed-rate run").parse_args()
    scale = QUICK if args.quick else FULL
    bench_main("trading", args, functools.partial(run, scale))


if __name__ == "__main__":
    main()
