"""Request bodies, validation before sending, and the retry rules, against a scripted Daraja."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from structlog.testing import capture_logs

from nishati_client.phone import InvalidPhoneNumber
from nishati_oracle.daraja import (
    PRODUCTION_URL,
    B2CAccepted,
    B2CAlreadySubmitted,
    DarajaApiError,
    DarajaClient,
    DarajaConfigError,
    DarajaError,
    DarajaOutcomeUnknown,
    DarajaUnavailable,
    DuplicateRequest,
    GatewayRejected,
    InvalidAccountReference,
    InvalidAmount,
    InvalidField,
    InvalidIdentifier,
    InvalidPhone,
    InvalidRemarks,
    InvalidTransactionDesc,
    InvalidUrl,
    QuotaExceeded,
    RequestRejected,
    ResultCode,
    SpikeArrest,
    StkQueryCompleted,
    StkQueryPending,
    TransactionInProcess,
    TransactionType,
    UnexpectedResponse,
)
from tests.client.support import written_in
from tests.daraja.fake import (
    FIXED_TIMESTAMP,
    INITIATOR_PASSWORD,
    SANDBOX_MSISDN,
    SANDBOX_PASSKEY,
    STK_ACCEPTED,
    FakeDaraja,
    Sleeps,
    config,
    error_body,
    make_client,
    self_signed_cert,
)

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"
CALLBACK = "https://oracle.example/daraja/stk/s3cr3t"
RESULT_URL = "https://oracle.example/daraja/b2c/result/s3cr3t"
TIMEOUT_URL = "https://oracle.example/daraja/b2c/timeout/s3cr3t"
B2C_ACCEPTED = {
    "ConversationID": "AG_20191219_00005797af5d7d75f652",
    "OriginatorConversationID": "payout-42",
    "ResponseCode": "0",
    "ResponseDescription": "Accept the service request successfully.",
}
CERT = self_signed_cert()


def push_kwargs(**overrides: object) -> dict[str, Any]:
    values: dict[str, Any] = {
        "phone": "+254 708 374 149",
        "amount": 120,
        "account_reference": "NISHATI-0042",
        "description": "Solar 3kWh",
        "callback_url": CALLBACK,
    }
    values.update(overrides)
    return values


def b2c_kwargs(**overrides: object) -> dict[str, Any]:
    values: dict[str, Any] = {
        "originator_conversation_id": "payout-42",
        "phone": "0708374149",
        "amount": 250,
        "remarks": "Solar sale payout",
        "result_url": RESULT_URL,
        "queue_timeout_url": TIMEOUT_URL,
        "occasion": "trade 42",
    }
    values.update(overrides)
    return values


# ---------------------------------------------------------------- STK Push


async def test_stk_push_body() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json=STK_ACCEPTED))
    async with make_client(fake) as client:
        accepted = await client.stk_push(**push_kwargs())
    assert accepted.merchant_request_id == "29115-34620561-1"
    assert accepted.checkout_request_id == "ws_CO_191220191020363925"
    assert accepted.response_code == 0
    (request,) = fake.sent(PUSH)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer tok-1"
    body = fake.bodies(PUSH)[0]
    expected_password = base64.b64encode(
        f"174379{SANDBOX_PASSKEY}{FIXED_TIMESTAMP}".encode()
    ).decode()
    assert body == {
        "BusinessShortCode": "174379",
        "Password": expected_password,
        "Timestamp": FIXED_TIMESTAMP,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 120,
        "PartyA": SANDBOX_MSISDN,
        "PartyB": "174379",
        "PhoneNumber": SANDBOX_MSISDN,
        "CallBackURL": CALLBACK,
        "AccountReference": "NISHATI-0042",
        "TransactionDesc": "Solar 3kWh",
    }
    assert isinstance(body["Amount"], int)
    # The password's timestamp is the body's timestamp (computed once).
    assert base64.b64decode(str(body["Password"])).decode().endswith(str(body["Timestamp"]))


async def test_stk_push_till_uses_store_and_till_numbers() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json=STK_ACCEPTED))
    cfg = config(transaction_type=TransactionType.till, till_number="5555555")
    async with make_client(fake, cfg=cfg) as client:
        await client.stk_push(**push_kwargs())
    body = fake.bodies(PUSH)[0]
    assert body["TransactionType"] == "CustomerBuyGoodsOnline"
    assert body["BusinessShortCode"] == "174379"
    assert body["PartyB"] == "5555555"


@pytest.mark.parametrize("amount", [0, -5, 250_001, 1.0, 10.5, True, "100"])
async def test_stk_push_refuses_bad_amounts_before_sending(amount: object) -> None:
    fake = FakeDaraja()
    async with make_client(fake) as client:
        with pytest.raises(InvalidAmount):
            await client.stk_push(**push_kwargs(amount=amount))
    assert fake.requests == []


@pytest.mark.parametrize("amount", [1, 250_000])
async def test_stk_push_amount_limits_are_inclusive(amount: int) -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json=STK_ACCEPTED))
    async with make_client(fake) as client:
        await client.stk_push(**push_kwargs(amount=amount))
    assert fake.bodies(PUSH)[0]["Amount"] == amount


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("0708374149", "254708374149"),
        ("0110374149", "254110374149"),
        ("+254708374149", "254708374149"),
        ("254708374149", "254708374149"),
        ("0708-374-149", "254708374149"),
    ],
)
async def test_stk_push_normalises_the_phone(given: str, sent: str) -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json=STK_ACCEPTED))
    async with make_client(fake) as client:
        await client.stk_push(**push_kwargs(phone=given))
    body = fake.bodies(PUSH)[0]
    assert body["PartyA"] == body["PhoneNumber"] == sent


@pytest.mark.parametrize("phone", ["0208374149", "708374149", "+255708374149", "07083741491", ""])
async def test_stk_push_refuses_bad_phones_without_repeating_them(phone: str) -> None:
    fake = FakeDaraja()
    async with make_client(fake) as client:
        with pytest.raises(InvalidPhone) as info:
            await client.stk_push(**push_kwargs(phone=phone))
    assert isinstance(info.value, InvalidPhoneNumber)
    assert isinstance(info.value, DarajaError)
    if phone:
        assert phone not in str(info.value)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("account_reference", "NISHATI-00042", InvalidAccountReference),  # 13 > 12
        ("account_reference", "", InvalidAccountReference),
        ("description", "Solar 3kWh sold", InvalidTransactionDesc),  # 15 > 13
        ("description", "", InvalidTransactionDesc),
        ("callback_url", "ftp://oracle.example/cb", InvalidUrl),
        ("callback_url", "https://oracle.example/mpesa/callback", InvalidUrl),
        ("callback_url", "https://oracle.example/cb?query=1", InvalidUrl),
    ],
)
async def test_stk_push_refuses_bad_fields_before_sending(
    field: str, value: str, error: type[Exception]
) -> None:
    fake = FakeDaraja()
    async with make_client(fake) as client:
        with pytest.raises(error):
            await client.stk_push(**push_kwargs(**{field: value}))
    assert fake.requests == []


async def test_stk_push_limits_are_exact() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json=STK_ACCEPTED))
    async with make_client(fake) as client:
        await client.stk_push(**push_kwargs(account_reference="A" * 12, description="D" * 13))
    assert len(fake.sent(PUSH)) == 1


async def test_production_needs_https_callbacks() -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(base_url=PRODUCTION_URL)) as client:
        with pytest.raises(InvalidUrl, match="https"):
            await client.stk_push(**push_kwargs(callback_url="http://oracle.example/cb"))


async def test_stk_push_is_not_resent_after_a_read_timeout() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.ReadTimeout("timed out"), httpx.Response(200, json=STK_ACCEPTED))
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        with pytest.raises(DarajaOutcomeUnknown):
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    "failure",
    [httpx.RemoteProtocolError("dropped"), httpx.WriteTimeout("slow"), httpx.ReadError("reset")],
)
async def test_stk_push_is_not_resent_after_the_request_may_have_left(
    failure: Exception,
) -> None:
    fake = FakeDaraja()
    fake.script(PUSH, failure, httpx.Response(200, json=STK_ACCEPTED))
    async with make_client(fake) as client:
        with pytest.raises(DarajaOutcomeUnknown):
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1


async def test_stk_push_is_not_resent_after_a_bare_gateway_error() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(502, text="<html>Bad Gateway</html>"))
    async with make_client(fake) as client:
        with pytest.raises(DarajaOutcomeUnknown):
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1


async def test_stk_push_is_resent_after_a_connect_error() -> None:
    fake = FakeDaraja()
    fake.script(
        PUSH,
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.Response(200, json=STK_ACCEPTED),
    )
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        accepted = await client.stk_push(**push_kwargs())
    assert accepted.checkout_request_id == "ws_CO_191220191020363925"
    assert len(fake.sent(PUSH)) == 3
    assert sleeps.delays == [1.0, 2.0]


async def test_connect_errors_give_up_after_max_attempts() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, *[httpx.ConnectError("refused")] * 4)
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        with pytest.raises(DarajaUnavailable):
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 4
    assert sleeps.delays == [1.0, 2.0, 4.0]


async def test_spike_arrest_backs_off_then_succeeds() -> None:
    fake = FakeDaraja()
    fake.script(
        PUSH,
        error_body("500.003.02", "Spike arrest violation"),
        error_body("500.003.02", "Spike arrest violation"),
        httpx.Response(200, json=STK_ACCEPTED),
    )
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        accepted = await client.stk_push(**push_kwargs())
    assert accepted.response_code == 0
    assert len(fake.sent(PUSH)) == 3
    assert sleeps.delays == [1.0, 2.0]
    # Each resend is the same request: the same timestamp and password.
    assert len({b["Password"] for b in fake.bodies(PUSH)}) == 1


async def test_calls_log_bound_fields_and_only_a_masked_phone() -> None:
    fake = FakeDaraja()
    fake.script(
        PUSH,
        error_body("500.003.02", "Spike arrest violation"),
        httpx.Response(200, json=STK_ACCEPTED),
    )
    fake.script(B2C, httpx.ReadTimeout("slow"), httpx.Response(200, json=B2C_ACCEPTED))
    with capture_logs() as logged:
        async with make_client(fake, cfg=config(certificate=CERT.pem), sleeps=Sleeps()) as client:
            await client.stk_push(**push_kwargs())
            await client.b2c_payment(**b2c_kwargs())
    assert [{k: v for k, v in e.items() if k != "log_level"} for e in logged] == [
        {"event": "daraja spike arrest, retrying", "operation": "STK Push", "attempt": 1},
        {
            "event": "stk push accepted",
            "operation": "STK Push",
            "checkout_request_id": "ws_CO_191220191020363925",
            "amount_kes": 120,
            "phone": "2547****4149",
        },
        {
            "event": "daraja transport failure, retrying",
            "operation": "B2C",
            "originator_conversation_id": "payout-42",
            "attempt": 1,
            "error": "ReadTimeout",
        },
        {
            "event": "b2c accepted",
            "operation": "B2C",
            "originator_conversation_id": "payout-42",
            "conversation_id": "AG_20191219_00005797af5d7d75f652",
            "amount_kes": 250,
            "phone": "2547****4149",
        },
    ]
    assert SANDBOX_MSISDN not in repr(logged)


async def test_spike_arrest_that_persists_is_raised() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, *[error_body("500.003.02", "Spike arrest violation")] * 4)
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        with pytest.raises(SpikeArrest):
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 4
    assert sleeps.delays == [1.0, 2.0, 4.0]


async def test_stk_push_in_process_is_raised_not_retried() -> None:
    fake = FakeDaraja()
    fake.script(
        PUSH,
        error_body(
            "500.001.1001",
            "Unable to lock subscriber, a transaction is already in process for the current "
            "subscriber 254708374149",
        ),
    )
    async with make_client(fake) as client:
        with pytest.raises(TransactionInProcess) as info:
            await client.stk_push(**push_kwargs())
    assert len(fake.sent(PUSH)) == 1
    assert "254708374149" not in str(info.value)
    assert "2547****4149" in str(info.value)


async def test_non_zero_response_code_is_rejected() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, httpx.Response(200, json={**STK_ACCEPTED, "ResponseCode": "1"}))
    async with make_client(fake) as client:
        with pytest.raises(RequestRejected):
            await client.stk_push(**push_kwargs())


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("400.002.02", 400, InvalidField),
        ("500.003.03", 500, QuotaExceeded),
        ("500.001.1001", 500, TransactionInProcess),
        ("500.002.1001", 500, DuplicateRequest),
        ("400.002.05", 400, DarajaApiError),
    ],
)
async def test_error_bodies_map_to_named_errors(
    code: str, status: int, error: type[DarajaApiError]
) -> None:
    fake = FakeDaraja()
    fake.script(PUSH, error_body(code, "Bad Request - Invalid PhoneNumber", status))
    async with make_client(fake) as client:
        with pytest.raises(error) as info:
            await client.stk_push(**push_kwargs())
    assert type(info.value) is error
    assert info.value.error_code == code
    assert info.value.request_id == "1234-5678-1"
    assert info.value.status_code == status
    assert info.value.error_message == "Bad Request - Invalid PhoneNumber"


async def test_no_secret_reaches_an_error_message() -> None:
    fake = FakeDaraja()
    fake.script(PUSH, error_body("400.002.02", "Bad Request - Invalid Password"))
    cfg = config()
    async with make_client(fake, cfg=cfg) as client:
        with pytest.raises(InvalidField) as info:
            await client.stk_push(**push_kwargs())
    text = str(info.value) + repr(info.value) + repr(cfg)
    for secret in ("cs-test", SANDBOX_PASSKEY, INITIATOR_PASSWORD, "tok-1"):
        assert secret not in text


async def test_a_non_json_4xx_is_a_gateway_refusal() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, httpx.Response(404, text="Not Found"))
    async with make_client(fake) as client:
        with pytest.raises(GatewayRejected) as info:
            await client.stk_query("ws_CO_1")
    assert info.value.error_code == "HTTP 404"
    assert "Not Found" in str(info.value)
    assert not info.value.may_have_been_processed


# ---------------------------------------------------------------- STK Query


async def test_stk_query_pending() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, error_body("500.001.1001", "The transaction is being processed"))
    async with make_client(fake) as client:
        result = await client.stk_query("ws_CO_191220191020363925")
    assert result == StkQueryPending(
        "ws_CO_191220191020363925", description="The transaction is being processed"
    )
    assert fake.bodies(QUERY)[0] == {
        "BusinessShortCode": "174379",
        "Password": base64.b64encode(f"174379{SANDBOX_PASSKEY}{FIXED_TIMESTAMP}".encode()).decode(),
        "Timestamp": FIXED_TIMESTAMP,
        "CheckoutRequestID": "ws_CO_191220191020363925",
    }


async def test_stk_query_other_1001_is_an_error() -> None:
    fake = FakeDaraja()
    fake.script(QUERY, error_body("500.001.1001", "Wrong credentials"))
    async with make_client(fake) as client:
        with pytest.raises(TransactionInProcess):
            await client.stk_query("ws_CO_1")


@pytest.mark.parametrize(("raw", "code"), [("1032", 1032), ("0", 0), (1037, 1037)])
async def test_stk_query_completed_with_int_result_code(raw: object, code: int) -> None:
    fake = FakeDaraja()
    fake.script(
        QUERY,
        httpx.Response(
            200,
            json={
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successsfully",
                "MerchantRequestID": "22205-34066-1",
                "CheckoutRequestID": "ws_CO_1",
                "ResultCode": raw,
                "ResultDesc": "Request cancelled by user",
            },
        ),
    )
    async with make_client(fake) as client:
        result = await client.stk_query("ws_CO_1")
    assert isinstance(result, StkQueryCompleted)
    assert result.result_code == code
    assert result.paid is (code == 0)
    assert result.result == ResultCode(code)


@pytest.mark.parametrize(
    "reply",
    [
        {"ResponseCode": "0", "ResultCode": written_in("arabic-indic", "1032")},
        {"ResponseCode": written_in("full-width", "0"), "ResultCode": 0},
    ],
)
async def test_stk_query_codes_in_other_digits_are_unexpected(reply: dict[str, object]) -> None:
    fake = FakeDaraja()
    fake.script(QUERY, httpx.Response(200, json={"CheckoutRequestID": "ws_CO_1", **reply}))
    async with make_client(fake) as client:
        with pytest.raises(UnexpectedResponse, match="Code"):
            await client.stk_query("ws_CO_1")


async def test_stk_query_is_resent_after_a_read_timeout() -> None:
    fake = FakeDaraja()
    fake.script(
        QUERY,
        httpx.ReadTimeout("slow"),
        error_body("500.003.02", "Spike arrest violation"),
        error_body("500.001.1001", "The transaction is being processed"),
    )
    sleeps = Sleeps()
    async with make_client(fake, sleeps=sleeps) as client:
        result = await client.stk_query("ws_CO_1")
    assert isinstance(result, StkQueryPending)
    assert len(fake.sent(QUERY)) == 3
    assert sleeps.delays == [1.0, 1.0]


async def test_stk_query_refuses_an_empty_id() -> None:
    fake = FakeDaraja()
    async with make_client(fake) as client:
        with pytest.raises(InvalidIdentifier):
            await client.stk_query("")


# ---------------------------------------------------------------- B2C


async def test_b2c_body_and_security_credential() -> None:
    fake = FakeDaraja()
    fake.script(B2C, httpx.Response(200, json=B2C_ACCEPTED))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        result = await client.b2c_payment(**b2c_kwargs())
    assert result == B2CAccepted(
        originator_conversation_id="payout-42",
        conversation_id="AG_20191219_00005797af5d7d75f652",
        response_code=0,
        response_description="Accept the service request successfully.",
    )
    body = fake.bodies(B2C)[0]
    credential = body.pop("SecurityCredential")
    assert body == {
        "OriginatorConversationID": "payout-42",
        "InitiatorName": "testapi",
        "CommandID": "BusinessPayment",
        "Amount": 250,
        "PartyA": "600996",
        "PartyB": SANDBOX_MSISDN,
        "Remarks": "Solar sale payout",
        "QueueTimeOutURL": TIMEOUT_URL,
        "ResultURL": RESULT_URL,
        "Occassion": "trade 42",
    }
    decrypted = CERT.key.decrypt(base64.b64decode(str(credential)), padding.PKCS1v15())
    assert decrypted == INITIATOR_PASSWORD.encode()


async def test_b2c_resent_after_timeout_is_recognised_as_already_submitted() -> None:
    fake = FakeDaraja()
    fake.script(
        B2C,
        httpx.ReadTimeout("slow"),
        error_body("400.002.02", "Bad Request - Duplicate OriginatorConversationID", 400),
    )
    sleeps = Sleeps()
    async with make_client(fake, cfg=config(certificate=CERT.pem), sleeps=sleeps) as client:
        result = await client.b2c_payment(**b2c_kwargs())
    assert isinstance(result, B2CAlreadySubmitted)
    assert result.originator_conversation_id == "payout-42"
    bodies = fake.bodies(B2C)
    assert len(bodies) == 2
    assert bodies[0]["OriginatorConversationID"] == bodies[1]["OriginatorConversationID"]
    assert sleeps.delays == [1.0]


async def test_b2c_duplicate_in_a_response_code_is_already_submitted() -> None:
    fake = FakeDaraja()
    fake.script(
        B2C,
        httpx.Response(
            200,
            json={
                "OriginatorConversationID": "payout-42",
                "ResponseCode": "15",
                "ResponseDescription": "Duplicate OriginatorConversationID.",
            },
        ),
    )
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        result = await client.b2c_payment(**b2c_kwargs())
    assert isinstance(result, B2CAlreadySubmitted)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"amount": 9}, InvalidAmount),
        ({"amount": 10.0}, InvalidAmount),
        ({"remarks": "x"}, InvalidRemarks),
        ({"remarks": "x" * 101}, InvalidRemarks),
        ({"phone": "12345"}, InvalidPhone),
        ({"originator_conversation_id": ""}, InvalidIdentifier),
        ({"result_url": "https://safaricom-results.example/r"}, InvalidUrl),
    ],
)
async def test_b2c_refuses_bad_fields_before_sending(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        with pytest.raises(error):
            await client.b2c_payment(**b2c_kwargs(**overrides))
    assert fake.requests == []


async def test_b2c_minimum_amount_is_inclusive() -> None:
    fake = FakeDaraja()
    fake.script(B2C, httpx.Response(200, json=B2C_ACCEPTED))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        await client.b2c_payment(**b2c_kwargs(amount=10, remarks="ok"))
    assert fake.bodies(B2C)[0]["Amount"] == 10


async def test_b2c_without_an_initiator_is_a_config_error() -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(certificate=None)) as client:
        with pytest.raises(DarajaConfigError):
            await client.b2c_payment(**b2c_kwargs())
    assert fake.requests == []


# ---------------------------------------------------------------- Transaction Status


async def test_transaction_status_by_originator_conversation_id() -> None:
    fake = FakeDaraja()
    fake.script(
        STATUS,
        httpx.Response(
            200,
            json={
                "OriginatorConversationID": "1236-7134259-1",
                "ConversationID": "AG_20210709_1234409f86436c583e3f",
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        ),
    )
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        ack = await client.transaction_status(
            originator_conversation_id="payout-42",
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
        )
    assert ack.response_code == 0
    assert ack.conversation_id == "AG_20210709_1234409f86436c583e3f"
    body = fake.bodies(STATUS)[0]
    credential = body.pop("SecurityCredential")
    assert body == {
        "Initiator": "testapi",
        "CommandID": "TransactionStatusQuery",
        "PartyA": "600996",
        "IdentifierType": "4",
        "ResultURL": RESULT_URL,
        "QueueTimeOutURL": TIMEOUT_URL,
        "Remarks": "Payout status",
        "Occasion": "",
        "OriginalConversationID": "payout-42",
    }
    assert CERT.key.decrypt(base64.b64decode(str(credential)), padding.PKCS1v15()) == (
        INITIATOR_PASSWORD.encode()
    )


async def test_transaction_status_by_transaction_id() -> None:
    fake = FakeDaraja()
    fake.script(
        STATUS,
        httpx.Response(200, json={"ResponseCode": "0", "ResponseDescription": "Accepted"}),
    )
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        await client.transaction_status(
            transaction_id="NLJ7RT61SV", result_url=RESULT_URL, queue_timeout_url=TIMEOUT_URL
        )
    body = fake.bodies(STATUS)[0]
    assert body["TransactionID"] == "NLJ7RT61SV"
    assert "OriginalConversationID" not in body
    assert "OriginatorConversationID" not in body


async def test_transaction_status_needs_an_identifier() -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        with pytest.raises(InvalidIdentifier):
            await client.transaction_status(result_url=RESULT_URL, queue_timeout_url=TIMEOUT_URL)


def test_config_refuses_nonsense() -> None:
    with pytest.raises(DarajaConfigError):
        config(base_url="sandbox.safaricom.co.ke")
    with pytest.raises(DarajaConfigError):
        config(shortcode="17437x")
    for digits in (written_in("arabic-indic", "174379"), written_in("full-width", "174379")):
        with pytest.raises(DarajaConfigError, match="0-9"):
            config(shortcode=digits)
        with pytest.raises(DarajaConfigError, match="0-9"):
            config(b2c_shortcode=digits)
    with pytest.raises(DarajaConfigError):
        config(max_attempts=0)


async def test_client_made_without_http_closes_its_own() -> None:
    client = DarajaClient(config())
    await client.aclose()
    assert client._http.is_closed


async def test_injected_http_is_left_open() -> None:
    fake = FakeDaraja()
    client = make_client(fake)
    await client.aclose()
    assert not client._http.is_closed
    await client._http.aclose()
