"""The OAuth token: cached, renewed early, renewed once for many callers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from nishati_oracle.daraja import (
    AuthenticationFailed,
    DarajaClient,
    FileTokenStore,
    InvalidToken,
    StoredToken,
    TokenUnavailable,
    UnexpectedResponse,
)
from nishati_oracle.daraja.token import parse_token_reply
from tests.client.support import written_in
from tests.daraja.fake import (
    STK_ACCEPTED,
    Clock,
    FakeDaraja,
    Sleeps,
    basic_auth,
    config,
    error_body,
    make_client,
    token_reply,
)

OAUTH = "/oauth/v1/generate"
QUERY = "/mpesa/stkpushquery/v1/query"
COMPLETED = {
    "ResponseCode": "0",
    "ResponseDescription": "The service request has been accepted successsfully",
    "MerchantRequestID": "22205-34066-1",
    "CheckoutRequestID": "ws_CO_13012021093521236557",
    "ResultCode": "0",
    "ResultDesc": "The service request is processed successfully.",
}


def completed(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["CheckoutRequestID"]
    return httpx.Response(200, json={**COMPLETED, "CheckoutRequestID": asked})


async def test_token_request_is_basic_auth_client_credentials() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, completed)
    async with make_client(fake) as client:
        await client.stk_query("ws_CO_1")
    (request,) = fake.sent(OAUTH)
    assert request.method == "GET"
    assert request.url.params["grant_type"] == "client_credentials"
    assert basic_auth(request) == ("ck-test", "cs-test")
    assert fake.sent(QUERY)[0].headers["Authorization"] == "Bearer tok-1"


async def test_one_refresh_for_fifty_concurrent_callers() -> None:
    fake = FakeDaraja(token_delay=0.02)
    fake.script(QUERY, *[completed] * 50)
    async with make_client(fake) as client:
        results = await asyncio.gather(*(client.stk_query(f"ws_CO_{i}") for i in range(50)))
    assert len(results) == 50
    assert len(fake.sent(OAUTH)) == 1
    assert {r.headers["Authorization"] for r in fake.sent(QUERY)} == {"Bearer tok-1"}


@pytest.mark.parametrize("expires_in", [3599, "3599"])
async def test_token_is_renewed_a_minute_before_it_expires(expires_in: int | str) -> None:
    fake = FakeDaraja(token_expires_in=expires_in)
    fake.script(QUERY, *[completed] * 3)
    clock = Clock()
    async with make_client(fake, clock=clock) as client:
        await client.stk_query("ws_CO_1")
        clock.t += 3599 - 61  # 61 s left: still good
        await client.stk_query("ws_CO_2")
        assert len(fake.sent(OAUTH)) == 1
        clock.t += 2  # 59 s left: renewed now, not after Daraja refuses it
        await client.stk_query("ws_CO_3")
    assert len(fake.sent(OAUTH)) == 2
    assert [r.headers["Authorization"] for r in fake.sent(QUERY)] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_invalid_token_is_dropped_and_the_call_retried_once() -> None:
    fake = FakeDaraja()
    fake.script(
        "/mpesa/stkpush/v1/processrequest",
        error_body("404.001.03", "Invalid Access Token", 404),
        httpx.Response(200, json=STK_ACCEPTED),
    )
    async with make_client(fake) as client:
        accepted = await client.stk_push(
            phone="0708374149",
            amount=1,
            account_reference="NISHATI",
            description="Solar kWh",
            callback_url="https://oracle.example/cb/abc",
        )
    assert accepted.checkout_request_id == "ws_CO_191220191020363925"
    pushes = fake.sent("/mpesa/stkpush/v1/processrequest")
    assert [r.headers["Authorization"] for r in pushes] == ["Bearer tok-1", "Bearer tok-2"]


async def test_invalid_token_twice_is_raised() -> None:
    fake = FakeDaraja()
    fake.script(
        QUERY,
        error_body("404.001.03", "Invalid Access Token", 404),
        error_body("404.001.03", "Invalid Access Token", 404),
    )
    async with make_client(fake) as client:
        with pytest.raises(InvalidToken, match=r"404\.001\.03"):
            await client.stk_query("ws_CO_1")
    assert len(fake.sent(OAUTH)) == 2


async def test_refused_credentials_are_named_and_secret_free() -> None:
    fake = FakeDaraja()
    fake.script(OAUTH, httpx.Response(400, text=""))
    async with make_client(fake) as client:
        with pytest.raises(AuthenticationFailed) as info:
            await client.stk_query("ws_CO_1")
    assert "cs-test" not in str(info.value)
    assert "ck-test" not in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        {"access_token": "", "expires_in": 3599},
        {"access_token": "t", "expires_in": "soon"},
        {"access_token": "t"},
        {"access_token": "t", "expires_in": 0},
    ],
)
async def test_malformed_token_reply(reply: dict[str, object]) -> None:
    fake = FakeDaraja()
    fake.script(OAUTH, httpx.Response(200, json=reply))
    async with make_client(fake) as client:
        with pytest.raises(TokenUnavailable) as info:
            await client.stk_query("ws_CO_1")
    # The query itself never left: no token, no call.
    assert isinstance(info.value.__cause__, UnexpectedResponse)
    assert fake.sent(QUERY) == []


@pytest.mark.parametrize(
    "expires_in", [written_in(script, "3599") for script in ("arabic-indic", "full-width")] + ["²"]
)
def test_expiry_in_other_digits_is_unexpected(expires_in: str) -> None:
    with pytest.raises(UnexpectedResponse, match="expires_in"):
        parse_token_reply({"access_token": "t", "expires_in": expires_in})


async def test_short_lived_token_is_renewed_halfway() -> None:
    fake = FakeDaraja()
    fake.script(OAUTH, token_reply("short", 100), token_reply("next", 3599))
    fake.script(QUERY, completed, completed)
    clock = Clock()
    async with make_client(fake, clock=clock) as client:
        await client.stk_query("ws_CO_1")
        clock.t += 50
        await client.stk_query("ws_CO_2")
    assert [r.headers["Authorization"] for r in fake.sent(QUERY)] == [
        "Bearer short",
        "Bearer next",
    ]


# ---------------------------------------------------------------- renewal on every token code


@pytest.mark.parametrize(
    "refusal",
    [
        error_body("404.001.03", "Invalid Access Token", 404),
        error_body("400.003.01", "Invalid Access Token", 400),
        error_body("401.003.01", "Invalid Access Token", 401),
        error_body("401.002.01", "Error Occurred - Invalid Access Token - XXX", 401),
        error_body("401.001", "Invalid Access Token", 401),
        error_body("400.099.99", "Error Occurred - Invalid Access Token - Invalid access token"),
        httpx.Response(401, text=""),
        httpx.Response(401, json={"fault": {"faultstring": "Invalid access token"}}),
    ],
)
async def test_every_invalid_token_answer_renews_and_resends(refusal: httpx.Response) -> None:
    fake = FakeDaraja()
    fake.script(QUERY, refusal, completed)
    async with make_client(fake) as client:
        await client.stk_query("ws_CO_1")
    assert [r.headers["Authorization"] for r in fake.sent(QUERY)] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


@pytest.mark.parametrize(
    ("code", "message"),
    [("400.008.01", "Invalid Authentication passed"), ("400.008.02", "Invalid grant type passed")],
)
async def test_oauth_error_codes_are_authentication_failures(code: str, message: str) -> None:
    fake = FakeDaraja()
    fake.script(OAUTH, error_body(code, message, 400))
    async with make_client(fake) as client:
        with pytest.raises(AuthenticationFailed) as info:
            await client.stk_query("ws_CO_1")
    assert info.value.error_code == code
    assert fake.sent(QUERY) == []


# ---------------------------------------------------------------- one renewal in flight


async def test_a_failed_renewal_is_shared_not_repeated_by_each_waiter() -> None:
    fake = FakeDaraja(token_delay=0.02)
    fake.script(OAUTH, httpx.Response(502, text="Bad Gateway"))
    async with make_client(fake) as client:
        results = await asyncio.gather(
            *(client.stk_query(f"ws_CO_{i}") for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, TokenUnavailable) for r in results)
        assert len(fake.sent(OAUTH)) == 1
        # The next caller starts a fresh renewal, which works.
        fake.script(QUERY, completed)
        await client.stk_query("ws_CO_again")
    assert len(fake.sent(OAUTH)) == 2


async def test_a_cancelled_caller_does_not_cancel_the_renewal_others_wait_on() -> None:
    fake = FakeDaraja(token_delay=0.05)
    fake.script(QUERY, completed, completed)
    async with make_client(fake) as client:
        first = asyncio.ensure_future(client.stk_query("ws_CO_1"))
        second = asyncio.ensure_future(client.stk_query("ws_CO_2"))
        await asyncio.sleep(0.01)
        first.cancel()
        result = await second
    assert result.checkout_request_id == "ws_CO_2"
    assert len(fake.sent(OAUTH)) == 1


# ---------------------------------------------------------------- several processes, one token


class SingleTokenDaraja(FakeDaraja):
    """Daraja as documented: each new token invalidates the app's previous one."""

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        reply = await super().__call__(request)
        if request.url.path == OAUTH:
            return reply
        if request.headers.get("Authorization") != f"Bearer tok-{self.tokens_issued}":
            return error_body("404.001.03", "Invalid Access Token", 404)
        return reply


async def test_processes_sharing_a_token_store_do_not_invalidate_each_other(
    tmp_path: Path,
) -> None:
    fake = SingleTokenDaraja()
    fake.script(QUERY, *[completed] * 40)
    store = FileTokenStore(tmp_path / "daraja-token.json")
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    clients = [
        DarajaClient(config(), http=http, token_store=FileTokenStore(store.path), sleep=Sleeps())
        for _ in range(3)
    ]
    for round_ in range(4):
        for i, client in enumerate(clients):
            await client.stk_query(f"ws_CO_{round_}_{i}")
    assert fake.tokens_issued == 1
    assert all(r.headers["Authorization"] == "Bearer tok-1" for r in fake.sent(QUERY))
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    await http.aclose()


async def test_without_a_shared_store_processes_fight_over_the_token() -> None:
    """Why the store exists: two processes each renewing invalidate one another."""
    fake = SingleTokenDaraja()
    fake.script(QUERY, *[completed] * 40)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    a, b = (DarajaClient(config(), http=http, sleep=Sleeps()) for _ in range(2))
    for i in range(3):
        await a.stk_query(f"ws_CO_a{i}")
        await b.stk_query(f"ws_CO_b{i}")
    assert fake.tokens_issued > 2
    await http.aclose()


async def test_a_stored_token_daraja_refused_is_not_reused(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(StoredToken("stale", time.time() + 3_000))
    fake = FakeDaraja()
    fake.script(QUERY, error_body("404.001.03", "Invalid Access Token", 404), completed)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    client = DarajaClient(config(), http=http, token_store=store, sleep=Sleeps())
    await client.stk_query("ws_CO_1")
    assert [r.headers["Authorization"] for r in fake.sent(QUERY)] == [
        "Bearer stale",
        "Bearer tok-1",
    ]
    stored = await store.load()
    assert stored is not None
    assert stored.value == "tok-1"
    assert stored.expires_at == pytest.approx(time.time() + 3599, abs=5)
    await http.aclose()
