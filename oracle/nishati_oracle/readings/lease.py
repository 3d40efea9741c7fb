"""One attester per market, elected through the database: the attester lease.

Any number of replicas may serve one market on one database; only the one holding the
market's lease (a row of ``attester_leases``) attests. The holder renews it every
``attest_lease_renew_secs``; a lease not renewed for ``attest_lease_secs`` (on the database's
clock) is taken over by the next replica that asks, which raises the row's fencing token by one.
So a failover takes at most the lease plus one renewal interval, and a replica stopping on
purpose releases its lease, for another to take at its next try.

Fencing: every write the attester makes (readings attested or closed, lookup tables written
ahead) first checks, in its own transaction, that the market's token is still the one its
replica took (:meth:`Fence.check`). The check updates the lease row, so no takeover commits
between the check and the writes; and an attester that was paused past its lease (a stalled
process, a lost network) finds the token moved on and its writes refused (:class:`LeaseLost`),
however late it wakes. Its transactions already sent to the chain are harmless: the program's
counter check refuses a reading attested twice.

A replica believes it holds the lease only until ``attest_lease_secs`` after it sent its last
successful renewal (its own monotonic clock): the database's expiry is no earlier than that,
so the replica stops attesting before any other may start. On SQLite (one process) the one
replica takes the lease at startup and keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nishati_oracle.storage.database import database_now, dialect_insert
from nishati_oracle.storage.schema import attester_leases

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """An attester's write refused: another replica has taken the market's attester lease
    since this one took it (the fencing token moved on), so this one may no longer attest."""

    def __init__(self, market: str, token: int) -> None:
        super().__init__(f"the attester lease of {market} moved on from token {token}")
        self.market = market
        self.token = token


def replica_id() -> str:
    """This process's name as a lease holder: host, process id and a random part (a process id
    may come back after a restart)."""
    return f"{socket.gethostname()[:60]}/{os.getpid()}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Fence:
    """The lease a replica took: its market and fencing token, checked by each of its writes."""

    market: str
    token: int

    async def check(self, conn: AsyncConnection) -> None:
        """Raises :class:`LeaseLost` unless the market's token is still this one. Called first
        in a write transaction: the no-op update locks the lease row until the transaction
        ends (a row lock on PostgreSQL, which also reads the newest token; SQLite's write lock),
        so no takeover commits in between."""
        result = await conn.execute(
            update(attester_leases)
            .where(attester_leases.c.market == self.market, attester_leases.c.token == self.token)
            .values(token=attester_leases.c.token)
        )
        if result.rowcount != 1:
            raise LeaseLost(self.market, self.token)


class AttesterLease:
    """This replica's claim on the market's attester lease: taken, renewed, lost or released
    (see the module docstring); ``held`` says whether it may attest now, ``fence`` what its
    writes carry."""

    def __init__(
        self,
        engine: AsyncEngine,
        market: str,
        lease_secs: float,
        renew_secs: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.market = market
        self.lease_secs = lease_secs
        self.renew_secs = renew_secs
        self.holder = holder or replica_id()
        self.clock = clock
        self.fence: Fence | None = None
        # Until when (``clock``) this replica may attest, as of its last take or renewal.
        self._valid_until = 0.0
        # Set once the replica gives the lease up for good (it is stopping).
        self._released = False
        self.log = log.bind(market=market, holder=self.holder)

    @property
    def held(self) -> bool:
        return self.fence is not None and self.clock() < self._valid_until

    async def try_hold(self) -> bool:
        """Renews the lease if this replica holds it, else takes it if it has expired; whether
        this replica holds it now. A renewal that finds the token moved on loses it; a lease
        released is never asked for again."""
        if self._released:
            return False
        sent = self.clock()
        if self.fence is not None:
            renewed = await self._renew(self.fence)
            if renewed:
                self._valid_until = sent + self.lease_secs
                self.log.debug("attester lease renewed", token=self.fence.token)
                return True
            self.log.warning("attester lease lost", token=self.fence.token)
            self.fence = None
        token = await self._take()
        if token is None:
            return False
        self.fence = Fence(self.market, token)
        self._valid_until = sent + self.lease_secs
        self.log.info("attester lease taken", token=token, lease_secs=self.lease_secs)
        return True

    async def keep(self, stop: asyncio.Event, on_taken: Callable[[], None]) -> None:
        """Holds the lease, or waits for it, every ``renew_secs`` until ``stop``; then releases
        it. ``on_taken`` is called when this replica takes it over. A database that does not
        answer is tried again next time (meanwhile the lease lapses here as it does for the
        others)."""
        while not stop.is_set() and not self._released:
            try:
                had = self.fence
                if await self.try_hold() and self.fence != had:
                    on_taken()
            except Exception:
                self.log.exception("attester lease: the database did not answer, trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_secs)
        await self.release()

    async def release(self) -> None:
        """Gives the lease up for good (a replica stopping): it expires at once, for another
        to take, and this replica asks for it no more."""
        self._released = True
        fence, self.fence = self.fence, None
        if fence is None:
            return
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(attester_leases)
                    .where(
                        attester_leases.c.market == fence.market,
                        attester_leases.c.token == fence.token,
                    )
                    .values(expires_at=0.0)
                )
        except Exception:
            self.log.exception("attester lease not released; it expires by itself")
            return
        self.log.info("attester lease released", token=fence.token)

    async def _renew(self, fence: Fence) -> bool:
        now = database_now(self.engine)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(attester_leases)
                .where(
                    attester_leases.c.market == fence.market,
                    attester_leases.c.token == fence.token,
                    attester_leases.c.holder == self.holder,
                )
                .values(expires_at=now + self.lease_secs)
            )
        return bool(result.rowcount == 1)

    async def _take(self) -> int | None:
        """Takes the market's lease if it has expired (or was never taken); the new token."""
        now = database_now(self.engine)
        insert = dialect_insert(self.engine)(attester_leases)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert.values(
                    market=self.market, holder="", token=0, expires_at=0.0
                ).on_conflict_do_nothing(index_elements=["market"])
            )
            taken = await conn.execute(
                update(attester_leases)
                .where(attester_leases.c.market == self.market, attester_leases.c.expires_at < now)
                .values(
                    holder=self.holder,
                    token=attester_leases.c.token + 1,
                    expires_at=now + self.lease_secs,
                )
                .returning(attester_leases.c.token)
            )
            token = taken.scalar_one_or_none()
        return None if token is None else int(token)
