"""The OAuth access token: cached, renewed before it expires, by one request at a time.

Daraja documents that every token request invalidates the app's previous token. So within a
process all callers share one token and one renewal (:class:`TokenCache`), and several
processes of the same Daraja app must share one token too, through a :class:`TokenStore`: a
renewal first takes the store's lock and reads it, and asks OAuth only when the stored token is
missing, near its end, or the very one Daraja just refused. :class:`FileTokenStore` does this for
processes on one host; for several hosts, implement the protocol on the database they share
(a row holding the token and its expiry, read and written under an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nishati_client.digits import ascii_digits
from nishati_oracle.daraja.errors import UnexpectedResponse

TokenFetch = Callable[[], Awaitable[tuple[str, int]]]


@dataclass(frozen=True)
class StoredToken:
    """A token as a store keeps it: its value and when it expires, in wall-clock seconds
    (``time.time()``), which every process sharing the store agrees on."""

    value: str
    expires_at: float


class TokenStore(Protocol):
    """Where several processes of one Daraja app keep the app's one token.

    ``lock`` is held across a whole renewal (read, maybe fetch, write), so two processes never
    both ask OAuth and invalidate each other's token."""

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def load(self) -> StoredToken | None: ...

    async def save(self, token: StoredToken) -> None: ...


class FileTokenStore:
    """A :class:`TokenStore` in a file (mode 0600) for processes on one host, locked with
    ``flock`` on a ``.lock`` file beside it. The token is a bearer secret for an hour: keep the
    file where only the oracle's user can read it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._local = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        async with self._local:  # flock is per open file: one holder per process as well
            fd = await asyncio.to_thread(self._acquire)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _acquire(self) -> int:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def load(self) -> StoredToken | None:
        try:
            data = json.loads(await asyncio.to_thread(self.path.read_text))
            value, expires_at = data["access_token"], data["expires_at"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(value, str) or not value or not isinstance(expires_at, int | float):
            return None
        return StoredToken(value, float(expires_at))

    async def save(self, token: StoredToken) -> None:
        text = json.dumps({"access_token": token.value, "expires_at": token.expires_at})
        await asyncio.to_thread(self._write, text)

    def _write(self, text: str) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(partial, self.path)


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # on the cache's (monotonic) clock


def parse_token_reply(body: Mapping[str, object]) -> tuple[str, int]:
    """``(access_token, expires_in)`` from the OAuth reply; ``expires_in`` comes as a number or,
    from some gateways, a string."""
    token = body.get("access_token")
    expires = body.get("expires_in")
    if not isinstance(token, str) or not token:
        raise UnexpectedResponse("the OAuth reply has no access_token")
    if isinstance(expires, str) and ascii_digits(expires.strip()):
        expires = int(expires)
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise UnexpectedResponse("the OAuth reply has no positive expires_in")
    return token, expires


class TokenCache:
    """Hands out the current token; renews it ``margin_secs`` before it expires (so a token is
    never sent in its last seconds). When many coroutines find it stale at once, exactly one
    renewal runs and all of them await that same renewal: one OAuth request, one outcome (a
    failure reaches every waiter, and the next caller starts afresh). A caller cancelled while
    waiting does not cancel the renewal the others wait on.

    With a ``store``, renewals go through it (see the module docstring)."""

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        margin_secs: int = 60,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        store: TokenStore | None = None,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_secs
        self._clock = clock
        self._wall = wall
        self._store = store
        self._token: _Token | None = None
        self._refused: str | None = None  # the last value Daraja called invalid
        self._renewal: asyncio.Future[str] | None = None
        self.fetches = 0
        """OAuth requests made so far (for tests and metrics)."""

    def _fresh(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        return None

    def _margin_for(self, lifetime: float) -> float:
        # A short-lived token is renewed halfway rather than never being fresh.
        return min(self._margin, lifetime / 2)

    async def get(self) -> str:
        value = self._fresh()
        if value is not None:
            return value
        renewal = self._renewal
        if renewal is None:
            renewal = asyncio.ensure_future(self._renew())
            self._renewal = renewal
            renewal.add_done_callback(self._renewed)
        # shield: one waiter's cancellation must not cancel the renewal the others await.
        return await asyncio.shield(renewal)

    def _renewed(self, renewal: asyncio.Future[str]) -> None:
        if self._renewal is renewal:
            self._renewal = None
        if not renewal.cancelled():
            renewal.exception()  # retrieved: a failure nobody awaited is not "never retrieved"

    async def _renew(self) -> str:
        if self._store is None:
            return await self._fetch_new()
        async with self._store.lock():
            stored = await self._store.load()
            if stored is not None and stored.value != self._refused:
                left = stored.expires_at - self._wall()
                margin = self._margin_for(left)
                if left > margin:
                    # Another process renewed it: use theirs rather than invalidate it.
                    self._token = _Token(stored.value, self._clock() + left - margin)
                    return stored.value
            value = await self._fetch_new(save=True)
            return value

    async def _fetch_new(self, *, save: bool = False) -> str:
        started, started_wall = self._clock(), self._wall()
        self.fetches += 1
        value, expires_in = await self._fetch()
        self._token = _Token(value, started + expires_in - self._margin_for(expires_in))
        if save and self._store is not None:
            await self._store.save(StoredToken(value, started_wall + expires_in))
        return value

    async def renew(self) -> str:
        """A token renewed now, whatever is cached (a probe of whether Daraja answers)."""
        if self._token is not None:
            self.invalidate(self._token.value)
        return await self.get()

    def invalidate(self, value: str) -> None:
        """Drops ``value`` after Daraja called it invalid; a no-op if it was already replaced,
        so many callers refused at once cause one renewal, not many. A store's copy of that
        value is not reused."""
        self._refused = value
        if self._token is not None and self._token.value == value:
            self._token = None
