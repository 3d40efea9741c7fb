"""The OAuth access token, cached and renewed before it expires, one renewal at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from nishati_client.digits import ascii_digits
from nishati_oracle.daraja.errors import UnexpectedResponse

TokenFetch = Callable[[], Awaitable[tuple[str, int]]]


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


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
    never sent in its last seconds), and when many coroutines find it stale at once exactly one
    of them renews it while the rest wait on the lock and reuse the result."""

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        margin_secs: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._margin = margin_secs
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        return None

    async def get(self) -> str:
        value = self._fresh()
        if value is not None:
            return value
        async with self._lock:
            value = self._fresh()  # another coroutine may have renewed it while we waited
            if value is not None:
                return value
            started = self._clock()
            value, expires_in = await self._fetch()
            # A short-lived token is renewed halfway rather than never being fresh.
            margin = min(self._margin, expires_in // 2)
            self._token = _Token(value, started + expires_in - margin)
            return value

    def invalidate(self, value: str) -> None:
        """Drops ``value`` after Daraja called it invalid; a no-op if it was already replaced,
        so many callers refused at once cause one renewal, not many."""
        if self._token is not None and self._token.value == value:
            self._token = None
