"""The OAuth token: cached, renewed early, renewed once for many callers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from nishati_oracle.daraja import AuthenticationFailed, InvalidToken, UnexpectedResponse
from nishati_oracle.daraja.token import parse_token_reply
from tests.client.support import written_in
from tests.daraja.fake import (
    STK_ACCEPTED,
    Clock,
    FakeDaraja,
    basic_auth,
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


def completed(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=COMPLETED)


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
        with pytest.raises(UnexpectedResponse):
            await client.stk_query("ws_CO_1")


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
