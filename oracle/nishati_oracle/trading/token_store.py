"""The Daraja access token in the database every oracle replica shares: a
:class:`~nishati_oracle.daraja.TokenStore` whose row holds the token (encrypted) and its
expiry, renewed under a lock all replicas take, so one OAuth request serves them all (each new
token invalidates the app's previous one).

On PostgreSQL the lock is an advisory lock, held on a connection of its own for the whole
renewal (read, maybe fetch, write). On SQLite, whose processes share a host, it is the
``flock`` of :class:`~nishati_oracle.daraja.FileTokenStore` on a file beside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.daraja import FileTokenStore, StoredToken
from nishati_oracle.storage.database import dialect_insert
from nishati_oracle.storage.schema import daraja_tokens
from nishati_oracle.trading.vault import PhoneVault

# The PostgreSQL advisory lock (in its two-key form: this class, the app's) under which a
# replica renews the Daraja token.
TOKEN_LOCK_CLASS = 0x4E494454


def app_key(consumer_key: str) -> str:
    """The row of a Daraja app: a digest of its consumer key (never the key itself)."""
    return hashlib.sha256(b"nishati-daraja-app:" + consumer_key.encode()).hexdigest()


class DatabaseTokenStore:
    """A :class:`~nishati_oracle.daraja.TokenStore` on the oracle's database."""

    def __init__(self, engine: AsyncEngine, vault: PhoneVault, consumer_key: str) -> None:
        self.engine = engine
        self.vault = vault
        self.app = app_key(consumer_key)
        self._local = asyncio.Lock()
        self._insert = dialect_insert(engine)
        database = engine.url.database
        # SQLite's lock: only its flock is used (the token stays in the database).
        self._beside = (
            FileTokenStore(Path(f"{database}.daraja-token"))
            if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
            else None
        )

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        if self._beside is not None:
            async with self._beside.lock():
                yield
            return
        async with self._local:
            if self.engine.dialect.name != "postgresql":
                yield
                return
            app = int.from_bytes(bytes.fromhex(self.app)[:4], "big", signed=True)
            async with self.engine.connect() as conn:
                await conn.execute(select(func.pg_advisory_lock(TOKEN_LOCK_CLASS, app)))
                await conn.commit()
                try:
                    yield
                finally:
                    await conn.execute(select(func.pg_advisory_unlock(TOKEN_LOCK_CLASS, app)))
                    await conn.commit()

    async def load(self) -> StoredToken | None:
        query = select(daraja_tokens.c.sealed, daraja_tokens.c.expires_at).where(
            daraja_tokens.c.app == self.app
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        try:
            value = self.vault.decrypt(row.sealed).decode()
        except InvalidTag:
            # Sealed under another phone key: as good as none, a new one is asked for.
            return None
        return StoredToken(value, float(row.expires_at))

    async def save(self, token: StoredToken) -> None:
        sealed = self.vault.encrypt(token.value.encode())
        upsert = self._insert(daraja_tokens).values(
            app=self.app, sealed=sealed, expires_at=token.expires_at
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[daraja_tokens.c.app],
            set_={"sealed": sealed, "expires_at": token.expires_at},
        )
        async with self.engine.begin() as conn:
            await conn.execute(upsert)
