"""Browsers' sessions: an opaque random id in the ``nishati_session`` cookie and a CSRF token
beside it (``nishati_csrf``, which the page's script reads and sends back as ``X-CSRF-Token``
with every change). The database keeps each as its SHA-256 digest. A session is over
NISHATI_AUTH_SESSION_SECS after its sign-in (an operator's after
NISHATI_AUTH_OPERATOR_SESSION_SECS), when unused for NISHATI_AUTH_SESSION_IDLE_SECS, or when
signed out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.accounts.secrets import digest, new_token, same
from nishati_oracle.core.settings import AuthSettings
from nishati_oracle.storage.schema import sessions

SESSION_COOKIE = "nishati_session"
CSRF_COOKIE = "nishati_csrf"
CSRF_HEADER = "X-CSRF-Token"
# A session's last use is written at most this often (not on every request).
TOUCH_SECS = 60.0


class Holder(StrEnum):
    """Who a session is: a household signed in with its phone, or an operator."""

    household = "household"
    operator = "operator"


@dataclass(frozen=True)
class NewSession:
    """What the browser is given, once: the id and CSRF token themselves."""

    id: str
    csrf_token: str
    expires_at: float


@dataclass(frozen=True)
class SessionRecord:
    holder: Holder
    subject: str
    csrf_digest: str
    expires_at: float

    def csrf_matches(self, token: str) -> bool:
        return same(digest(token), self.csrf_digest)


class Sessions:
    def __init__(
        self, engine: AsyncEngine, settings: AuthSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def lifetime(self, holder: Holder) -> int:
        if holder is Holder.operator:
            return self.settings.operator_session_secs
        return self.settings.session_secs

    async def open(self, holder: Holder, subject: str) -> NewSession:
        """A new session for the household's address or the operator's user name."""
        now = self.clock()
        opened = NewSession(new_token(), new_token(), now + self.lifetime(holder))
        async with self.engine.begin() as conn:
            await conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
            await conn.execute(
                insert(sessions).values(
                    id_digest=digest(opened.id),
                    csrf_digest=digest(opened.csrf_token),
                    role=holder.value,
                    subject=subject,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=opened.expires_at,
                )
            )
        return opened

    async def find(self, session_id: str) -> SessionRecord | None:
        """The session with this id, if it is not over (its use is recorded)."""
        key = digest(session_id)
        now = self.clock()
        async with self.engine.connect() as conn:
            query = select(sessions).where(sessions.c.id_digest == key)
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        idle = now - row.last_seen_at >= self.settings.session_idle_secs
        if now >= row.expires_at or idle:
            await self.end(session_id)
            return None
        if now - row.last_seen_at >= TOUCH_SECS:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(sessions).where(sessions.c.id_digest == key).values(last_seen_at=now)
                )
        return SessionRecord(Holder(row.role), row.subject, row.csrf_digest, row.expires_at)

    async def end(self, session_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(sessions).where(sessions.c.id_digest == digest(session_id)))
