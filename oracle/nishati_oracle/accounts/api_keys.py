"""API keys an operator issues to an integration: ``nsk_<id>_<secret>``, sent as
``Authorization: Bearer``, shown once when issued and kept as the secret's SHA-256 digest,
each with its scopes (:class:`Scope`); revoked, a key is refused from then on."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.accounts.errors import SignInReason, SignInRefused
from nishati_oracle.accounts.secrets import digest, new_token, same
from nishati_oracle.storage.schema import api_keys

KEY_PREFIX = "nsk_"
ID_BYTES = 8
# A key's last use is written at most this often.
TOUCH_SECS = 60.0


class Scope(StrEnum):
    """What an API key may do."""

    # Read any trade's payment (GET /api/v1/payments/{trade_id}, the STK status).
    payments_read = "payments:read"
    # Place orders (POST /api/v1/trades, /api/execute_trade).
    trades_write = "trades:write"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    scopes: frozenset[Scope]
    created_by: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


def _record(row: Row[tuple[object, ...]]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(s) for s in row.scopes.split()),
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


class ApiKeys:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def issue(
        self, name: str, scopes: Iterable[Scope], created_by: str
    ) -> tuple[ApiKeyRecord, str]:
        """A new key: its record, and the key itself (shown this once, never stored)."""
        key_id = secrets.token_hex(ID_BYTES)
        secret = new_token()
        scoped = frozenset(scopes)
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    secret_digest=digest(secret),
                    name=name,
                    scopes=" ".join(sorted(scoped)),
                    created_by=created_by,
                    created_at=now,
                )
            )
        record = ApiKeyRecord(key_id, name, scoped, created_by, now, None, None)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    async def listed(self) -> list[ApiKeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
        return [_record(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revokes a key (again: nothing changes); UnknownApiKey if none has that id."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
            row = (
                await conn.execute(select(api_keys).where(api_keys.c.id == key_id))
            ).one_or_none()
        if row is None:
            raise SignInRefused(SignInReason.UnknownApiKey, "no API key has that id")
        return _record(row)

    async def find(self, key: str) -> ApiKeyRecord | None:
        """The key's record, if it is one of ours and not revoked (its use is recorded)."""
        key_id, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
        async with self.engine.connect() as conn:
            query = select(api_keys).where(api_keys.c.id == key_id)
            row = (await conn.execute(query)).one_or_none()
        if row is None or row.revoked_at is not None or not same(digest(secret), row.secret_digest):
            return None
        now = self.clock()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_SECS:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
                )
        return _record(row)
