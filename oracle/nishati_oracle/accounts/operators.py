"""Operators and their passwords, hashed with argon2id (argon2-cffi's RFC 9106 parameters).
An unknown user name is checked against a hash all the same, so the answer takes as long and
says the same; wrong passwords count towards the user name's lockout (``lockouts``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.accounts.errors import SignInReason, SignInRefused
from nishati_oracle.accounts.lockouts import Lockouts
from nishati_oracle.accounts.secrets import Keyed, new_token
from nishati_oracle.storage.schema import USERNAME_CHARS, operators

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1_024
USERNAME = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{USERNAME_CHARS - 1}}}")


def check_username(username: str) -> str:
    if USERNAME.fullmatch(username) is None:
        raise ValueError(
            f"a user name is 1 to {USERNAME_CHARS} of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return username


class Operators:
    def __init__(
        self,
        engine: AsyncEngine,
        keyed: Keyed,
        lockouts: Lockouts,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyed = keyed
        self.lockouts = lockouts
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self._decoy: str | None = None

    def subject(self, username: str) -> str:
        """The user name's lockout key."""
        return self.keyed.digest("operator", username)

    async def add(self, username: str, password: str) -> None:
        """A new operator; OperatorExists if the user name is taken, WeakPassword if the
        password is under MIN_PASSWORD_CHARS."""
        check_username(username)
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            raise SignInRefused(
                SignInReason.WeakPassword,
                f"a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
            )
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(operators).values(
                        username=username, password_hash=hashed, created_at=now, updated_at=now
                    )
                )
        except IntegrityError:
            raise SignInRefused(
                SignInReason.OperatorExists, f"{username} is an operator already"
            ) from None

    async def verify(self, username: str, password: str) -> None:
        """Returns if ``password`` is ``username``'s; PasswordRejected if either is wrong,
        SignInLocked once too many were."""
        subject = self.subject(username)
        await self.lockouts.check(subject)
        async with self.engine.connect() as conn:
            query = select(operators.c.password_hash).where(operators.c.username == username)
            stored: str | None = (await conn.execute(query)).scalar_one_or_none()
        matched = await asyncio.to_thread(self._matches, stored, password)
        if not matched:
            if await self.lockouts.failed(subject):
                raise SignInRefused(
                    SignInReason.SignInLocked,
                    "too many wrong passwords: try again later",
                    retry_after_secs=self.lockouts.lockout_secs,
                )
            raise SignInRefused(SignInReason.PasswordRejected, "the user name or password is wrong")
        await self.lockouts.cleared(subject)
        assert stored is not None
        if self.hasher.check_needs_rehash(stored):
            await self._rehash(username, password)

    def _matches(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # The same work as for a real operator, so the time tells nothing; the decoy is
            # a random token's hash, which no password matches.
            if self._decoy is None:
                self._decoy = self.hasher.hash(new_token())
            stored = self._decoy
            password = ""
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _rehash(self, username: str, password: str) -> None:
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(operators)
                .where(operators.c.username == username)
                .values(password_hash=hashed, updated_at=self.clock())
            )
