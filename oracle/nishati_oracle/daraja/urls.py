"""Callback URLs Daraja will call: the words its gateway filters out, and secret tokens that
never contain one.

Daraja's pages (C2B, Register URL) say to avoid "M-PESA, M-Pesa, mpesa, Safaricom, exe, exec,
cmd, sql, query, or any of their variants in either upper or lower cases" in URLs; a CallBackURL
holding one is refused (``400.002.02 Invalid CallBackURL``) or never called. A random token in
the path hits one of the three-letter words now and then (about 1 in 250 for 32 random bytes),
which would make every STK Push refused: :func:`callback_token` draws until it has none.
"""

from __future__ import annotations

import re
import secrets

# Matched case-insensitively anywhere in the URL; "exec" is covered by "exe". The separators
# catch the variants "m-pesa", "m_pesa", "m.pesa" and "mpesa".
FILTERED_WORDS: tuple[str, ...] = ("m-pesa", "mpesa", "safaricom", "exe", "cmd", "sql", "query")
_FILTERED = re.compile(r"m[-_.]?pesa|safaricom|exe|cmd|sql|query", re.IGNORECASE)
# Public URL testers Daraja blocks in production.
TUNNEL_HOSTS: tuple[str, ...] = ("ngrok", "mockbin", "requestbin", "requestb.in")

TOKEN_BYTES = 32
_MAX_DRAWS = 1_000


def filtered_words(url: str) -> list[str]:
    """The filtered words in ``url``, lower-cased, in order of appearance (empty if none)."""
    return [m.group(0).lower() for m in _FILTERED.finditer(url)]


def callback_token(nbytes: int = TOKEN_BYTES) -> str:
    """A URL-safe secret of ``nbytes`` random bytes (as ``secrets.token_urlsafe``) that holds
    none of the filtered words, so a callback URL built from it is never refused for it."""
    for _ in range(_MAX_DRAWS):
        token = secrets.token_urlsafe(nbytes)
        if not _FILTERED.search(token):
            return token
    raise RuntimeError("no token without a filtered word was drawn")  # pragma: no cover
