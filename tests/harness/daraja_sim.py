"""The Daraja simulator as a real process for the session (``sim_process``), reset for each test
(``daraja``), a callback receiver, and a small Daraja caller.

The caller here is written for the tests from Daraja's documentation; it is not the oracle's
Daraja client, so the two cannot share a misreading.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nishati_dev.daraja_sim.settings import (
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
    TEST_B2C_SHORTCODE,
    TEST_CONSUMER_KEY,
    TEST_CONSUMER_SECRET,
    TEST_INITIATOR_NAME,
    TEST_INITIATOR_PASSWORD,
)
from nishati_dev.processes import DarajaSimService, free_port

FAST = {"callback_delay_secs": 0.05, "long_delay_secs": 0.6, "duplicate_gap_secs": 0.02}
SANDBOX_PHONE = "254708374149"


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float


@dataclass
class Receiver:
    """A stdlib HTTP server on a free loopback port that keeps every JSON POST."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.changed:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """At least ``count`` POSTs to ``path``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [r for r in self.received if r.path == path]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self.changed.wait(left)
        assert len(found) >= count, f"{len(found)} POSTs to {path}, wanted {count}"
        return found

    def clear(self) -> None:
        with self.changed:
            self.received.clear()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length))
            with receiver.changed:
                receiver.received.append(Received(self.path, body, time.monotonic()))
                receiver.changed.notify_all()
            reply = b'{"ResultCode":0,"ResultDesc":"Accepted"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", found.port), _handler(found))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def sim_process() -> Iterator[DarajaSimService]:
    with DarajaSimService(FAST) as sim:
        yield sim


def seal(certificate_pem: bytes, password: str) -> str:
    """The SecurityCredential: the password RSA-encrypted (PKCS#1 v1.5) to the certificate."""
    key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return base64.b64encode(key.encrypt(password.encode(), padding.PKCS1v15())).decode()


class Daraja:
    """Calls one simulator the way Daraja's documentation says to."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def token(self, key: str = TEST_CONSUMER_KEY, secret: str = TEST_CONSUMER_SECRET) -> str:
        reply = self.http.get(
            "/oauth/v1/generate", params={"grant_type": "client_credentials"}, auth=(key, secret)
        )
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token

    def post(
        self, path: str, body: object, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        if token is None:
            self._token = self._token or self.token()
            token = self._token
        return self.http.post(
            path, json=body, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    @staticmethod
    def password(stamp: str, shortcode: str = SANDBOX_SHORTCODE) -> str:
        return base64.b64encode(f"{shortcode}{SANDBOX_PASSKEY}{stamp}".encode()).decode()

    @staticmethod
    def stamp() -> str:
        return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 3 * 3600))

    def push_body(self, callback_url: str, **changes: object) -> dict[str, object]:
        stamp = self.stamp()
        body: dict[str, object] = {
            "BusinessShortCode": SANDBOX_SHORTCODE,
            "Password": self.password(stamp),
            "Timestamp": stamp,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": 1,
            "PartyA": SANDBOX_PHONE,
            "PartyB": SANDBOX_SHORTCODE,
            "PhoneNumber": SANDBOX_PHONE,
            "CallBackURL": callback_url,
            "AccountReference": "NISHATI-T1",
            "TransactionDesc": "Solar kWh",
        }
        if "phone" in changes:
            phone = changes.pop("phone")
            body["PartyA"] = body["PhoneNumber"] = phone
        body.update(changes)
        return body

    def push(self, callback_url: str, **changes: object) -> httpx.Response:
        return self.post(
            "/mpesa/stkpush/v1/processrequest", self.push_body(callback_url, **changes)
        )

    def query(self, checkout_request_id: str, token: str | None = None) -> httpx.Response:
        stamp = self.stamp()
        body = {
            "BusinessShortCode": SANDBOX_SHORTCODE,
            "Password": self.password(stamp),
            "Timestamp": stamp,
            "CheckoutRequestID": checkout_request_id,
        }
        return self.post("/mpesa/stkpushquery/v1/query", body, token=token)

    def certificate(self) -> bytes:
        return self.http.get("/simulator/certificate").content

    def b2c_body(
        self, originator: str, result_path: str, receiver: Receiver, **changes: object
    ) -> dict[str, object]:
        body: dict[str, object] = {
            "OriginatorConversationID": originator,
            "InitiatorName": TEST_INITIATOR_NAME,
            "SecurityCredential": seal(self.certificate(), TEST_INITIATOR_PASSWORD),
            "CommandID": "BusinessPayment",
            "Amount": 120,
            "PartyA": TEST_B2C_SHORTCODE,
            "PartyB": SANDBOX_PHONE,
            "Remarks": "Solar sale payout",
            "QueueTimeOutURL": receiver.url(f"{result_path}/timeout"),
            "ResultURL": receiver.url(f"{result_path}/result"),
            "Occassion": "trade 7",
        }
        body.update(changes)
        return body

    def b2c(
        self, originator: str, result_path: str, receiver: Receiver, **changes: object
    ) -> httpx.Response:
        body = self.b2c_body(originator, result_path, receiver, **changes)
        return self.post("/mpesa/b2c/v3/paymentrequest", body)

    def status(self, result_path: str, receiver: Receiver, **ids: str) -> httpx.Response:
        body = {
            "Initiator": TEST_INITIATOR_NAME,
            "SecurityCredential": seal(self.certificate(), TEST_INITIATOR_PASSWORD),
            "CommandID": "TransactionStatusQuery",
            "PartyA": TEST_B2C_SHORTCODE,
            "IdentifierType": "4",
            "ResultURL": receiver.url(f"{result_path}/result"),
            "QueueTimeOutURL": receiver.url(f"{result_path}/timeout"),
            "Remarks": "Reconcile",
            "Occasion": "",
            **ids,
        }
        return self.post("/mpesa/transactionstatus/v1/query", body)

    def scenario(self, **rule: object) -> None:
        assert self.http.post("/simulator/scenario", json=rule).status_code == 200

    def callbacks(self, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get("/simulator/callbacks", params=params).json()
        return found

    def wait_callbacks(
        self, count: int, timeout: float = 3.0, **params: str
    ) -> list[dict[str, Any]]:
        """The simulator's delivery records, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.callbacks(**params)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(found) >= count, found
        return found


@pytest.fixture
def daraja(sim_process: DarajaSimService, receiver: Receiver) -> Iterator[Daraja]:
    """The session's simulator, reset for each test (tokens survive resets)."""
    client = Daraja(sim_process.url)
    assert client.http.post("/simulator/reset").status_code == 200
    receiver.clear()
    try:
        yield client
    finally:
        client.close()


def error(reply: httpx.Response) -> tuple[int, str, str]:
    """(HTTP status, errorCode, errorMessage) of a Daraja error body, which has a requestId."""
    body = reply.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}, body
    return reply.status_code, body["errorCode"], body["errorMessage"]


def items(callback: dict[str, Any]) -> dict[str, Any]:
    """CallbackMetadata items by Name (Balance has no Value)."""
    found = callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    return {item["Name"]: item.get("Value") for item in found}


def parameters(result: dict[str, Any]) -> dict[str, Any]:
    found = result["Result"]["ResultParameters"]["ResultParameter"]
    return {item["Key"]: item.get("Value") for item in found}
