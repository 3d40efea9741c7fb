"""The oracle's Daraja client against the simulator, end to end, for each behaviour of issue 15:
the simulator produces it, the client names it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from nishati_dev.daraja_sim.settings import (
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
    TEST_B2C_SHORTCODE,
    TEST_CERTIFICATE,
    TEST_CONSUMER_KEY,
    TEST_CONSUMER_SECRET,
    TEST_INITIATOR_NAME,
    TEST_INITIATOR_PASSWORD,
)
from nishati_oracle.daraja import (
    B2CAccepted,
    B2CAlreadySubmitted,
    DarajaClient,
    DarajaConfig,
    FileTokenStore,
    GatewayFailure,
    GatewayRejected,
    InvalidField,
    NoReply,
    RateLimited,
    StkQueryCompleted,
    StkQueryPending,
    callback_token,
    parse_b2c_result,
    parse_queue_timeout,
    parse_reversal_result,
    parse_stk_callback,
    parse_transaction_status_result,
    same_request,
)
from tests.harness.daraja_sim import SANDBOX_PHONE, Daraja, Receiver

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
B2C = "/mpesa/b2c/v3/paymentrequest"


def _config(url: str, **changes: object) -> DarajaConfig:
    values: dict[str, object] = {
        "base_url": url,
        "consumer_key": SecretStr(TEST_CONSUMER_KEY),
        "consumer_secret": SecretStr(TEST_CONSUMER_SECRET),
        "shortcode": SANDBOX_SHORTCODE,
        "passkey": SecretStr(SANDBOX_PASSKEY),
        "initiator_name": TEST_INITIATOR_NAME,
        "initiator_password": SecretStr(TEST_INITIATOR_PASSWORD),
        "certificate": TEST_CERTIFICATE,
        "b2c_shortcode": TEST_B2C_SHORTCODE,
        "backoff_secs": 0.01,
        "max_backoff_secs": 0.05,
        **changes,
    }
    return DarajaConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(daraja: Daraja) -> AsyncIterator[DarajaClient]:
    async with DarajaClient(_config(daraja.url)) as found:
        yield found


async def _wait(receiver: Receiver, path: str, count: int = 1) -> list[dict[str, object]]:
    got = await asyncio.to_thread(receiver.wait, path, count)
    return [r.body for r in got]


def _fault(daraja: Daraja, **fault: object) -> None:
    assert daraja.http.post("/simulator/faults", json=fault).status_code == 200


async def test_4999_is_pending_then_the_payment_completes(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    daraja.scenario(phone=SANDBOX_PHONE, pending_reply="4999", decide_after_secs=0.5, count=1)
    path = f"/stk/{callback_token()}"
    pushed = await client.stk_push(
        phone="0708374149",
        amount=25,
        account_reference="NISHATI-1",
        description="Solar kWh",
        callback_url=receiver.url(path),
    )
    pending = await client.stk_query(pushed.checkout_request_id)
    assert isinstance(pending, StkQueryPending)
    assert pending.result_code == 4999
    [body] = await _wait(receiver, path)
    callback = parse_stk_callback(body)
    assert callback.paid
    done = await client.stk_query(pushed.checkout_request_id)
    assert isinstance(done, StkQueryCompleted)
    assert done.paid


async def test_results_with_daraja_ids_match_on_either_and_status_finds_them(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    daraja.scenario(api="b2c", result_ids="daraja", count=1)
    ours, path = str(uuid.uuid4()), f"/b2c/{uuid.uuid4().hex}"
    accepted = await client.b2c_payment(
        originator_conversation_id=ours,
        phone=SANDBOX_PHONE,
        amount=50,
        remarks="Solar sale payout",
        result_url=receiver.url(f"{path}/result"),
        queue_timeout_url=receiver.url(f"{path}/timeout"),
    )
    assert isinstance(accepted, B2CAccepted)
    [body] = await _wait(receiver, f"{path}/result")
    result = parse_b2c_result(body)
    assert result.originator_conversation_id != ours
    assert same_request(accepted.ids, result.ids)
    # The recovery path: Transaction Status by our id (OriginalConversationID on the wire).
    status_path = f"/status/{uuid.uuid4().hex}"
    await client.transaction_status(
        originator_conversation_id=ours,
        result_url=receiver.url(f"{status_path}/result"),
        queue_timeout_url=receiver.url(f"{status_path}/timeout"),
    )
    [answer] = await _wait(receiver, f"{status_path}/result")
    status = parse_transaction_status_result(answer)
    assert status.transaction_status == "Completed"
    assert same_request(accepted.ids, status.queried_ids)
    assert status.receipt == result.receipt
    [sent] = daraja.http.get(
        "/simulator/requests", params={"path": "/mpesa/transactionstatus/v1/query"}
    ).json()
    assert sent["body"]["OriginalConversationID"] == ours
    assert "OriginatorConversationID" not in sent["body"]


async def test_a_payout_resent_is_already_submitted(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    ours, path = str(uuid.uuid4()), f"/b2c/{uuid.uuid4().hex}"
    kwargs: dict[str, object] = {
        "originator_conversation_id": ours,
        "phone": SANDBOX_PHONE,
        "amount": 50,
        "remarks": "Solar sale payout",
        "result_url": receiver.url(f"{path}/result"),
        "queue_timeout_url": receiver.url(f"{path}/timeout"),
    }
    assert isinstance(await client.b2c_payment(**kwargs), B2CAccepted)  # type: ignore[arg-type]
    again = await client.b2c_payment(**kwargs)  # type: ignore[arg-type]
    assert isinstance(again, B2CAlreadySubmitted)
    await _wait(receiver, f"{path}/result")
    paid = [p for p in daraja.http.get("/simulator/transactions").json()["payouts"] if p["paid"]]
    assert len(paid) == 1


async def test_replies_that_are_not_darajas_are_named(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    checkout = (
        await client.stk_push(
            phone=SANDBOX_PHONE,
            amount=3,
            account_reference="NISHATI-2",
            description="Solar kWh",
            callback_url=receiver.url(f"/stk/{uuid.uuid4().hex}"),
        )
    ).checkout_request_id
    # A 429 with Retry-After: retried, then answered.
    _fault(daraja, path=QUERY, status=429, body="slow down", headers={"Retry-After": "0"})
    assert isinstance(await client.stk_query(checkout), StkQueryPending | StkQueryCompleted)
    # A 429 that persists: named.
    _fault(daraja, path=QUERY, status=429, count=None)
    with pytest.raises(RateLimited):
        await client.stk_query(checkout)
    daraja.http.delete("/simulator/faults")
    # A firewall's HTML page.
    _fault(daraja, path=QUERY, status=403, body="<html>Request blocked</html>")
    with pytest.raises(GatewayRejected, match="Request blocked"):
        await client.stk_query(checkout)
    # A 502 after the push was accepted: unknown, not resent, and its callback still comes.
    path = f"/stk/{uuid.uuid4().hex}"
    _fault(daraja, path=PUSH, status=502, after_processing=True)
    with pytest.raises(GatewayFailure):
        await client.stk_push(
            phone="254708374150",
            amount=4,
            account_reference="NISHATI-3",
            description="Solar kWh",
            callback_url=receiver.url(path),
        )
    await _wait(receiver, path)
    pushes = daraja.http.get("/simulator/requests", params={"path": PUSH}).json()
    assert [p["status"] for p in pushes].count(502) == 1


async def test_a_reply_slower_than_the_read_timeout_is_no_reply(
    daraja: Daraja, receiver: Receiver
) -> None:
    async with DarajaClient(_config(daraja.url, read_timeout_secs=0.2, max_attempts=1)) as slow:
        _fault(daraja, path=QUERY, status=200, body="{}", delay_secs=1.0)
        with pytest.raises(NoReply):
            await slow.stk_query("ws_CO_1")


async def test_renewal_after_a_newer_token_and_a_shared_store(
    daraja: Daraja, tmp_path: Path
) -> None:
    assert daraja.http.patch("/simulator/settings", json={"single_token": True}).is_success
    store = tmp_path / "token.json"
    http = httpx.AsyncClient()
    a = DarajaClient(_config(daraja.url), http=http, token_store=FileTokenStore(store))
    b = DarajaClient(_config(daraja.url), http=http, token_store=FileTokenStore(store))
    try:
        for i in range(3):
            for one in (a, b):
                with pytest.raises(InvalidField, match="CheckoutRequestID"):
                    await one.stk_query(f"ws_CO_{i}")  # no such payment: a 400, not a token error
        oauth = daraja.http.get("/simulator/requests", params={"path": "/oauth/v1/generate"})
        assert len(oauth.json()) == 1
        # Someone else (a stray script) takes a new token: ours is invalid now, renewed once.
        daraja.token()
        with pytest.raises(InvalidField, match="CheckoutRequestID"):
            await a.stk_query("ws_CO_x")
        with pytest.raises(InvalidField, match="CheckoutRequestID"):
            await b.stk_query("ws_CO_y")  # takes a's renewed token from the store
        oauth = daraja.http.get("/simulator/requests", params={"path": "/oauth/v1/generate"})
        assert len(oauth.json()) == 3
    finally:
        await http.aclose()


async def test_a_refund_by_reversal_end_to_end(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    path = f"/stk/{uuid.uuid4().hex}"
    await client.stk_push(
        phone=SANDBOX_PHONE,
        amount=60,
        account_reference="NISHATI-4",
        description="Solar kWh",
        callback_url=receiver.url(path),
    )
    [body] = await _wait(receiver, path)
    payment = parse_stk_callback(body).payment
    assert payment is not None
    refund = f"/refund/{callback_token()}"
    accepted = await client.reversal(
        transaction_id=payment.receipt,
        amount=60,
        result_url=receiver.url(f"{refund}/result"),
        queue_timeout_url=receiver.url(f"{refund}/timeout"),
    )
    [answer] = await _wait(receiver, f"{refund}/result")
    result = parse_reversal_result(answer)
    assert result.succeeded
    assert same_request(accepted.ids, result.ids)
    assert (result.original_transaction_id, result.amount) == (payment.receipt, 60)
    # Sent again (say after a lost reply): refused, never a second refund.
    again = await client.reversal(
        transaction_id=payment.receipt,
        amount=60,
        result_url=receiver.url(f"{refund}/result"),
        queue_timeout_url=receiver.url(f"{refund}/timeout"),
    )
    answers = await _wait(receiver, f"{refund}/result", 2)
    second = parse_reversal_result(answers[1])
    assert second.already_reversed
    assert same_request(again.ids, second.ids)


async def test_a_reversal_timeout_is_read_as_a_queue_timeout(
    daraja: Daraja, receiver: Receiver, client: DarajaClient
) -> None:
    path = f"/stk/{uuid.uuid4().hex}"
    await client.stk_push(
        phone=SANDBOX_PHONE,
        amount=61,
        account_reference="NISHATI-5",
        description="Solar kWh",
        callback_url=receiver.url(path),
    )
    [body] = await _wait(receiver, path)
    payment = parse_stk_callback(body).payment
    assert payment is not None
    daraja.scenario(api="reversal", queue_timeout=True, count=1)
    refund = f"/refund/{uuid.uuid4().hex}"
    accepted = await client.reversal(
        transaction_id=payment.receipt,
        amount=61,
        result_url=receiver.url(f"{refund}/result"),
        queue_timeout_url=receiver.url(f"{refund}/timeout"),
    )
    [notice] = await _wait(receiver, f"{refund}/timeout")
    assert same_request(accepted.ids, parse_queue_timeout(notice).ids)
