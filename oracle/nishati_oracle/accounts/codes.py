"""Sign-in codes: 6 random digits sent to a household's phone, valid NISHATI_AUTH_CODE_SECS,
once. A phone has one code at a time (a new one replaces it); the database keeps the code's
and the phone's keyed digests (``secrets.Keyed``), never either in clear. Wrong codes count
towards the phone's lockout (``lockouts``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.accounts.errors import SignInReason, SignInRefused
from nishati_oracle.accounts.lockouts import Lockouts
from nishati_oracle.accounts.secrets import Keyed, same
from nishati_oracle.storage.schema import sign_in_codes

CODE_DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


class SignInCodes:
    def __init__(
        self,
        engine: AsyncEngine,
        keyed: Keyed,
        lockouts: Lockouts,
        code_secs: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyed = keyed
        self.lockouts = lockouts
        self.code_secs = code_secs
        self.clock = clock

    def subject(self, phone: str) -> str:
        """The phone's keyed digest (``phone`` normalised): its code's and its lockout's key."""
        return self.keyed.digest("phone", phone)

    def _code_digest(self, phone: str, code: str) -> str:
        return self.keyed.digest("code", phone, code)

    async def issue(self, phone: str, household: str) -> str:
        """A new code for ``phone`` (normalised) signing in as ``household``; any earlier one
        is void."""
        code = new_code()
        now = self.clock()
        subject = self.subject(phone)
        async with self.engine.begin() as conn:
            await conn.execute(delete(sign_in_codes).where(sign_in_codes.c.phone_digest == subject))
            await conn.execute(
                insert(sign_in_codes).values(
                    phone_digest=subject,
                    code_digest=self._code_digest(phone, code),
                    household=household,
                    created_at=now,
                    expires_at=now + self.code_secs,
                )
            )
        return code

    async def redeem(self, phone: str, code: str) -> str:
        """The household ``phone``'s code signs in as, the code used up; CodeRejected for a
        wrong, expired or used code (or a phone sent none), SignInLocked once too many were
        wrong."""
        subject = self.subject(phone)
        await self.lockouts.check(subject)
        table = sign_in_codes
        given = self._code_digest(phone, code)
        async with self.engine.begin() as conn:
            query = select(table.c.code_digest, table.c.household, table.c.expires_at).where(
                table.c.phone_digest == subject
            )
            row = (await conn.execute(query)).one_or_none()
            valid = (
                row is not None and row.expires_at > self.clock() and same(row.code_digest, given)
            )
            # Only one of two requests with the same code takes it.
            taken = (
                valid
                and (
                    await conn.execute(
                        delete(table).where(
                            table.c.phone_digest == subject, table.c.code_digest == given
                        )
                    )
                ).rowcount
                == 1
            )
        if taken:
            assert row is not None
            await self.lockouts.cleared(subject)
            household: str = row.household
            return household
        if await self.lockouts.failed(subject):
            async with self.engine.begin() as conn:
                await conn.execute(delete(table).where(table.c.phone_digest == subject))
            raise SignInRefused(
                SignInReason.SignInLocked,
                "too many wrong codes: ask for a new one later",
                retry_after_secs=self.lockouts.lockout_secs,
            )
        raise SignInRefused(SignInReason.CodeRejected, "the code is wrong or expired")
