"""A scripted Daraja behind ``httpx.MockTransport``: each path answers from a queue of replies
(a response, an exception to raise, or a function of the request), and every request is kept."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from nishati_oracle.daraja import DarajaClient, DarajaConfig

SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
SANDBOX_MSISDN = "254708374149"
BASE_URL = "https://daraja.test"
INITIATOR_PASSWORD = "Safaricom999!*!"  # noqa: S105 - the public sandbox test password

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def error_body(code: str, message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(
        status, json={"requestId": "1234-5678-1", "errorCode": code, "errorMessage": message}
    )


def token_reply(value: str, expires_in: int | str = 3599) -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "expires_in": expires_in})


STK_ACCEPTED = {
    "MerchantRequestID": "29115-34620561-1",
    "CheckoutRequestID": "ws_CO_191220191020363925",
    "ResponseCode": "0",
    "ResponseDescription": "Success. Request accepted for processing",
    "CustomerMessage": "Success. Request accepted for processing",
}


@dataclass
class FakeDaraja:
    """Paths not scripted answer: OAuth with a fresh token each time, others with HTTP 404."""

    replies: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    requests: list[httpx.Request] = field(default_factory=list)
    token_delay: float = 0.0
    tokens_issued: int = 0
    token_expires_in: int | str = 3599

    def script(self, path: str, *replies: Reply) -> None:
        self.replies[path].extend(replies)

    def sent(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def bodies(self, path: str) -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.sent(path)]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.replies.get(request.url.path)
        if queue:
            reply = queue.popleft()
            if isinstance(reply, Exception):
                raise reply
            return reply(request) if callable(reply) else reply
        if request.url.path == "/oauth/v1/generate":
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            self.tokens_issued += 1
            return token_reply(f"tok-{self.tokens_issued}", self.token_expires_in)
        return httpx.Response(404, text="no script")


@dataclass
class Clock:
    t: float = 1_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Sleeps:
    """Records the delays the client asked for, without waiting."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, secs: float) -> None:
        self.delays.append(secs)


@dataclass(frozen=True)
class CertPair:
    key: rsa.RSAPrivateKey
    pem: bytes


def self_signed_cert() -> CertPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "daraja test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return CertPair(key, cert.public_bytes(serialization.Encoding.PEM))


def config(certificate: bytes | None = None, **overrides: object) -> DarajaConfig:
    values: dict[str, object] = {
        "base_url": BASE_URL,
        "consumer_key": SecretStr("ck-test"),
        "consumer_secret": SecretStr("cs-test"),
        "shortcode": SANDBOX_SHORTCODE,
        "passkey": SecretStr(SANDBOX_PASSKEY),
        "initiator_name": "testapi",
        "initiator_password": SecretStr(INITIATOR_PASSWORD),
        "certificate": certificate,
        "b2c_shortcode": "600996",
        "backoff_secs": 1.0,
        "max_attempts": 4,
    }
    values.update(overrides)
    return DarajaConfig(**values)  # type: ignore[arg-type]


# 21:30 UTC on New Year's Eve is 00:30 on New Year's Day in Nairobi (UTC+3).
FIXED_NOW = dt.datetime(2024, 12, 31, 21, 30, 0, tzinfo=dt.UTC)
FIXED_TIMESTAMP = "20250101003000"


def make_client(
    fake: FakeDaraja,
    *,
    cfg: DarajaConfig | None = None,
    clock: Clock | None = None,
    sleeps: Sleeps | None = None,
) -> DarajaClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return DarajaClient(
        cfg if cfg is not None else config(),
        http=http,
        now=lambda: FIXED_NOW,
        clock=clock if clock is not None else Clock(),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def basic_auth(request: httpx.Request) -> tuple[str, str]:
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password
