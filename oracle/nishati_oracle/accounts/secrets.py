"""Tokens and their digests: nothing a caller signs in with is stored as it was given.

Session ids, CSRF tokens and API keys are 256-bit random tokens, kept as their SHA-256 digest
(a guess against it is hopeless). Codes are 6 digits, so a plain digest of one would be found
by trying all million: codes, and the phones and user names they are kept by, are HMAC-SHA256
digests under the server's key (NISHATI_AUTH_SECRET), which the database never holds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from nishati_oracle.core.settings import AuthSettings

TOKEN_BYTES = 32


def new_token() -> str:
    """A random token, URL-safe (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """The SHA-256 digest (hex) a random token is kept as."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Whether two texts are equal, in time that does not tell how much of them is."""
    return hmac.compare_digest(a.encode(), b.encode())


class Keyed:
    """HMAC-SHA256 digests under the server's key, of parts that cannot run into each other."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Keyed:
        """The key of NISHATI_AUTH_SECRET; unset, a random one (this process's only)."""
        if settings.secret is None:
            return cls(secrets.token_bytes(TOKEN_BYTES))
        return cls(settings.secret.get_secret_value().encode())

    def digest(self, *parts: str) -> str:
        message = b"\x00".join(part.encode() for part in parts)
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
