"""The durable side of trading: one row per trade with its state, its history, every callback
exactly as it came, and the phone directory (numbers encrypted, found by commitment).

Every state change is a compare-and-set (``UPDATE ... WHERE state IN (...)``) written together
with its history row, so two workers, a replayed callback or a restart can never move a trade
twice. Tables in ``storage.schema``, on the same engine as the readings.

Several oracle replicas may share one database: each trade (and each callback) is acted on by
one of them at a time. A replica's worker claims what it acts on (:meth:`Ledger.due`,
:meth:`Ledger.claim`, :meth:`Ledger.claim_callbacks`): the claim names the replica and lasts
``claim_secs``; another replica skips it (on PostgreSQL, rows being claimed are skipped too,
``FOR UPDATE SKIP LOCKED``) until it is released at the end of the round or runs out, so a dead
replica's trades are taken over once their claims end.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from functools import partial
from typing import Any

import structlog
from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Table

from nishati_oracle.storage.schema import (
    callbacks,
    operator_actions,
    phones,
    reconciliations,
    trade_history,
    trades,
)
from nishati_oracle.storage.writer import Positional, SqliteWriter

log = structlog.get_logger(__name__)


class TradeState(StrEnum):
    """Where a trade is; see ``docs/payments.md`` for the diagram."""

    created = "created"  # stored; trade_open not yet confirmed
    opened = "opened"  # pending payment on chain; the STK Push may be on its way
    stk_sent = "stk_sent"  # Daraja took the push: a CheckoutRequestID to wait on
    paid = "paid"  # STK Query confirmed it; amount and phone matched
    settled = "settled"  # escrow released to the buyer on chain
    payout_sent = "payout_sent"  # B2C accepted by Daraja
    cancelling = "cancelling"  # payment failed or expired: the on-chain cancel is due
    # Paid, but the chain closed the trade without settling it (or the payment came after the
    # cancel): the buyer is refunded.
    refund_due = "refund_due"
    refunding = "refunding"  # a reversal (or a B2C refund) is on its way
    # Final states.
    payout_confirmed = "payout_confirmed"
    cancelled = "cancelled"
    rejected = "rejected"  # never opened on chain
    refunded = "refunded"  # the buyer has their money back (``refund_receipt``)
    closed = "closed"  # an operator closed a trade that needed a person (``operator_actions``)
    # Final until a person acts (``trading.attention``):
    payout_failed = "payout_failed"  # every attempt at paying the seller failed
    # No result for the payout after every Transaction Status query: paid or not, unknown.
    payout_unknown = "payout_unknown"
    # The buyer could not be refunded: the reversal and the B2C refund were refused, or
    # their outcome stayed unknown.
    refund_failed = "refund_failed"
    # A success callback is kept that the STK Query neither confirmed nor refuted, past the
    # deadline and its hold: the trade stays open on chain.
    payment_unknown = "payment_unknown"
    # The account at the trade's address is not the trade the ledger recorded (its buyer,
    # energy, total, payment reference or offer differ): nothing is sent; a person must look.
    flagged = "flagged"


# The states in which a trade waits for a person: listed for operators, who may retry or close.
NEEDS_PERSON = frozenset(
    {
        TradeState.payout_failed,
        TradeState.payout_unknown,
        TradeState.refund_failed,
        TradeState.payment_unknown,
        TradeState.flagged,
    }
)

FINAL_STATES = NEEDS_PERSON | {
    TradeState.payout_confirmed,
    TradeState.cancelled,
    TradeState.rejected,
    TradeState.refunded,
    TradeState.closed,
}


# Where a trade ends without the buyer having paid for it, or with the payment given back: an
# order repeating one of these is not a repeat.
UNPAID_ENDS = frozenset(
    {
        TradeState.rejected,
        TradeState.cancelling,
        TradeState.cancelled,
        TradeState.refund_due,
        TradeState.refunding,
        TradeState.refunded,
    }
)


# Backoff between checks of one trade (its payment, its close on chain, its payout): doubling,
# capped.
MAX_BACKOFF_SECS = 60.0


# How long a replica's claim on a trade or a callback lasts: far longer than acting on one takes
# (a Daraja request, a transaction), short enough that a dead replica's trades move on soon. A
# worker stops acting on a trade once half its claim is gone (``Ledger.held``), so a slow
# round never acts on a trade another replica may have taken over.
CLAIM_SECS = 120.0
# The PostgreSQL advisory lock under which a replica checks that no reconciliation is running
# and records its own.
RECONCILIATION_LOCK = 0x4E495348
# Who a replica is in its claims, when not named.
REPLICA_ID_BYTES = 8


def backoff(checks: int) -> float:
    return float(min(MAX_BACKOFF_SECS, 2.0 ** min(checks, 6)))


class CallbackKind(StrEnum):
    stk = "stk"
    payout_result = "payout_result"
    payout_timeout = "payout_timeout"
    refund_result = "refund_result"
    refund_timeout = "refund_timeout"

    @property
    def timeout(self) -> bool:
        return self in (CallbackKind.payout_timeout, CallbackKind.refund_timeout)


class Stored(StrEnum):
    """What became of a callback handed to the ledger."""

    new = "new"  # kept, for the worker to act on
    duplicate = "duplicate"  # the same body (or receipt) was kept already
    # Its key holds MAX_BODIES_PER_KEY other bodies already: not kept (nothing real sends more).
    over_limit = "over_limit"


# Distinct bodies kept for one callback key: Daraja sends one (now and then the same one twice);
# more are forgeries, and a few of them must not crowd out the genuine one that follows.
MAX_BODIES_PER_KEY = 5


def _insert_callback(dialect: str) -> Any:
    """Each row stored unless its body or receipt is kept already, named if it was."""
    values: dict[str, Any] = {
        "kind": bindparam("kind"),
        "key": bindparam("key"),
        "digest": bindparam("digest"),
        "receipt": bindparam("receipt"),
        "body": bindparam("body"),
        "received_at": bindparam("at"),
        # Inline: SQLite's writer binds the rows' own parameters only.
        "attempts": literal_column("0"),
    }
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(callbacks)
        .values(values)
        .on_conflict_do_nothing()
        .returning(callbacks.c.kind, callbacks.c.key, callbacks.c.digest)
    )


# How many bodies each of some keys holds already.
_KEPT = (
    select(callbacks.c.kind, callbacks.c.key, func.count(callbacks.c.id).label("n"))
    .where(callbacks.c.key.in_(bindparam("keys", expanding=True)))
    .group_by(callbacks.c.kind, callbacks.c.key)
)


Row = tuple[str, str, str]  # a callback's kind, key and digest


def _split_by_room(
    rows: Sequence[dict[str, Any]], kept: dict[tuple[str, str], int]
) -> tuple[list[dict[str, Any]], list[Row]]:
    """The rows their key has room for, and those of a full key (``kept`` counts each key's
    bodies, and is counted on)."""
    room, full = [], []
    for row in rows:
        kind_key = (row["kind"], row["key"])
        if kept.get(kind_key, 0) >= MAX_BODIES_PER_KEY:
            full.append((row["kind"], row["key"], row["digest"]))
        else:
            kept[kind_key] = kept.get(kind_key, 0) + 1
            room.append(row)
    return room, full


def _insert_each(
    insert: Positional, rows: Sequence[dict[str, Any]], cursor: Any
) -> tuple[list[Row], list[Row]]:
    """The rows ``insert`` let in, one statement a row (the driver's executemany returns none),
    and those not sent because their key is full. The writer thread is SQLite's only writer, so
    the counts read here hold until the transaction ends."""
    keys = sorted({row["key"] for row in rows})
    marks = ",".join("?" * len(keys))
    counted = cursor.execute(
        f"SELECT kind, key, count(*) FROM callbacks WHERE key IN ({marks}) "  # noqa: S608
        "GROUP BY kind, key",
        keys,
    ).fetchall()
    room, full = _split_by_room(rows, {(str(kind), str(key)): int(n) for kind, key, n in counted})
    added = [
        (str(kind), str(key), str(digest))
        for row in room
        for kind, key, digest in cursor.execute(insert.sql, insert.values(row)).fetchall()
    ]
    return added, full


# A callback's trade: an STK callback's key is its CheckoutRequestID, a payout's or refund's
# result by Daraja's ConversationID of the request it answers (a send or a Transaction Status
# query), else by our OriginatorConversationID (``gateway._key``).
_has_trade = exists().where(
    or_(
        *(
            column == callbacks.c.key
            for column in (
                trades.c.checkout_request_id,
                trades.c.payout_conversation_id,
                trades.c.payout_originator_id,
                trades.c.refund_conversation_id,
                trades.c.refund_originator_id,
                trades.c.status_conversation_id,
            )
        )
    )
)


@dataclass(frozen=True)
class TradeRecord:
    id: str
    state: TradeState
    market: str
    offer: str
    seller: str
    buyer: str
    trade_address: str
    payment_ref_hash: bytes
    wh: int
    price_cents_per_kwh: int
    total_cents: int
    fee_cents: int
    payout_kes: int
    buyer_phone: bytes
    buyer_phone_hash: str
    seller_phone: bytes
    deadline: int | None
    give_up_at: float | None
    merchant_request_id: str | None
    checkout_request_id: str | None
    mpesa_receipt: str | None
    result_code: int | None
    result_desc: str | None
    chain_signature: str | None
    payout_conversation_id: str | None
    payout_receipt: str | None
    queries: int
    next_check_at: float
    created_at: float
    updated_at: float
    # The offer's trade counter the trade was opened at (its address derives from it).
    trade_index: int | None = None
    payout_attempts: int = 0
    payout_originator_id: str | None = None
    status_conversation_id: str | None = None
    refund_method: str | None = None
    refund_originator_id: str | None = None
    refund_conversation_id: str | None = None
    refund_accepted_at: float | None = None
    refund_attempts: int = 0
    refund_receipt: str | None = None
    # The order's Idempotency-Key, the digest of what was ordered, the answer it was given.
    idempotency_key: str | None = None
    request_digest: str | None = None
    answer_status: int | None = None
    answer_body: bytes | None = None

    @property
    def amount_kes(self) -> int:
        """What the buyer pays: the chain rounds totals up to whole shillings."""
        return self.total_cents // 100

    @property
    def payout_ids(self) -> frozenset[str]:
        """The ids Daraja knows the current payout attempt by: ours (the trade's id for a
        payout recorded before attempts had ids) and the ConversationID its reply gave."""
        ours = self.payout_originator_id or self.id
        return frozenset(i for i in (ours, self.payout_conversation_id) if i)

    @property
    def refund_ids(self) -> frozenset[str]:
        return frozenset(i for i in (self.refund_originator_id, self.refund_conversation_id) if i)

    @classmethod
    def from_row(cls, row: Any) -> TradeRecord:
        return cls.from_values(row._asdict())

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> TradeRecord:
        """The trade in ``values`` (a row's columns: its claim, if any, is left out)."""
        known = {name: values[name] for name in TRADE_COLUMNS if name in values}
        return cls(**{**known, "state": TradeState(values["state"])})


@dataclass(frozen=True)
class HistoryEntry:
    at: float
    state: TradeState
    detail: str | None


@dataclass(frozen=True)
class NewCallback:
    kind: CallbackKind
    key: str
    receipt: str | None
    body: bytes  # encrypted
    digest: str  # keyed digest of the body as received (``PhoneVault.digest``)


@dataclass(frozen=True)
class StoredCallback:
    id: int
    kind: CallbackKind
    key: str
    receipt: str | None
    body: bytes
    received_at: float
    attempts: int


def _callback_due(now: float) -> ColumnElement[bool]:
    return and_(
        callbacks.c.processed_at.is_(None),
        or_(callbacks.c.retry_at.is_(None), callbacks.c.retry_at <= now),
    )


# New ones first: callbacks retried (unknown ones) never hold up a fresh one. Then those with a
# trade: a backlog of callbacks nobody knows, stored faster than the worker parks them, never
# holds up a real trade's.
_CALLBACK_ORDER = (callbacks.c.attempts, ~_has_trade, callbacks.c.id)

TRADE_COLUMNS = [f.name for f in fields(TradeRecord)]
_TRADE_COLUMNS = tuple(trades.c[name] for name in TRADE_COLUMNS)
_STORED_COLUMNS = (
    callbacks.c.id,
    callbacks.c.kind,
    callbacks.c.key,
    callbacks.c.receipt,
    callbacks.c.body,
    callbacks.c.received_at,
    callbacks.c.attempts,
)


def _stored(r: Any) -> StoredCallback:
    return StoredCallback(
        r.id, CallbackKind(r.kind), r.key, r.receipt, r.body, r.received_at, r.attempts
    )


def _claimable(table: Table, replica: str, now: float) -> ColumnElement[bool]:
    """Rows nobody holds a claim on now (or ``replica`` does)."""
    return or_(
        table.c.claim_until.is_(None), table.c.claim_until <= now, table.c.claimed_by == replica
    )


class Ledger:
    """The trades, their callbacks and the phones, as one oracle replica (``replica``) sees
    them: what its worker acts on, it claims first (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: SqliteWriter | None = None,
        clock: Callable[[], float] = time.time,
        observe: Callable[[TradeState], None] = lambda _: None,
        replica: str | None = None,
        claim_secs: float = CLAIM_SECS,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.observe = observe
        self.replica = replica or secrets.token_hex(REPLICA_ID_BYTES)
        self.claim_secs = claim_secs
        # The trades this replica claimed and has not released, each with its claim's end.
        self._claims: dict[str, float] = {}
        self._insert_callbacks = _insert_callback(engine.dialect.name)
        # On SQLite, callbacks are stored by its writer thread, their insert compiled once.
        self._on_writer = (
            None if writer is None else (writer, writer.compile(self._insert_callbacks))
        )

    async def create(self, trade: TradeRecord, detail: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(trades).values(**vars(trade)))
            await conn.execute(
                insert(trade_history).values(
                    trade_id=trade.id, at=trade.created_at, state=trade.state, detail=detail
                )
            )

    async def move(
        self,
        trade_id: str,
        expected: Iterable[TradeState],
        to: TradeState,
        detail: str | None = None,
        **values: Any,
    ) -> bool:
        """Moves the trade to ``to`` if it is in one of ``expected`` (compare-and-set), with
        ``values`` and a history row in the same transaction; False if it was elsewhere."""
        now = self.clock()
        values.setdefault("next_check_at", now)
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                update(trades)
                .where(and_(trades.c.id == trade_id, trades.c.state.in_(list(expected))))
                .values(state=to, updated_at=now, **values)
            )
            if moved.rowcount != 1:
                return False
            await conn.execute(
                insert(trade_history).values(trade_id=trade_id, at=now, state=to, detail=detail)
            )
        self.observe(to)
        return True

    async def update(self, trade_id: str, state: TradeState, **values: Any) -> bool:
        """Sets fields of a trade still in ``state`` (no transition, no history)."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(trades)
                .where(and_(trades.c.id == trade_id, trades.c.state == state))
                .values(updated_at=self.clock(), **values)
            )
        return changed.rowcount == 1

    async def check_later(self, trade: TradeRecord, now: float, wait: float | None = None) -> None:
        """Makes the trade due again ``wait`` after ``now`` (by default, backing off with each
        check), counting one more check."""
        wait = backoff(trade.queries) if wait is None else wait
        await self.update(
            trade.id, trade.state, queries=trade.queries + 1, next_check_at=now + wait
        )

    async def by_idempotency_key(self, key: str) -> TradeRecord | None:
        return await self._one(trades.c.idempotency_key == key)

    async def forget_key(self, trade_id: str) -> None:
        """Frees a trade's Idempotency-Key once it is kept no longer (the key may be used
        again, for another order)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(trades)
                .where(trades.c.id == trade_id)
                .values(idempotency_key=None, request_digest=None, answer_body=None)
            )

    async def record_answer(self, trade_id: str, status: int, body: bytes) -> None:
        """The answer an order was given, for a repeat with its Idempotency-Key (the first
        answer stays)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(trades)
                .where(and_(trades.c.id == trade_id, trades.c.answer_status.is_(None)))
                .values(answer_status=status, answer_body=body)
            )

    async def recent_order(
        self, phone_hash: str, offer: str, total_cents: int, since: float
    ) -> TradeRecord | None:
        """The buyer's latest order from this offer for this total since ``since`` that is
        neither refused nor cancelled, if any."""
        query = (
            select(trades)
            .where(
                and_(
                    trades.c.buyer_phone_hash == phone_hash,
                    trades.c.created_at >= since,
                    trades.c.offer == offer,
                    trades.c.total_cents == total_cents,
                    trades.c.state.not_in(list(UNPAID_ENDS)),
                )
            )
            .order_by(trades.c.created_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else TradeRecord.from_row(row)

    async def add_receipt(self, trade_id: str, receipt: str, detail: str) -> bool:
        """Records the M-Pesa receipt of a trade the STK Query confirmed paid that has none yet
        (its callback came after the confirmation), whatever state it is in now."""
        now = self.clock()
        async with self.engine.begin() as conn:
            added = await conn.execute(
                update(trades)
                .where(
                    and_(
                        trades.c.id == trade_id,
                        trades.c.result_code == 0,
                        trades.c.mpesa_receipt.is_(None),
                    )
                )
                .values(mpesa_receipt=receipt, updated_at=now)
                .returning(trades.c.state)
            )
            state = added.scalar_one_or_none()
            if state is None:
                return False
            await conn.execute(
                insert(trade_history).values(trade_id=trade_id, at=now, state=state, detail=detail)
            )
        return True

    async def get(self, trade_id: str) -> TradeRecord | None:
        return await self._one(trades.c.id == trade_id)

    async def get_many(self, trade_ids: Sequence[str]) -> dict[str, TradeRecord]:
        if not trade_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(trades).where(trades.c.id.in_(trade_ids)))
            return {t.id: t for t in (TradeRecord.from_row(row) for row in rows)}

    async def by_daraja_ids(
        self, ids: Iterable[str], reversed_receipt: str | None = None
    ) -> list[TradeRecord]:
        """The trades a Daraja result may answer: whose payout, refund or last status query
        has one of ``ids``, whose payout predates attempt ids and ``ids`` holds the trade's
        id, or whose payment is the receipt a reversal reversed. The caller tells which (with
        ``same_request``)."""
        wanted = sorted({i for i in ids if i})
        if not wanted and reversed_receipt is None:
            return []
        matches: list[ColumnElement[bool]] = [
            trades.c.payout_originator_id.in_(wanted),
            trades.c.payout_conversation_id.in_(wanted),
            trades.c.status_conversation_id.in_(wanted),
            trades.c.refund_originator_id.in_(wanted),
            trades.c.refund_conversation_id.in_(wanted),
            and_(trades.c.id.in_(wanted), trades.c.payout_originator_id.is_(None)),
        ]
        if reversed_receipt is not None:
            matches.append(trades.c.mpesa_receipt == reversed_receipt)
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(trades).where(or_(*matches)))
            return [TradeRecord.from_row(row) for row in rows]

    async def in_states(
        self, states: Iterable[TradeState], limit: int = 10_000
    ) -> list[TradeRecord]:
        """Trades in ``states``, whenever their next check is due, oldest first."""
        query = (
            select(trades)
            .where(trades.c.state.in_(list(states)))
            .order_by(trades.c.created_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [TradeRecord.from_row(row) for row in await conn.execute(query)]

    async def cancelled_unrefuted(self, since: float) -> list[TradeRecord]:
        """Trades cancelled (created since ``since``) whose payment may have been made after
        all: a callback reporting a payment is kept (the STK Query should have refuted it), or
        the cancel came at the deadline with the STK Query still undecided (the buyer may have
        typed the PIN later, and its callback been lost)."""
        query = select(trades).where(
            and_(
                trades.c.state == TradeState.cancelled,
                trades.c.created_at >= since,
                trades.c.checkout_request_id.is_not(None),
                or_(
                    trades.c.result_code.is_(None),
                    exists().where(
                        and_(
                            callbacks.c.kind == CallbackKind.stk,
                            callbacks.c.key == trades.c.checkout_request_id,
                            callbacks.c.receipt.is_not(None),
                        )
                    ),
                ),
            )
        )
        async with self.engine.connect() as conn:
            return [TradeRecord.from_row(row) for row in await conn.execute(query)]

    async def act(
        self,
        trade: TradeRecord,
        to: TradeState,
        *,
        operator: str,
        action: str,
        reason: str,
        **values: Any,
    ) -> bool:
        """An operator's action on a trade: the move (compare-and-set on its state), its
        history row and the audit row naming the operator, in one transaction."""
        now = self.clock()
        values.setdefault("next_check_at", now)
        detail = f"{action} by {operator}: {reason}"[:300]
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                update(trades)
                .where(and_(trades.c.id == trade.id, trades.c.state == trade.state))
                .values(state=to, updated_at=now, **values)
            )
            if moved.rowcount != 1:
                return False
            await conn.execute(
                insert(trade_history).values(trade_id=trade.id, at=now, state=to, detail=detail)
            )
            await conn.execute(
                insert(operator_actions).values(
                    trade_id=trade.id,
                    at=now,
                    operator=operator,
                    action=action,
                    reason=reason,
                    from_state=trade.state,
                    to_state=to,
                )
            )
        self.observe(to)
        return True

    async def actions(self, trade_id: str) -> list[dict[str, Any]]:
        """What operators did to a trade, oldest first."""
        query = (
            select(
                operator_actions.c.at,
                operator_actions.c.operator,
                operator_actions.c.action,
                operator_actions.c.reason,
                operator_actions.c.from_state,
                operator_actions.c.to_state,
            )
            .where(operator_actions.c.trade_id == trade_id)
            .order_by(operator_actions.c.id)
        )
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def last_reconciliation(self) -> float | None:
        """When the last reconciliation started, if one ever did."""
        query = select(func.max(reconciliations.c.started_at))
        async with self.engine.connect() as conn:
            started: float | None = (await conn.execute(query)).scalar()
        return started

    async def begin_reconciliation(self, started_at: float, none_since: float | None) -> int | None:
        """Records a reconciliation starting at ``started_at``, unless one (by any replica)
        started after ``none_since``: its row's id, or None.

        The check and the insert are one statement, which SQLite runs under its write lock (a
        check made before it would not be). On PostgreSQL, where two such statements can both
        see no row, an advisory lock makes them one step for all replicas."""
        row = select(literal(started_at), literal(0), literal(0))
        if none_since is not None:
            recent = select(reconciliations.c.id).where(reconciliations.c.started_at > none_since)
            row = row.where(~exists(recent))
        begin = (
            insert(reconciliations)
            .from_select(["started_at", "asked", "mismatches"], row)
            .returning(reconciliations.c.id)
        )
        async with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(RECONCILIATION_LOCK)))
            begun = (await conn.execute(begin)).scalar_one_or_none()
        return None if begun is None else int(begun)

    async def record_reconciliation(
        self, reconciliation_id: int, asked: int, mismatches: int
    ) -> None:
        """What a reconciliation begun with :meth:`begin_reconciliation` asked and found."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(reconciliations)
                .where(reconciliations.c.id == reconciliation_id)
                .values(asked=asked, mismatches=mismatches)
            )

    async def by_checkout(self, checkout_request_id: str) -> TradeRecord | None:
        return await self._one(trades.c.checkout_request_id == checkout_request_id)

    async def claimants(
        self, checkout_request_ids: Sequence[str], cancelled_since: float
    ) -> tuple[dict[str, TradeRecord], list[TradeRecord]]:
        """The trades with these CheckoutRequestIDs, and the trades still without one that a
        callback may claim: opened ones, and those made since ``cancelled_since`` that were
        given up on at their deadline (the buyer may have typed the PIN late). One statement,
        so one snapshot: a trade whose push is answered meanwhile shows in one list or the
        other, never in neither."""
        given_up = (TradeState.cancelling, TradeState.cancelled)
        unclaimed = and_(
            trades.c.checkout_request_id.is_(None),
            or_(
                trades.c.state == TradeState.opened,
                and_(trades.c.state.in_(given_up), trades.c.created_at >= cancelled_since),
            ),
        )
        query = select(trades).where(
            or_(trades.c.checkout_request_id.in_(checkout_request_ids), unclaimed)
        )
        async with self.engine.connect() as conn:
            found = [TradeRecord.from_row(row) for row in await conn.execute(query)]
        known = {t.checkout_request_id: t for t in found if t.checkout_request_id is not None}
        return known, [t for t in found if t.checkout_request_id is None]

    async def _one(self, where: Any) -> TradeRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(trades).where(where))).first()
        return None if row is None else TradeRecord.from_row(row)

    async def due(
        self, states: Sequence[TradeState], limit: int = 256, now: float | None = None
    ) -> list[TradeRecord]:
        """Trades in ``states`` whose next check is due, oldest first, claimed for this replica
        in the same statement: none that another replica holds a claim on (or, on PostgreSQL,
        is claiming this moment)."""
        now = self.clock() if now is None else now
        chosen = (
            select(trades.c.id)
            .where(
                and_(
                    trades.c.state.in_(list(states)),
                    trades.c.next_check_at <= now,
                    _claimable(trades, self.replica, now),
                )
            )
            .order_by(trades.c.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            claimed = await self._claim_where(conn, trades.c.id.in_(chosen), now)
        return sorted(claimed, key=lambda t: t.next_check_at)

    async def claim(self, trade_id: str) -> bool:
        """Claims one trade for this replica; False if another replica holds it."""
        now = self.clock()
        async with self.engine.begin() as conn:
            where = and_(trades.c.id == trade_id, _claimable(trades, self.replica, now))
            return bool(await self._claim_where(conn, where, now))

    async def _claim_where(
        self, conn: AsyncConnection, where: ColumnElement[bool], now: float
    ) -> list[TradeRecord]:
        until = now + self.claim_secs
        result = await conn.execute(
            update(trades)
            .where(where)
            .values(claimed_by=self.replica, claim_until=until)
            .returning(*_TRADE_COLUMNS)
        )
        claimed = [TradeRecord.from_row(row) for row in result]
        for trade in claimed:
            self._claims[trade.id] = until
        return claimed

    def held(self, trade: TradeRecord) -> bool:
        """Whether this replica's claim on ``trade`` still leaves time to act on it (more than
        half of it is left)."""
        until = self._claims.get(trade.id, -math.inf)
        return self.clock() < until - self.claim_secs / 2

    def while_held(self, claimed: Iterable[TradeRecord]) -> Iterator[TradeRecord]:
        """``claimed`` in order, up to the first whose claim has too little time left: the
        rest are left for the next round (this replica's, or another's once they run out)."""
        for trade in claimed:
            if not self.held(trade):
                log.warning("claims running out, leaving the rest to the next round")
                return
            yield trade

    async def release_claims(self) -> None:
        """Releases every claim this replica holds on trades (its round is over)."""
        held = sorted(self._claims)
        self._claims.clear()
        if not held:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(trades)
                .where(and_(trades.c.id.in_(held), trades.c.claimed_by == self.replica))
                .values(claimed_by=None, claim_until=None)
            )

    async def history(self, trade_id: str) -> list[HistoryEntry]:
        query = (
            select(trade_history.c.at, trade_history.c.state, trade_history.c.detail)
            .where(trade_history.c.trade_id == trade_id)
            .order_by(trade_history.c.id)
        )
        async with self.engine.connect() as conn:
            return [
                HistoryEntry(row.at, TradeState(row.state), row.detail)
                for row in await conn.execute(query)
            ]

    async def with_history(self, trade_id: str) -> tuple[TradeRecord, list[HistoryEntry]] | None:
        """A trade and its history as of one moment: one statement reads both, so a move
        between two reads never shows a history ahead of the state."""
        query = (
            select(
                trades,
                trade_history.c.at.label("history_at"),
                trade_history.c.state.label("history_state"),
                trade_history.c.detail.label("history_detail"),
            )
            .select_from(trades.outerjoin(trade_history, trade_history.c.trade_id == trades.c.id))
            .where(trades.c.id == trade_id)
            .order_by(trade_history.c.id)
        )
        async with self.engine.connect() as conn:
            rows = [row._asdict() for row in await conn.execute(query)]
        if not rows:
            return None
        history = [
            HistoryEntry(row["history_at"], TradeState(row["history_state"]), row["history_detail"])
            for row in rows
            if row["history_state"] is not None
        ]
        first = {k: v for k, v in rows[0].items() if not k.startswith("history_")}
        return TradeRecord.from_values(first), history

    async def note(self, trade_id: str, state: TradeState, detail: str) -> None:
        """A history row without a transition (a duplicate callback, a pending query)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(trade_history).values(
                    trade_id=trade_id, at=self.clock(), state=state, detail=detail
                )
            )

    async def store_callback(
        self, kind: CallbackKind, key: str, receipt: str | None, body: bytes, digest: str
    ) -> Stored:
        """Keeps a callback before anything acts on it (see :meth:`store_callbacks`)."""
        [stored] = await self.store_callbacks([NewCallback(kind, key, receipt, body, digest)])
        return stored

    async def store_callbacks(self, new: Sequence[NewCallback]) -> list[Stored]:
        """Keeps callbacks in one transaction: for each, whether it was new. The same body
        again (its digest kept for its key, or earlier in ``new``) or the same receipt is a
        duplicate, not stored again; a key holding MAX_BODIES_PER_KEY bodies takes no more
        (on PostgreSQL, oracles storing at once may each add one beyond the count they read)."""
        first: dict[tuple[str, str, str], int] = {}
        receipts: set[str] = set()
        rows: list[dict[str, Any]] = []
        now = self.clock()
        for index, c in enumerate(new):
            if (c.kind, c.key, c.digest) in first or (
                c.receipt is not None and c.receipt in receipts
            ):
                continue
            first[(c.kind, c.key, c.digest)] = index
            if c.receipt is not None:
                receipts.add(c.receipt)
            rows.append(
                {
                    "kind": c.kind,
                    "key": c.key,
                    "digest": c.digest,
                    "receipt": c.receipt,
                    "body": c.body,
                    "at": now,
                }
            )
        stored = [Stored.duplicate] * len(new)
        if not rows:
            return stored
        # RETURNING names exactly the rows the conflict clause let in.
        if self._on_writer is not None:
            # Daraja waits for the answer: one hand-over to the writer thread, not one per
            # statement through aiosqlite (each waiting for the event loop to let go of the GIL).
            writer, insert = self._on_writer
            added, full = await writer.run(partial(_insert_each, insert, rows))
        else:
            async with self.engine.begin() as conn:
                keys = sorted({row["key"] for row in rows})
                counted = await conn.execute(_KEPT, {"keys": keys})
                room, full = _split_by_room(rows, {(str(r.kind), str(r.key)): r.n for r in counted})
                added = []
                if room:
                    result = await conn.execute(self._insert_callbacks, room)
                    added = [(str(r.kind), str(r.key), str(r.digest)) for r in result]
        for row in added:
            stored[first[row]] = Stored.new
        for row in full:
            stored[first[row]] = Stored.over_limit
        return stored

    async def callback_bodies(self, kind: CallbackKind, key: str) -> list[StoredCallback]:
        """Every body kept for a callback key, oldest first."""
        query = (
            select(*_STORED_COLUMNS)
            .where(and_(callbacks.c.kind == kind, callbacks.c.key == key))
            .order_by(callbacks.c.id)
        )
        async with self.engine.connect() as conn:
            return [_stored(r) for r in await conn.execute(query)]

    async def pending_callbacks(
        self, limit: int = 256, now: float | None = None
    ) -> list[StoredCallback]:
        """Unprocessed callbacks due now (all of them with ``now=inf``), in the order they are
        handled (``_CALLBACK_ORDER``), whoever holds a claim on them."""
        now = self.clock() if now is None else now
        query = (
            select(*_STORED_COLUMNS)
            .where(_callback_due(now))
            .order_by(*_CALLBACK_ORDER)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_stored(r) for r in await conn.execute(query)]

    async def claim_callbacks(self, limit: int) -> list[StoredCallback]:
        """The callbacks due now that no other replica holds, in the order they are handled,
        claimed for this replica until :meth:`settle_callbacks` releases them."""
        now = self.clock()
        chosen = (
            select(callbacks.c.id)
            .where(and_(_callback_due(now), _claimable(callbacks, self.replica, now)))
            .order_by(*_CALLBACK_ORDER)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            claimed = await conn.execute(
                update(callbacks)
                .where(callbacks.c.id.in_(chosen))
                .values(claimed_by=self.replica, claim_until=now + self.claim_secs)
                .returning(callbacks.c.id)
            )
            ids = [row.id for row in claimed]
            if not ids:
                return []
            query = select(*_STORED_COLUMNS).where(callbacks.c.id.in_(ids))
            rows = await conn.execute(query.order_by(*_CALLBACK_ORDER))
            return [_stored(r) for r in rows]

    async def settle_callbacks(
        self, done: Sequence[tuple[int, str]], later: Sequence[tuple[int, float]]
    ) -> None:
        """Marks callbacks handled (with what came of them), or due again at a time; either way
        this replica's claim on them ends."""
        now = self.clock()
        released = {"claimed_by": None, "claim_until": None}
        async with self.engine.begin() as conn:
            if done:
                await conn.execute(
                    update(callbacks)
                    .where(callbacks.c.id == bindparam("callback_id"))
                    .values(processed_at=now, outcome=bindparam("result"), **released),
                    [{"callback_id": i, "result": outcome[:200]} for i, outcome in done],
                )
            if later:
                await conn.execute(
                    update(callbacks)
                    .where(callbacks.c.id == bindparam("callback_id"))
                    .values(
                        retry_at=bindparam("at"), attempts=callbacks.c.attempts + 1, **released
                    ),
                    [{"callback_id": i, "at": at} for i, at in later],
                )

    async def release_callbacks(self, key: str | None = None) -> None:
        """Makes waiting callbacks with this key (all, without one) due now: their trade has
        just learnt it, or a trade may claim one."""
        waiting: ColumnElement[bool] = callbacks.c.processed_at.is_(None)
        if key is not None:
            waiting = and_(waiting, callbacks.c.key == key)
        async with self.engine.begin() as conn:
            await conn.execute(update(callbacks).where(waiting).values(retry_at=None))

    async def enrol(self, household: str, commitment: bytes, sealed: bytes) -> None:
        """Records (or replaces) the phone of a household."""
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(phones.delete().where(phones.c.household == household))
            await conn.execute(
                insert(phones).values(
                    household=household, commitment=commitment.hex(), sealed=sealed, updated_at=now
                )
            )

    async def sealed_phone(self, household: str) -> bytes | None:
        async with self.engine.connect() as conn:
            query = select(phones.c.sealed).where(phones.c.household == household)
            sealed: bytes | None = (await conn.execute(query)).scalar_one_or_none()
        return sealed

    async def household_of(self, commitment: bytes) -> str | None:
        async with self.engine.connect() as conn:
            query = select(phones.c.household).where(phones.c.commitment == commitment.hex())
            household: str | None = (await conn.execute(query)).scalar_one_or_none()
        return household
