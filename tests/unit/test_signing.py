"""The canonical form of a signed request to the oracle: its exact bytes, a signature any ed25519
implementation checks, every part of the request covered."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.keypair import Keypair

from nishati_client.signing import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MalformedSignature,
    RequestSignature,
    SignedRequests,
    canonical_request,
    signed_headers,
    target,
)

BODY = b'{"share_percent":50}'
PATH = "/api/v1/households/H/auto-sell"


def test_the_canonical_form_is_five_lines() -> None:
    assert canonical_request("put", PATH, 1_790_000_000, BODY) == (
        b"nishati-request-v1\nPUT\n/api/v1/households/H/auto-sell\n1790000000\n"
        + hashlib.sha256(BODY).hexdigest().encode()
    )
    assert target("/a", "") == "/a"
    assert target("/a", "x=1&y=2") == "/a?x=1&y=2"


def test_the_signature_is_plain_ed25519_over_the_canonical_form() -> None:
    keypair = Keypair()
    headers = signed_headers(keypair, "PUT", PATH, BODY, 1_790_000_000)
    parsed = RequestSignature.from_headers(headers)
    assert parsed is not None
    assert parsed.key == keypair.pubkey()
    public = Ed25519PublicKey.from_public_bytes(bytes(keypair.pubkey()))
    public.verify(bytes(parsed.signature), canonical_request("PUT", PATH, 1_790_000_000, BODY))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", PATH, BODY),
        ("PUT", "/api/v1/households/G/auto-sell", BODY),
        ("PUT", PATH + "?x=1", BODY),
        ("PUT", PATH, b'{"share_percent":100}'),
    ],
)
def test_any_other_method_path_or_body_fails(method: str, path: str, body: bytes) -> None:
    parsed = RequestSignature.from_headers(
        signed_headers(Keypair(), "PUT", PATH, BODY, 1_790_000_000)
    )
    assert parsed is not None
    assert parsed.verifies("PUT", PATH, BODY)
    assert not parsed.verifies(method, path, body)


def test_another_time_fails() -> None:
    headers = signed_headers(Keypair(), "PUT", PATH, BODY, 1_790_000_000)
    parsed = RequestSignature.from_headers({**headers, TIMESTAMP_HEADER: "1790000001"})
    assert parsed is not None
    assert not parsed.verifies("PUT", PATH, BODY)


def test_headers_not_of_their_shape_are_malformed() -> None:
    headers = signed_headers(Keypair(), "GET", PATH, b"", 1_790_000_000)
    assert RequestSignature.from_headers({}) is None
    for broken in [
        {KEY_HEADER: headers[KEY_HEADER]},
        {**headers, TIMESTAMP_HEADER: "-5"},
        {**headers, TIMESTAMP_HEADER: "١٧٩٠"},
        {**headers, KEY_HEADER: "not-base58!"},
        {**headers, SIGNATURE_HEADER: "abc"},
    ]:
        with pytest.raises(MalformedSignature):
            RequestSignature.from_headers(broken)


def test_httpx_requests_are_signed_as_sent() -> None:
    keypair = Keypair()
    request = httpx.Request("PUT", "http://oracle/api/v1/x?y=1", content=BODY)
    signed = next(SignedRequests(keypair, lambda: 1_790_000_000.9).auth_flow(request))
    parsed = RequestSignature.from_headers(signed.headers)
    assert parsed is not None
    assert parsed.timestamp == 1_790_000_000
    assert parsed.verifies("PUT", "/api/v1/x?y=1", BODY)
