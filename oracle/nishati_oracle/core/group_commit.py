"""Group commit: what arrives while one transaction is being stored shares the next, and nobody
is answered before their part is durable. One commit (one fsync on SQLite) per group instead of
per request is what lets one core take thousands of readings and hundreds of callbacks a
second. Readings (:class:`nishati_oracle.readings.pipeline.ReadingPipeline`) and Daraja's callbacks
(``trading.wiring``) both go through it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


@dataclass
class _Waiting(Generic[Item, Answer]):
    item: Item
    answer: asyncio.Future[Answer]


class GroupCommit(Generic[Item, Answer]):
    """Calls ``commit`` with the items queued meanwhile, as many as ``max_size`` allows (each
    weighing ``size``, a group always taking one), and answers each item's :meth:`submit` with
    its answer. A failed commit fails every submit of its group. The writer task runs while
    items are queued; the next submit starts a new one."""

    def __init__(
        self,
        commit: Callable[[list[Item]], Awaitable[list[Answer]]],
        max_size: int,
        name: str,
        size: Callable[[Item], int] = lambda _: 1,
    ) -> None:
        self.commit = commit
        self.max_size = max_size
        self.name = name
        self.size = size
        self._queue: deque[_Waiting[Item, Answer]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        waiting = _Waiting[Item, Answer](item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name=self.name)
        return await waiting.answer

    def _next_group(self) -> list[_Waiting[Item, Answer]]:
        group = [self._queue.popleft()]
        size = self.size(group[0].item)
        while self._queue and size + self.size(self._queue[0].item) <= self.max_size:
            size += self.size(self._queue[0].item)
            group.append(self._queue.popleft())
        return group

    async def _write(self) -> None:
        group: list[_Waiting[Item, Answer]] = []
        try:
            while self._queue:
                group = self._next_group()
                try:
                    answers = await self.commit([w.item for w in group])
                except Exception as e:
                    for w in group:
                        if not w.answer.done():
                            w.answer.set_exception(e)
                    continue
                for w, answer in zip(group, answers, strict=True):
                    if not w.answer.done():
                        w.answer.set_result(answer)
        finally:
            self._writer = None
            # Cancelled (the loop is closing): nobody is left waiting forever.
            for w in [*group, *self._queue]:
                if not w.answer.done():
                    w.answer.set_exception(RuntimeError(f"{self.name} stopped"))
            self._queue.clear()
