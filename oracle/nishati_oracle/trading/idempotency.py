"""Idempotent orders, as Stripe does them: an order sent with an ``Idempotency-Key`` header is
carried out once, and a repeat of it (the same key and the same body) is answered with the
first one's answer; the same key with another body is refused (``IdempotencyKeyReused``).

The key is kept on the trade's row (unique), with the digest of the request and the answer it
was given, so this holds across oracle processes and restarts: two copies arriving at once in
one process share one order (the second waits for the first); across processes the database's
unique key lets one of them store the trade and the other answers from it. An order refused
before anything was stored keeps nothing, so its repeat is decided afresh; neither is a 503
kept (the worker finishes such a trade, and a repeat is answered with the trade as it stands).
A key holds for ``NISHATI_IDEMPOTENCY_KEY_SECS`` (a day) after its order; after that it is free
again (the old trade lets go of it when it is next sent).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nishati_oracle.trading.desk import KeyTaken, Refusal, TradeRefused
from nishati_oracle.trading.ledger import Ledger, TradeRecord, TradeState

# How long a repeat waits for an order another process is opening under the same key, polling
# its row, before it is answered IdempotencyKeyInUse.
WAIT_FOR_OTHER_SECS = 5.0
POLL_SECS = 0.2


@dataclass(frozen=True)
class Answer:
    """An order's answer as it was sent: its status and JSON body."""

    status: int
    body: bytes


def request_digest(route: str, canonical: str) -> str:
    """What a repeat must match: the route and the request's canonical JSON."""
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


class Idempotency:
    def __init__(
        self,
        ledger: Ledger,
        keep_secs: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.keep_secs = keep_secs
        self.clock = clock
        self._running: dict[str, asyncio.Future[None]] = {}

    async def answer(
        self,
        key: str,
        digest: str,
        order: Callable[[], Awaitable[Answer]],
        describe: Callable[[TradeRecord], Answer],
    ) -> Answer:
        """The answer of the order with this key: ``order``'s, run now unless an order with
        the key was stored before (or is running here now). ``describe`` answers with a
        trade whose order's own answer was never kept (cut off by a crash, or a 503)."""
        while True:
            running = self._running.get(key)
            if running is not None:
                # shield: this caller giving up must not cancel the first one's order.
                await asyncio.shield(running)
                continue
            kept = await self._kept(key)
            if kept is not None:
                return await self._repeat(kept, digest, describe)
            if key in self._running:
                # Another copy started its order while this one looked: it waits for that one.
                continue
            done = asyncio.get_running_loop().create_future()
            self._running[key] = done
            try:
                return await order()
            except KeyTaken:
                continue
            finally:
                del self._running[key]
                done.set_result(None)

    async def record(self, trade_id: str, answer: Answer) -> None:
        """Keeps an order's answer for its repeats, unless it is a 503 (not known yet)."""
        if answer.status != 503:
            await self.ledger.record_answer(trade_id, answer.status, answer.body)

    async def _kept(self, key: str) -> TradeRecord | None:
        kept = await self.ledger.by_idempotency_key(key)
        if kept is not None and kept.created_at < self.clock() - self.keep_secs:
            await self.ledger.forget_key(kept.id)
            return None
        return kept

    async def _repeat(
        self, kept: TradeRecord, digest: str, describe: Callable[[TradeRecord], Answer]
    ) -> Answer:
        if kept.request_digest != digest:
            raise TradeRefused(
                Refusal.IdempotencyKeyReused,
                "this Idempotency-Key was used for another order; use a new key for a new order",
            )
        deadline = self.clock() + WAIT_FOR_OTHER_SECS
        trade: TradeRecord | None = kept
        while trade is not None and trade.answer_status is None:
            if trade.state is not TradeState.created:
                return describe(trade)
            if self.clock() >= deadline:
                raise TradeRefused(
                    Refusal.IdempotencyKeyInUse,
                    "the order first sent with this key is still being opened; ask again",
                    trade.id,
                )
            await asyncio.sleep(POLL_SECS)
            trade = await self.ledger.get(kept.id)
        if trade is None:
            raise TradeRefused(Refusal.UnknownTrade, "the order with this key is gone")
        assert trade.answer_status is not None
        assert trade.answer_body is not None
        return Answer(trade.answer_status, trade.answer_body)
