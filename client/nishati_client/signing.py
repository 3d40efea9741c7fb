"""Requests to the oracle signed by a household's owner or an installer: one canonical form,
made here for the CLI and checked by the oracle (which imports it from here).

A signed request carries three headers: the signer's public key (:data:`KEY_HEADER`, base58),
the Unix time it was signed at (:data:`TIMESTAMP_HEADER`, whole seconds) and its ed25519
signature (:data:`SIGNATURE_HEADER`, base58) over :func:`canonical_request`: the domain, the
method, the path with its query, the time and the SHA-256 of the body, one per line. The
oracle refuses a time outside its window (a replay later, or a clock far off) and a signature
it has seen before within it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

import httpx
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

# Keeps a request's signature from meaning anything else the same key signs (a transaction,
# a meter registration).
REQUEST_DOMAIN = "nishati-request-v1"
KEY_HEADER = "X-Nishati-Key"
TIMESTAMP_HEADER = "X-Nishati-Timestamp"
SIGNATURE_HEADER = "X-Nishati-Signature"


def target(path: str, query: str) -> str:
    """The request's path and query as signed: ``/a/b?x=1``, or ``/a/b`` without a query."""
    return f"{path}?{query}" if query else path


def canonical_request(method: str, path_and_query: str, timestamp: int, body: bytes) -> bytes:
    """The bytes a request's signature covers."""
    lines = [
        REQUEST_DOMAIN,
        method.upper(),
        path_and_query,
        str(timestamp),
        hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines).encode()


def signed_headers(
    keypair: Keypair, method: str, path_and_query: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The headers that sign a request as ``keypair``'s."""
    message = canonical_request(method, path_and_query, timestamp, body)
    return {
        KEY_HEADER: str(keypair.pubkey()),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: str(keypair.sign_message(message)),
    }


class MalformedSignature(ValueError):
    """Signature headers that are present but not of their shape."""


@dataclass(frozen=True)
class RequestSignature:
    """The three headers of a signed request, parsed."""

    key: Pubkey
    timestamp: int
    signature: Signature

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RequestSignature | None:
        """The signature the headers carry; ``None`` without any of its headers.
        :class:`MalformedSignature` when some are missing or not of their shape."""
        values = [headers.get(name) for name in (KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)]
        if all(value is None for value in values):
            return None
        key, timestamp, signature = values
        if key is None or timestamp is None or signature is None:
            raise MalformedSignature(
                f"a signed request carries {KEY_HEADER}, {TIMESTAMP_HEADER} and "
                f"{SIGNATURE_HEADER} together"
            )
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            raise MalformedSignature(f"{TIMESTAMP_HEADER} is not Unix seconds")
        try:
            return cls(Pubkey.from_string(key), int(timestamp), Signature.from_string(signature))
        except ValueError:
            raise MalformedSignature(
                f"{KEY_HEADER} or {SIGNATURE_HEADER} is not base58 of its length"
            ) from None

    def verifies(self, method: str, path_and_query: str, body: bytes) -> bool:
        """Whether it is its key's signature over this request."""
        message = canonical_request(method, path_and_query, self.timestamp, body)
        return self.signature.verify(self.key, message)


class SignedRequests(httpx.Auth):
    """httpx authentication signing every request as ``keypair``'s, at the time ``clock`` says."""

    requires_request_body = True

    def __init__(self, keypair: Keypair, clock: Callable[[], float] = time.time) -> None:
        self.keypair = keypair
        self.clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = request.url
        headers = signed_headers(
            self.keypair,
            request.method,
            target(url.path, url.query.decode()),
            request.content,
            int(self.clock()),
        )
        request.headers.update(headers)
        yield request
