"""A trading day's three books read as they stand (the oracle's ledger, the Daraja simulator's,
the chain), for :func:`tests.trading.invariants.check`, and waiting for the day to quiesce;
from any ledger database a :class:`Day` can query (SQLite or PostgreSQL: the SQL is plain)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from solders.pubkey import Pubkey

from nishati_client.trading import Offer
from nishati_dev.sandbox import Member, OpenMarket
from nishati_oracle.trading.ledger import FINAL_STATES
from tests.trading.invariants import (
    Books,
    LedgerTrade,
    OfferBooks,
    SimPayment,
    SimPayout,
    SimReversal,
)

# Quiet: every trade final and nothing due in the simulator, twice this far apart.
QUIET_SECS = 3.0
LEDGER_COLUMNS = (
    "id, state, offer, seller, buyer, wh, total_cents, fee_cents, payout_kes, "
    "checkout_request_id, mpesa_receipt, payout_receipt, refund_receipt"
)


class Day(Protocol):
    """A trading day's market, its buyers by phone, its ledger and its Daraja simulator."""

    market: OpenMarket
    buyers: dict[str, Member]

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` on the oracle's database."""
        ...

    async def sim_control(self, path: str, body: Any = None) -> Any: ...


async def trade_states(day: Day) -> dict[str, str]:
    """Trade id -> state, from the ledger."""
    return {row[0]: row[1] for row in await day.query("SELECT id, state FROM trades")}


async def stored_trades(day: Day) -> int:
    [(count,)] = await day.query("SELECT count(*) FROM trades")
    return int(count)


async def unprocessed_payments(day: Day) -> int:
    """STK callbacks the oracle stored but has not acted on yet (a result matching no payout
    or refund is kept a while before it is dropped: it moves no money)."""
    sql = "SELECT count(*) FROM callbacks WHERE processed_at IS NULL AND kind = 'stk'"
    [(count,)] = await day.query(sql)
    return int(count)


async def quiesce(day: Day, within_secs: float) -> float:
    """Waits until every trade is final, the simulator has nothing left to do (no decision,
    callback or status answer due, no callback held) and the oracle has acted on every
    payment's callback it stored, the same twice ``QUIET_SECS`` apart;
    or ``within_secs``, after which :func:`check` reports what is still moving. How long it
    took."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < within_secs:
        states = await trade_states(day)
        books = await day.sim_control("/simulator/transactions")
        now: object = (
            sorted(states.items()),
            len(books["reversals"]),
            len(books["payouts"]),
        )
        busy = books["pending_work"] or books["held"] or await unprocessed_payments(day)
        if not busy and set(states.values()) <= FINAL_STATES:
            if now == last:
                break
            last = now
        else:
            last = None
        await asyncio.sleep(QUIET_SECS if last is not None else 1.0)
    return time.monotonic() - started


async def read_books(
    day: Day, sellers: dict[str, str], offers: list[Offer], initial_wh: int, fee_bps: int
) -> Books:
    """The three books as they stand; ``sellers`` maps each seller's household to its phone,
    each of ``offers`` started with ``initial_wh``, and the market takes ``fee_bps``."""
    rows = await day.query(f"SELECT {LEDGER_COLUMNS}, trade_address FROM trades")  # noqa: S608
    trades = [LedgerTrade(*row[:-1]) for row in rows]
    addresses = {row[0]: row[-1] for row in rows}
    sim = await day.sim_control("/simulator/transactions")
    deliveries = await day.sim_control("/simulator/callbacks?kind=stk")
    reached = {d["reference"] for d in deliveries if d["outcome"] == "delivered"}
    phones = {str(m.address): phone for phone, m in day.buyers.items()} | sellers
    client = day.market.h.client
    on_chain = await client.trades_at([Pubkey.from_string(addresses[t.id]) for t in trades])
    held = await asyncio.gather(*(day.market.balance(m) for m in day.buyers.values()))
    offer_books = []
    for offer in offers:
        now = await client.offer(offer.address)
        escrow = await client.energy_balance(now.escrow)
        offer_books.append(
            OfferBooks(str(offer.address), initial_wh, now.reserved_wh, now.unreserved_wh, escrow)
        )
    return Books(
        trades=trades,
        phones=phones,
        held_wh={str(m.address): wh for m, wh in zip(day.buyers.values(), held, strict=True)},
        open_accounts={t.id for t, a in zip(trades, on_chain, strict=True) if a is not None},
        offers=offer_books,
        payments=[
            SimPayment(
                p["checkout_request_id"], p["phone"], p["amount"], p["result_code"], p["receipt"]
            )
            for p in sim["stk"]
        ],
        payouts=[
            SimPayout(
                p["originator_conversation_id"],
                p["phone"],
                p["amount"],
                p["paid"],
                p["transaction_id"],
            )
            for p in sim["payouts"]
        ],
        reversals=[
            SimReversal(
                r["conversation_id"], r["transaction_id"], r["amount"], r["reversed"], r["receipt"]
            )
            for r in sim["reversals"]
        ],
        fee_bps=fee_bps,
        undelivered={p["checkout_request_id"] for p in sim["stk"]} - reached,
    )
