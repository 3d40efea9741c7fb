"""Daraja's callbacks into the ledger with group commit: callbacks that arrive while one
transaction is being stored share the next, and none is answered before it is durable. One
commit (one fsync on SQLite) per group instead of per callback is what lets a single core
acknowledge hundreds a second."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from nishati_oracle.trading.ledger import CallbackKind, Ledger, NewCallback

MAX_GROUP = 512


@dataclass
class _Waiting:
    callback: NewCallback
    stored: asyncio.Future[bool]


class CallbackInbox:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._queue: deque[_Waiting] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def store(self, kind: CallbackKind, key: str, receipt: str | None, body: bytes) -> bool:
        """True once stored; False for a duplicate (same key, or same receipt)."""
        waiting = _Waiting(
            NewCallback(kind, key, receipt, body), asyncio.get_running_loop().create_future()
        )
        self._queue.append(waiting)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="callback-writer")
        return await waiting.stored

    async def _write(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._queue:
                group = [self._queue.popleft() for _ in range(min(MAX_GROUP, len(self._queue)))]
                try:
                    stored = await self.ledger.store_callbacks([w.callback for w in group])
                except Exception as e:
                    for w in group:
                        if not w.stored.done():
                            w.stored.set_exception(e)
                    continue
                for w, new in zip(group, stored, strict=True):
                    if not w.stored.done():
                        w.stored.set_result(new)
        finally:
            self._writer = None
            for w in [*group, *self._queue]:
                if not w.stored.done():
                    w.stored.set_exception(RuntimeError("the callback writer stopped"))
            self._queue.clear()
