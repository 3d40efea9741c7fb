"""Every reply shape maps to a named outcome: pending queries, mismatched replies, replies that
are not Daraja's (a gateway's 429, a firewall's HTML, a proxy's 502), timeouts, huge bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from nishati_oracle.daraja import (
    B2CAccepted,
    B2CAlreadySubmitted,
    DarajaApiError,
    DarajaClient,
    DarajaError,
    DarajaOutcomeUnknown,
    GatewayFailure,
    GatewayRejected,
    MismatchedReply,
    NoReply,
    RateLimited,
    ServerError,
    StkQueryCompleted,
    StkQueryPending,
    UnexpectedResponse,
    UnknownResultCode,
    same_request,
)
from nishati_oracle.daraja.client import MAX_REPLY_BYTES
from tests.daraja.fake import STK_ACCEPTED, FakeDaraja, Sleeps, config, error_body, make_client
from tests.daraja.test_client import B2C_ACCEPTED, CERT, b2c_kwargs, push_kwargs

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"
RESULT_URL = "https://oracle.example/daraja/result/s3cr3t"
TIMEOUT_URL = "https://oracle.example/daraja/timeout/s3cr3t"
CHECKOUT = "ws_CO_191220191020363925"
HTML_403 = "<html><head><title>403 Forbidden</title></head><body>Request blocked.</body></html>"


def query_reply(**fields: object) -> httpx.Response:
    return httpx.Response(200, json={"CheckoutRequestID": CHECKOUT, **fields})


# ---------------------------------------------------------------- 1: STK Query still processing


@pytest.mark.parametrize(
    "reply",
    [
        # The sandbox, as recorded in a public integration note: no ResponseCode at all.
        {"ResultCode": "4999", "ResultDesc": "The transaction is still under processing"},
        {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "22205-34066-1",
            "CheckoutRequestID": CHECKOUT,
            "ResultCode": "4999",
            "ResultDesc": "The transaction is still under processing",
        },
        {"ResponseCode": "0", "ResultCode": 4999, "ResultDesc": ""},
    ],
)
async def test_4999_is_still_processing_never_final(reply: dict[str, object]) -> None:
    fake = FakeDaraja()
    fake.script(QUERY, httpx.Response(200, json=reply))
    async with make_client(fake) as client:
        result = await client.stk_query(CHECKOUT)
    assert isinstance(result, StkQueryPending)
    assert result.result_code == 4999
    assert result.status == "pending"


async def test_a_non_numeric_code_saying_under_processing_is_pending() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, query_reply(ResultCode="", ResultDesc="The transaction is under processing"))
    async with make_client(fake) as client:
        result = await client.stk_query(CHECKOUT)
    assert isinstance(result, StkQueryPending)
    assert result.result_code is None


@pytest.mark.parametrize("status", [500, 200])
async def test_500_001_1001_being_processed_is_pending(status: int) -> None:
    fake = FakeDaraja()
    fake.script(QUERY, error_body("500.001.1001", "The transaction is being processed", status))
    async with make_client(fake) as client:
        result = await client.stk_query(CHECKOUT)
    assert isinstance(result, StkQueryPending)


async def test_a_text_result_code_is_not_final() -> None:
    fake = FakeDaraja()
    fake.script(
        QUERY,
        query_reply(
            ResponseCode="0",
            ResultCode="E3008",
            ResultDesc="Error, the user has a bad debt contract.",
        ),
    )
    async with make_client(fake) as client:
        with pytest.raises(UnknownResultCode) as info:
            await client.stk_query(CHECKOUT)
    assert info.value.code == "E3008"
    assert isinstance(info.value, DarajaOutcomeUnknown)


async def test_the_query_reply_must_be_about_our_checkout() -> None:
    fake = FakeDaraja()
    other = query_reply(ResponseCode="0", ResultCode="0", ResultDesc="ok")
    other_body = {**json.loads(other.content), "CheckoutRequestID": "ws_CO_someone_else"}
    fake.script(QUERY, httpx.Response(200, json=other_body))
    async with make_client(fake) as client:
        with pytest.raises(MismatchedReply):
            await client.stk_query(CHECKOUT)


async def test_a_query_reply_without_its_id_is_ours() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, httpx.Response(200, json={"ResponseCode": "0", "ResultCode": "1032"}))
    async with make_client(fake) as client:
        result = await client.stk_query(CHECKOUT)
    assert isinstance(result, StkQueryCompleted)
    assert (result.checkout_request_id, result.result_code) == (CHECKOUT, 1032)


# ---------------------------------------------------------------- 2: B2C ids


async def test_b2c_keeps_both_ids_to_match_a_result_on_either() -> None:
    fake = FakeDaraja()
    fake.script(B2C, httpx.Response(200, json=B2C_ACCEPTED))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        accepted = await client.b2c_payment(**b2c_kwargs())
    assert isinstance(accepted, B2CAccepted)
    assert accepted.ids == {"payout-42", "AG_20191219_00005797af5d7d75f652"}
    # Daraja's own result samples carry an OriginatorConversationID it generated.
    assert same_request(
        accepted.ids, {"53e3-4aa8-9fe0-8fb5e4092cdd3533373", "AG_20191219_00005797af5d7d75f652"}
    )
    assert same_request(accepted.ids, {"payout-42", ""})
    assert not same_request(accepted.ids, {"53e3-4aa8-9fe0", "AG_other"})
    assert not same_request({"", "payout-42"}, {""})


async def test_b2c_reply_naming_another_originator_id_is_mismatched() -> None:
    fake = FakeDaraja()
    fake.script(B2C, httpx.Response(200, json={**B2C_ACCEPTED, "OriginatorConversationID": "x-1"}))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        with pytest.raises(MismatchedReply) as info:
            await client.b2c_payment(**b2c_kwargs())
    assert info.value.may_have_been_processed


async def test_b2c_duplicate_500_002_1001_is_already_submitted() -> None:
    fake = FakeDaraja()
    fake.script(B2C, error_body("500.002.1001", "Duplicate OriginatorConversationID."))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        result = await client.b2c_payment(**b2c_kwargs())
    assert result == B2CAlreadySubmitted("payout-42", "Duplicate OriginatorConversationID.")


# ---------------------------------------------------------------- 4: replies that are not Daraja's


async def test_a_gateway_429_is_retried_after_retry_after_then_named() -> None:
    fake = FakeDaraja()
    busy = httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "3"})
    fake.script(PUSH, busy, busy, httpx.Response(200, json=STK_ACCEPTED))
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        accepted = await client.stk_push(**push_kwargs())
    assert accepted.checkout_request_id == CHECKOUT
    assert sleeps.delays == [3.0, 3.0]  # Retry-After over the 1 s, 2 s backoff

    fake = FakeDaraja()
    fake.script(PUSH, *[httpx.Response(429, html="<h1>Slow down</h1>")] * 4)
    async with make_client(fake, sleeps=Sleeps()) as client:
        with pytest.raises(RateLimited) as info:
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 4
    assert not info.value.may_have_been_processed
    assert info.value.status_code == 429


async def test_retry_after_is_capped() -> None:
    fake = FakeDaraja()
    fake.script(
        QUERY,
        httpx.Response(429, text="", headers={"Retry-After": "3600"}),
        query_reply(ResponseCode="0", ResultCode="0"),
    )
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        await client.stk_query(CHECKOUT)
    assert sleeps.delays == [16.0]


async def test_a_firewall_html_page_is_a_refusal_with_an_excerpt() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(403, html=HTML_403))
    async with make_client(fake) as client:
        with pytest.raises(GatewayRejected) as info:
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1
    assert info.value.error_code == "HTTP 403"
    assert "Request blocked" in str(info.value)
    assert not info.value.may_have_been_processed


async def test_a_proxy_502_on_a_push_is_unknown_and_not_resent() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(502, html="<html>Bad Gateway</html>"))
    async with make_client(fake) as client:
        with pytest.raises(GatewayFailure) as info:
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1
    assert info.value.may_have_been_processed
    assert info.value.status_code == 502
    assert "Bad Gateway" in info.value.excerpt


async def test_a_proxy_503_on_a_query_is_retried_then_named() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, *[httpx.Response(503, text="Service Unavailable")] * 4)
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        with pytest.raises(GatewayFailure):
            await client.stk_query(CHECKOUT)
    assert len(fake.sent(QUERY)) == 4
    assert sleeps.delays == [1.0, 2.0, 4.0]


async def test_a_push_answered_200_with_html_may_have_been_accepted() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, html="<html>Welcome</html>"))
    async with make_client(fake) as client:
        with pytest.raises(UnexpectedResponse) as info:
            await client.stk_push(**push_kwargs())
    assert info.value.may_have_been_processed
    assert len(fake.sent(PUSH)) == 1


async def test_a_huge_body_is_not_read_whole() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, text="x" * (MAX_REPLY_BYTES * 20)))
    async with make_client(fake) as client:
        with pytest.raises(UnexpectedResponse) as info:
            await client.stk_push(**push_kwargs())
    assert len(info.value.excerpt) <= 200


async def test_daraja_internal_server_error_is_both_named_and_unknown() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, error_body("500.003.1001", "Internal Server Error"))
    async with make_client(fake) as client:
        with pytest.raises(ServerError) as info:
            await client.stk_push(**push_kwargs())
    assert isinstance(info.value, DarajaApiError)
    assert isinstance(info.value, DarajaOutcomeUnknown)
    assert info.value.error_code == "500.003.1001"


async def test_read_timeouts_that_persist_are_no_reply_not_unavailable() -> None:
    fake = FakeDaraja()
    fake.script(B2C, *[httpx.ReadTimeout("slow")] * 4)
    async with make_client(fake, cfg=config(certificate=CERT.pem), sleeps=Sleeps()) as client:
        with pytest.raises(NoReply) as info:
            await client.b2c_payment(**b2c_kwargs())
    assert info.value.may_have_been_processed
    assert len(fake.sent(B2C)) == 4


def _huge_nesting() -> httpx.Response:
    return httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000)


# Every shape a reply can take, on every call: each ends as a DarajaError, never anything else.
SHAPES: dict[str, Callable[[], httpx.Response | Exception]] = {
    "429 html": lambda: httpx.Response(429, html="<h1>Too many</h1>"),
    "429 empty": lambda: httpx.Response(429),
    "403 html": lambda: httpx.Response(403, html=HTML_403),
    "400 empty": lambda: httpx.Response(400),
    "401 empty": lambda: httpx.Response(401),
    "404 text": lambda: httpx.Response(404, text="Not Found"),
    "301 redirect": lambda: httpx.Response(301, headers={"Location": "https://elsewhere/"}),
    "500 empty": lambda: httpx.Response(500),
    "502 html": lambda: httpx.Response(502, html="<html>Bad Gateway</html>"),
    "504 json": lambda: httpx.Response(504, json={"message": "timeout"}),
    "200 html": lambda: httpx.Response(200, html="<html></html>"),
    "200 list": lambda: httpx.Response(200, json=[1, 2, 3]),
    "200 string": lambda: httpx.Response(200, json="ok"),
    "200 empty object": lambda: httpx.Response(200, json={}),
    "200 null codes": lambda: httpx.Response(200, json={"ResponseCode": None, "ResultCode": None}),
    "200 nested": _huge_nesting,
    "200 not utf-8": lambda: httpx.Response(200, content=b"\xff\xfe{\x00"),
    "error body odd": lambda: httpx.Response(418, json={"errorCode": None, "errorMessage": 5}),
    "apigee fault": lambda: httpx.Response(
        401, json={"fault": {"faultstring": "Invalid access token", "detail": {}}}
    ),
    "read timeout": lambda: httpx.ReadTimeout("slow"),
    "dropped": lambda: httpx.RemoteProtocolError("peer closed"),
    "connect refused": lambda: httpx.ConnectError("refused"),
    "decoding": lambda: httpx.DecodingError("bad gzip"),
}

Call = Callable[[DarajaClient], Awaitable[Any]]
CALLS: dict[str, tuple[str, Call]] = {
    "push": (PUSH, lambda c: c.stk_push(**push_kwargs())),
    "query": (QUERY, lambda c: c.stk_query(CHECKOUT)),
    "b2c": (B2C, lambda c: c.b2c_payment(**b2c_kwargs())),
    "status": (
        STATUS,
        lambda c: c.transaction_status(
            originator_conversation_id="payout-42",
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
        ),
    ),
    "reversal": (
        REVERSAL,
        lambda c: c.reversal(
            transaction_id="NLJ7RT61SV",
            amount=5,
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
        ),
    ),
    "oauth": (
        "/oauth/v1/generate",
        lambda c: c.stk_query(CHECKOUT),
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("call", CALLS)
async def test_every_reply_shape_is_a_named_outcome(call: str, shape: str) -> None:
    path, make = CALLS[call]
    fake = FakeDaraja()
    fake.script(path, *[SHAPES[shape]() for _ in range(8)])
    async with make_client(fake, cfg=config(certificate=CERT.pem), sleeps=Sleeps()) as client:
        with pytest.raises(DarajaError) as info:
            await make(client)
    # Whatever it was, the family says whether money may have moved, and a push that may have
    # reached Daraja is never sent twice.
    assert isinstance(info.value.may_have_been_processed, bool)
    if call == "push" and info.value.may_have_been_processed:
        assert len(fake.sent(PUSH)) == 1


@pytest.mark.parametrize("shape", SHAPES)
async def test_no_reply_shape_escapes_the_trading_gateway(shape: str) -> None:
    """Issue 15 (4): a 4xx/5xx that is not Daraja's escaped ``DarajaGateway.push``; every
    shape now comes back as a delivery the trading layer knows."""
    from nishati_oracle.trading.gateway import DarajaGateway, Delivery

    fake = FakeDaraja()
    fake.script(PUSH, *[SHAPES[shape]() for _ in range(8)])
    fake.script(QUERY, *[SHAPES[shape]() for _ in range(8)])
    gateway = DarajaGateway(config())
    await gateway.client.aclose()
    gateway.client = make_client(fake, sleeps=Sleeps())
    pushed = await gateway.push(
        phone="0708374149",
        amount_kes=5,
        reference="NISHATI-1",
        description="Solar kWh",
        callback_url="https://oracle.example/cb/abc",
    )
    assert pushed.delivery in (Delivery.refused, Delivery.unknown)
    status = await gateway.query(CHECKOUT)
    assert status.pending
