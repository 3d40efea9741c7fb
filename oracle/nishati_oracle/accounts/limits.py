"""Requests per key (a phone's digest, a caller's address) in a sliding window: what a burst of
sign-in attempts from one place or at one phone runs into. The requests are kept in the
database (``rate_hits``), so every replica counts the same ones and a restart forgets none.
Keys are kept as keyed digests (:class:`~nishati_oracle.accounts.secrets.Keyed`): no caller's
address is stored in clear. Lockouts after wrong codes are ``accounts.lockouts``'.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from sqlalchemy import and_, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nishati_oracle.accounts.secrets import Keyed
from nishati_oracle.storage.database import in_transaction
from nishati_oracle.storage.schema import rate_hits

# How often, at most, a replica deletes every key's requests whose window is over (a key's own
# are deleted at each of its requests).
PURGE_EVERY_SECS = 60.0


class RateLimit:
    """At most ``limit`` requests per key in any ``window_secs``, for the limit ``name``."""

    def __init__(
        self,
        engine: AsyncEngine,
        keyed: Keyed,
        name: str,
        limit: int,
        window_secs: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyed = keyed
        self.name = name
        self.limit = limit
        self.window_secs = window_secs
        self.clock = clock
        self._purged_at = -float("inf")

    async def hit(self, key: str) -> float | None:
        """Counts a request for ``key``; ``None`` when within the limit, else the seconds until
        one more would be (the refused request is not counted).

        The count and the insert are one statement, which SQLite runs under its write lock. On
        PostgreSQL two such statements can both count one short of the limit, so an advisory
        lock on the key makes them one step for all replicas."""
        now = self.clock()
        digest = self.keyed.digest("rate", self.name, key)
        ours = and_(rate_hits.c.limit_name == self.name, rate_hits.c.key_digest == digest)
        within = and_(ours, rate_hits.c.at > now - self.window_secs)
        room = select(func.count()).where(within).scalar_subquery() < self.limit
        count = (
            insert(rate_hits)
            .from_select(
                ["limit_name", "key_digest", "at"],
                select(literal(self.name), literal(digest), literal(now)).where(room),
            )
            .returning(rate_hits.c.id)
        )

        async def count_in(conn: AsyncConnection) -> float | None:
            if self.engine.dialect.name == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(_lock_key(digest))))
            await conn.execute(
                delete(rate_hits).where(ours, rate_hits.c.at <= now - self.window_secs)
            )
            oldest = None
            if (await conn.execute(count)).scalar_one_or_none() is None:
                first = select(func.min(rate_hits.c.at)).where(within)
                oldest = (await conn.execute(first)).scalar()
            if now - self._purged_at >= PURGE_EVERY_SECS:
                self._purged_at = now
                await conn.execute(
                    delete(rate_hits).where(
                        rate_hits.c.limit_name == self.name,
                        rate_hits.c.at <= now - self.window_secs,
                    )
                )
            return oldest

        oldest = await in_transaction(self.engine, count_in)
        if oldest is None:
            return None
        return float(oldest) + self.window_secs - now


def _lock_key(digest: str) -> int:
    """A PostgreSQL advisory lock's key (a signed 64-bit integer) for a key's digest."""
    return int.from_bytes(hashlib.sha256(digest.encode()).digest()[:8], "big", signed=True)
