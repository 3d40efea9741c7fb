"""The HTTP contract on every route: bad input is a 4xx in the one error shape (never a 500, never
a large answer, never the request echoed), every body is capped, the OpenAPI entries list what
each route answers, /docs needs no internet, and a failure is logged with its stack."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.routing import Mount, Route

from nishati_client.errors import RpcUnavailable
from nishati_dev.sandbox import Harness
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import HttpSettings
from nishati_oracle.http.errors import DETAIL_CHARS
from nishati_oracle.readings.ingest import READINGS_PATH
from tests.harness.oracle import (
    AS_OPERATOR,
    CALLBACK_TOKEN,
    IN_PROCESS_TRADING,
    OracleWorld,
    start_world,
)

# An error answer is small whatever was sent.
MAX_ERROR_BYTES = 2_048
# Bigger than any route's cap (the readings route's is about 1 MB).
OVERSIZED = 2 * 1024 * 1024


def in_digits(zero: int, number: str) -> str:
    """``number`` written with the digits from code point ``zero`` on."""
    return "".join(chr(zero + int(d)) for d in number)


# Arabic-Indic and full-width digits: `\d` matches them, ASCII encoding does not.
UNICODE_PHONES = [
    in_digits(0x0660, "0712345678"),
    in_digits(0xFF10, "0712345678"),
    "+" + in_digits(0x0660, "254712345678"),
]


@pytest.fixture
async def api(litesvm: Harness, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    """The whole app, trading included, on SQLite."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    started = await start_world(litesvm, database, tmp_path, **IN_PROCESS_TRADING)
    transport = httpx.ASGITransport(app=started.app, raise_app_exceptions=False)
    started.http = httpx.AsyncClient(transport=transport, base_url="http://oracle")
    async with started.app.router.lifespan_context(started.app), started.http:
        yield started


def operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route the app serves, from its routes and its OpenAPI
    schema (which documents the readings route served beneath the routing)."""
    seen: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            seen.add(("GET", route.path + "/missing.js"))
        elif isinstance(route, APIRoute | Route):
            seen |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    for path, ops in app.openapi()["paths"].items():
        seen |= {(m.upper(), path) for m in ops}
    yield from sorted(seen)


def concrete(path: str) -> str:
    """A path of the template: the callback token is the real one (so the body is read), other
    parameters a well-formed address."""
    path = path.replace("{token}", CALLBACK_TOKEN)
    return re.sub(r"\{[^}]+\}", str(Keypair().pubkey()), path)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def takes_body(app: FastAPI, method: str, path: str) -> bool:
    return "requestBody" in app.openapi()["paths"].get(path, {}).get(method.lower(), {})


def request_fields(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    """The properties of the route's JSON body, resolved from the OpenAPI schema."""
    schema = app.openapi()
    operation = schema["paths"].get(path, {}).get(method.lower(), {})
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    found: dict[str, Any] = {}
    pending = [body.get("schema", {})]
    while pending:
        part = pending.pop()
        if "$ref" in part:
            pending.append(schema["components"]["schemas"][part["$ref"].rsplit("/", 1)[1]])
        pending += part.get("anyOf", [])
        found |= part.get("properties", {})
    return found


def bad_bodies(app: FastAPI, method: str, path: str) -> dict[str, bytes]:
    fields = request_fields(app, method, path)
    wrong_types = {name: [[]] if "type" in f else {"x": [1]} for name, f in fields.items()}
    bodies = {
        "malformed": b'{"offer": ',
        "not an object": b'[1, "x", null]',
        "wrong types": json.dumps(wrong_types).encode(),
        "nested 500": nested(500),
        "nested 990": nested(990),
        "nested 5000": nested(5_000),
        "nested lists": b"[" * 3_000 + b"]" * 3_000,
        "not UTF-8": b'{"phone": "\xff\xfe"}',
    }
    for i, phone in enumerate(UNICODE_PHONES):
        digits = {name: phone for name in fields}
        bodies[f"unicode digits {i}"] = json.dumps(digits, ensure_ascii=False).encode()
    return bodies


def in_the_one_shape(answer: httpx.Response, what: str) -> None:
    """Not a 5xx (but /readyz's NotReady: this world's Daraja is never reached); an error is
    small and in the one shape (a route that takes no body answers as it would without one)."""
    not_ready = what.startswith("GET /readyz") and answer.status_code == 503
    assert answer.status_code < 500 or not_ready, (
        f"{what}: {answer.status_code} {answer.text[:500]}"
    )
    if not_ready:
        assert answer.json()["daraja"].startswith("down"), answer.text
    if answer.status_code >= 400:
        assert len(answer.content) <= MAX_ERROR_BYTES, f"{what}: {len(answer.content)} bytes"
        body = answer.json()
        assert isinstance(body.get("reason"), str), f"{what}: {body}"
        assert isinstance(body.get("detail"), str), f"{what}: {body}"
        assert len(body["detail"]) <= DETAIL_CHARS


async def test_every_route_answers_bad_input_with_a_small_4xx_in_the_one_shape(
    api: OracleWorld,
) -> None:
    covered = list(operations(api.app))
    assert len(covered) >= 12, covered
    for method, template in covered:
        path = concrete(template)
        body_route = takes_body(api.app, method, template)
        for name, body in bad_bodies(api.app, method, template).items():
            what = f"{method} {template} ({name})"
            headers = {"content-type": "application/json"}
            answer = await api.http.request(method, path, content=body, headers=headers)
            in_the_one_shape(answer, what)
            if body_route and answer.status_code < 400:
                pytest.fail(f"{what}: accepted with {answer.status_code}")
        big = b'{"x": "' + b"a" * OVERSIZED + b'"}'
        answer = await api.http.request(method, path, content=big)
        in_the_one_shape(answer, f"{method} {template} (oversized)")
        if body_route:
            assert answer.status_code == 413, f"{method} {template}: {answer.status_code}"
        other = next(m for m in ("PATCH", "DELETE", "PUT") if (m, template) not in covered)
        answer = await api.http.request(other, path, json={})
        in_the_one_shape(answer, f"{other} {template}")
        assert answer.status_code == 405, f"{other} {template}: {answer.status_code}"
        # Unicode digits where the path takes a parameter.
        if "{" in template:
            for phone in UNICODE_PHONES:
                odd = re.sub(r"\{(?!token)[^}]+\}", phone, template.replace("{token}", "x"))
                answer = await api.http.request(method, odd, json={})
                in_the_one_shape(answer, f"{method} {odd}")


async def test_each_kind_of_route_has_its_cap_from_the_settings(
    litesvm: Harness, tmp_path: Path
) -> None:
    caps = HttpSettings(order_body_bytes=100, callback_body_bytes=200)
    database = f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    world = await start_world(litesvm, database, tmp_path, **IN_PROCESS_TRADING, http=caps)
    order = b'{"offer": "x", "wh": 1, "phone": "0712345678"}'
    callback = f"/api/v1/payments/callback/{CALLBACK_TOKEN}"
    async with world.app.router.lifespan_context(world.app), world.http:
        json_body = {"content-type": "application/json", **AS_OPERATOR}
        for path, cap, refused in [("/api/v1/trades", 100, 404), (callback, 200, 400)]:
            fits = await world.http.post(path, content=order.ljust(cap), headers=json_body)
            assert fits.status_code == refused, fits.text
            over = await world.http.post(path, content=order.ljust(cap + 1), headers=json_body)
            assert (over.status_code, over.json()["reason"]) == (413, "BodyTooLarge")
            assert f"{cap} bytes" in over.json()["detail"]


async def test_unknown_routes_and_methods_answer_in_the_one_shape(api: OracleWorld) -> None:
    missing = await api.http.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
    wrong = await api.http.get("/api/v1/trades")
    assert (wrong.status_code, wrong.json()["reason"]) == (405, "MethodNotAllowed")
    assert wrong.headers["allow"] == "POST"
    readings = await api.http.delete("/api/v1/readings")
    assert (readings.status_code, readings.json()["reason"]) == (405, "MethodNotAllowed")


async def test_a_refused_request_is_not_echoed(api: OracleWorld) -> None:
    phone = "0712345678"
    body = {"offer": "x" * 10_000, "wh": "lots", "phone": phone + "abc"}
    answer = await api.http.post("/api/v1/trades", json=body, headers=AS_OPERATOR)
    assert answer.status_code == 400
    assert answer.json()["reason"] == "MalformedSubmission"
    assert "xxxxxxxxxx" not in answer.text
    assert phone not in answer.text
    assert len(answer.content) <= MAX_ERROR_BYTES


async def test_phones_that_are_not_numbers_are_refused(api: OracleWorld) -> None:
    legacy = {"type": "BUY", "amount": 2.5, "price": 30.0, "phone": "0712345678"}
    for seller, status, reason in [
        ("not a number", 400, "MalformedSubmission"),
        ("12345", 422, "InvalidPhone"),
        *[(phone, 400, "MalformedSubmission") for phone in UNICODE_PHONES],
    ]:
        answer = await api.http.post(
            "/api/execute_trade", json={**legacy, "seller_phone": seller}, headers=AS_OPERATOR
        )
        assert (answer.status_code, answer.json()["reason"]) == (status, reason), seller
    household = f"/api/v1/households/{Keypair().pubkey()}/phone"
    for phone in UNICODE_PHONES:
        order = {"offer": "x", "wh": 1, "phone": phone}
        answer = await api.http.post("/api/v1/trades", json=order, headers=AS_OPERATOR)
        assert answer.status_code == 400, phone
        answer = await api.http.put(household, json={"phone": phone})
        assert answer.status_code == 400, phone


async def test_a_chain_that_is_down_is_a_503(
    api: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await api.member()
    chain = api.services.chain

    async def down(*_: object, **__: object) -> None:
        raise RpcUnavailable("getAccountInfo: connection refused")

    monkeypatch.setattr(chain, "account", down)
    monkeypatch.setattr(chain, "accounts", down)
    legacy = {"type": "BUY", "amount": 2.5, "price": 30.0, "phone": "0712345678"}
    answer = await api.http.post(
        "/api/execute_trade", json={**legacy, "seller_phone": "0700000000"}, headers=AS_OPERATOR
    )
    assert (answer.status_code, answer.json()["reason"]) == (503, "ChainUnavailable"), answer.text
    answer = await api.http.put(
        f"/api/v1/households/{member.address}/phone", json={"phone": "0712345678"}
    )
    assert (answer.status_code, answer.json()["reason"]) == (503, "ChainUnavailable"), answer.text
    assert "connection refused" not in answer.text


async def test_a_household_gone_from_the_chain_is_a_409(
    api: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await api.member()
    await api.market.mint(seller, 10_000)
    offer = await api.market.offer(seller, 10_000)
    assert api.services.trading is not None
    desk = api.services.trading.desk
    gone = Keypair().pubkey()

    async def directory(_: str) -> Pubkey:
        # The directory still names the buyer's household; the chain no longer holds it.
        return gone

    monkeypatch.setattr(desk, "household_by_phone", directory)
    order = {"offer": str(offer.address), "wh": 2_000, "phone": "0712345678"}
    answer = await api.http.post("/api/v1/trades", json=order, headers=AS_OPERATOR)
    assert (answer.status_code, answer.json()["reason"]) == (409, "AccountNotFound"), answer.text
    assert str(gone) in answer.json()["detail"]


async def test_a_household_address_holding_another_account_is_a_409(
    api: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await api.member()
    await api.market.mint(seller, 10_000)
    offer = await api.market.offer(seller, 10_000)
    assert api.services.trading is not None
    desk = api.services.trading.desk

    async def directory(_: str) -> Pubkey:
        # The directory names an address that holds an offer, not a household.
        return offer.address

    monkeypatch.setattr(desk, "household_by_phone", directory)
    order = {"offer": str(offer.address), "wh": 2_000, "phone": "0712345678"}
    answer = await api.http.post("/api/v1/trades", json=order, headers=AS_OPERATOR)
    refusal = (answer.status_code, answer.json()["reason"])
    assert refusal == (409, "AccountTypeMismatch"), answer.text


async def test_a_database_that_is_down_or_locked_is_a_503_logged_with_its_stack(
    api: OracleWorld, monkeypatch: pytest.MonkeyPatch, json_log: io.StringIO
) -> None:
    assert api.services.trading is not None
    trading = api.services.trading
    # A PostgreSQL server that is not there: asyncpg's refused connection, as it comes.
    nowhere = create_async_engine("postgresql+asyncpg://nishati@127.0.0.1:9/nishati")
    monkeypatch.setattr(trading.ledger, "engine", nowhere)

    async def locked(*_: object) -> None:
        raise OperationalError("INSERT", None, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(trading.inbox, "submit", locked)
    monkeypatch.setattr(api.services.pipeline, "submit", locked)
    member = await api.member()
    now = await api.market.now()
    try:
        answers = {
            "/api/v1/payments/{trade_id}": await api.http.get(
                "/api/v1/payments/abc", headers=AS_OPERATOR
            ),
            "/api/v1/payments/callback/{token}": await api.http.post(
                f"/api/v1/payments/callback/{CALLBACK_TOKEN}",
                json={"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 1}}},
            ),
            READINGS_PATH: await api.post(member.meter.read(now)),
        }
    finally:
        await nowhere.dispose()
    for route, answer in answers.items():
        assert answer.status_code == 503, (route, answer.text)
        assert answer.json()["reason"] == "StorageUnavailable", route
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    logged = {line["route"]: line for line in lines if line["event"] == "storage unavailable"}
    assert set(logged) == set(answers)
    assert "ConnectionRefusedError" in logged["/api/v1/payments/{trade_id}"]["exception"]
    assert "database is locked" in logged[READINGS_PATH]["exception"]


async def test_deeply_nested_callbacks_are_malformed(api: OracleWorld) -> None:
    # Deeper than the JSON parser goes, within the callbacks' cap.
    depth = 1_300
    for kind in ("payments/callback", "payouts/result", "payouts/timeout"):
        answer = await api.http.post(f"/api/v1/{kind}/{CALLBACK_TOKEN}", content=nested(depth))
        assert (answer.status_code, answer.json()["reason"]) == (400, "MalformedCallback")
        wrapped = b'{"Body": {"stkCallback": ' + nested(depth) + b"}}"
        answer = await api.http.post(f"/api/v1/{kind}/{CALLBACK_TOKEN}", content=wrapped)
        assert (answer.status_code, answer.json()["reason"]) == (400, "MalformedCallback")


async def test_payments_disabled_is_a_503_in_the_one_shape(world: OracleWorld) -> None:
    answer = await world.http.get("/api/v1/payments/abc")
    assert answer.status_code == 503
    assert answer.json() == {
        "reason": "PaymentsDisabled",
        "detail": "payments are disabled: set NISHATI_PAYMENTS",
    }


async def test_the_openapi_entries_list_every_error_in_the_one_shape(api: OracleWorld) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(schema)
    error = "#/components/schemas/ErrorOut"
    for path, ops in schema["paths"].items():
        for method, operation in ops.items():
            answers = operation["responses"]
            if operation.get("requestBody"):
                assert {"400", "413"} <= set(answers), (method, path)
            for status, answer in answers.items():
                if int(status) < 400:
                    continue
                model = answer["content"]["application/json"]["schema"]
                refs = [part["$ref"] for part in model.get("allOf", [model])]
                assert error in refs, (method, path, status)
    trades = schema["paths"]["/api/v1/trades"]["post"]["responses"]
    assert set(trades) == {"201", "400", "401", "403", "404", "409", "413", "422", "502", "503"}


async def test_docs_load_nothing_from_the_internet(api: OracleWorld) -> None:
    page = await api.http.get("/docs")
    assert page.status_code == 200
    assert "https://" not in page.text
    assert "http://" not in page.text
    assert '"validatorUrl": null' in page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert len(assets) >= 3, assets
    for asset in assets:
        answer = await api.http.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 0


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The oracle's JSON logging into a buffer, for one test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure(json=True)
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


async def test_a_failure_is_a_500_in_the_one_shape_logged_with_its_stack(
    api: OracleWorld, json_log: io.StringIO
) -> None:
    def deep_inside() -> None:
        raise ZeroDivisionError("a bug")

    async def broken(secret: str) -> None:
        deep_inside()

    # A path may hold a secret (a callback's token): the log names the route, not the path.
    api.app.add_api_route("/broken/{secret}", broken)
    answer = await api.http.get("/broken/s3cr3t")
    assert answer.status_code == 500
    assert answer.json()["reason"] == "InternalError"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (failed,) = [line for line in lines if line["event"] == "request failed"]
    assert failed["route"] == "/broken/{secret}"
    assert "s3cr3t" not in json_log.getvalue()
    assert "Traceback (most recent call last)" in failed["exception"]
    assert "in deep_inside" in failed["exception"]
    assert "ZeroDivisionError: a bug" in failed["exception"]
    assert "<traceback object" not in json_log.getvalue()


async def test_a_failure_under_uvicorn_is_logged_once(
    api: OracleWorld, json_log: io.StringIO
) -> None:
    async def broken() -> None:
        raise ZeroDivisionError("a bug")

    api.app.add_api_route("/broken", broken)
    # Listening already: the request waits in the socket's backlog until uvicorn takes it.
    listening = socket.create_server(("127.0.0.1", 0))
    host, port = listening.getsockname()[:2]
    # As the oracle's main runs it; the lifespan is the fixture's.
    config = uvicorn.Config(api.app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            answer = await http.get("/broken")
    finally:
        server.should_exit = True
        await serving
    assert (answer.status_code, answer.json()["reason"]) == (500, "InternalError")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (failed,) = [line for line in lines if line["level"] in ("error", "critical")]
    assert (failed["event"], failed["route"]) == ("request failed", "/broken")
    assert "ZeroDivisionError: a bug" in failed["exception"]


def test_a_standard_library_record_keeps_its_stack(json_log: io.StringIO) -> None:
    """As uvicorn logs a request's exception."""
    try:
        _ = 1 / 0
    except ZeroDivisionError as e:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=e)
    (line,) = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ZeroDivisionError: division by zero" in line["exception"]
