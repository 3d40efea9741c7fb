"""Wrong codes and passwords in a row, by phone or operator, and the lockout they lead to:
after NISHATI_AUTH_CODE_ATTEMPTS of them, none is tried for NISHATI_AUTH_LOCKOUT_SECS. Kept in
the database, so neither a restart nor a new code lifts a lockout; a phone no household has
is counted too, so a lockout tells nothing about whether a phone is known."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.accounts.errors import SignInReason, SignInRefused
from nishati_oracle.storage.schema import sign_in_failures


class Lockouts:
    def __init__(
        self,
        engine: AsyncEngine,
        attempts: int,
        lockout_secs: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.attempts = attempts
        self.lockout_secs = lockout_secs
        self.clock = clock

    async def check(self, subject: str) -> None:
        """Raises SignInLocked while ``subject`` (a keyed digest) is locked out."""
        async with self.engine.connect() as conn:
            query = select(sign_in_failures.c.locked_until).where(
                sign_in_failures.c.subject_digest == subject
            )
            locked_until = (await conn.execute(query)).scalar_one_or_none()
        now = self.clock()
        if locked_until is not None and locked_until > now:
            raise SignInRefused(
                SignInReason.SignInLocked,
                "too many wrong attempts: try again later",
                retry_after_secs=locked_until - now,
            )

    async def failed(self, subject: str) -> bool:
        """Counts a wrong attempt; whether it locked ``subject`` out."""
        now = self.clock()
        table = sign_in_failures
        async with self.engine.begin() as conn:
            counted = await conn.execute(
                update(table)
                .where(table.c.subject_digest == subject)
                .values(failures=table.c.failures + 1, updated_at=now)
            )
            if counted.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(table).values(
                                subject_digest=subject,
                                failures=1,
                                locked_until=None,
                                updated_at=now,
                            )
                        )
                except IntegrityError:
                    await conn.execute(
                        update(table)
                        .where(table.c.subject_digest == subject)
                        .values(failures=table.c.failures + 1, updated_at=now)
                    )
            query = select(table.c.failures).where(table.c.subject_digest == subject)
            failures: int = (await conn.execute(query)).scalar_one()
            if failures < self.attempts:
                return False
            await conn.execute(
                update(table)
                .where(table.c.subject_digest == subject)
                .values(failures=0, locked_until=now + self.lockout_secs)
            )
        return True

    async def cleared(self, subject: str) -> None:
        """A right attempt: the count starts again."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(sign_in_failures).where(sign_in_failures.c.subject_digest == subject)
            )
