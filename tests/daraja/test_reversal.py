"""The Reversal API call, and callback URLs Daraja will call."""

from __future__ import annotations

import base64
import secrets

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import SecretStr

from nishati_oracle.daraja import (
    PRODUCTION_URL,
    DarajaConfigError,
    InvalidAmount,
    InvalidIdentifier,
    InvalidUrl,
    ReversalAccepted,
    UnexpectedResponse,
    callback_token,
    filtered_words,
)
from tests.daraja.fake import INITIATOR_PASSWORD, FakeDaraja, Sleeps, config, make_client
from tests.daraja.test_client import CERT

REVERSAL = "/mpesa/reversal/v1/request"
RESULT_URL = "https://oracle.example/refunds/result/s3cr3t"
TIMEOUT_URL = "https://oracle.example/refunds/timeout/s3cr3t"
# Daraja's Reversal page, its success reply.
ACCEPTED = {
    "OriginatorConversationID": "f1e2-4b95-a71d-b30d3cdbb7a7735297",
    "ConversationID": "AG_20210706_20106e9209f64bebd05b",
    "ResponseCode": "0",
    "ResponseDescription": "Accept the service request successfully.",
}


async def test_reversal_body_and_reply() -> None:
    fake = FakeDaraja()
    fake.script(REVERSAL, httpx.Response(200, json=ACCEPTED))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        accepted = await client.reversal(
            transaction_id="PDU91HIVIT",
            amount=200,
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
            remarks="Payment reversal",
        )
    assert accepted == ReversalAccepted(
        originator_conversation_id="f1e2-4b95-a71d-b30d3cdbb7a7735297",
        conversation_id="AG_20210706_20106e9209f64bebd05b",
        response_code=0,
        response_description="Accept the service request successfully.",
    )
    assert accepted.ids == {ACCEPTED["OriginatorConversationID"], ACCEPTED["ConversationID"]}
    body = fake.bodies(REVERSAL)[0]
    credential = body.pop("SecurityCredential")
    assert body == {
        "Initiator": "testapi",
        "CommandID": "TransactionReversal",
        "TransactionID": "PDU91HIVIT",
        "Amount": 200,
        "ReceiverParty": "174379",
        "RecieverIdentifierType": "11",
        "ResultURL": RESULT_URL,
        "QueueTimeOutURL": TIMEOUT_URL,
        "Remarks": "Payment reversal",
    }
    decrypted = CERT.key.decrypt(base64.b64decode(str(credential)), padding.PKCS1v15())
    assert decrypted == INITIATOR_PASSWORD.encode()


async def test_reversal_uses_its_own_initiator_when_configured() -> None:
    fake = FakeDaraja()
    fake.script(REVERSAL, httpx.Response(200, json=ACCEPTED))
    cfg = config(
        certificate=CERT.pem,
        reversal_initiator_name="reversals-api",
        reversal_initiator_password=SecretStr("Reversal-Pass-1"),
    )
    async with make_client(fake, cfg=cfg) as client:
        await client.reversal(
            transaction_id="PDU91HIVIT",
            amount=5,
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
            occasion="trade 7",
            receiver_party="600997",
        )
    body = fake.bodies(REVERSAL)[0]
    assert (body["Initiator"], body["ReceiverParty"], body["Occasion"]) == (
        "reversals-api",
        "600997",
        "trade 7",
    )
    sealed = base64.b64decode(str(body["SecurityCredential"]))
    assert CERT.key.decrypt(sealed, padding.PKCS1v15()) == b"Reversal-Pass-1"


async def test_reversal_is_resent_after_a_timeout() -> None:
    # Safe: M-Pesa refuses to reverse a receipt twice (R000001).
    fake = FakeDaraja()
    fake.script(REVERSAL, httpx.ReadTimeout("slow"), httpx.Response(200, json=ACCEPTED))
    async with make_client(fake, cfg=config(certificate=CERT.pem), sleeps=Sleeps()) as client:
        await client.reversal(
            transaction_id="PDU91HIVIT",
            amount=5,
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
        )
    assert len(fake.sent(REVERSAL)) == 2


async def test_a_reversal_reply_without_ids_is_unexpected() -> None:
    fake = FakeDaraja()
    fake.script(REVERSAL, httpx.Response(200, json={"ResponseCode": "0"}))
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        with pytest.raises(UnexpectedResponse):
            await client.reversal(
                transaction_id="X", amount=5, result_url=RESULT_URL, queue_timeout_url=TIMEOUT_URL
            )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"transaction_id": ""}, InvalidIdentifier),
        ({"amount": 0}, InvalidAmount),
        ({"amount": 1.0}, InvalidAmount),
        ({"receiver_party": "60099x"}, InvalidIdentifier),
        ({"result_url": "https://oracle.example/sql/r"}, InvalidUrl),
    ],
)
async def test_reversal_refuses_bad_fields_before_sending(
    changes: dict[str, object], error: type[Exception]
) -> None:
    fake = FakeDaraja()
    values: dict[str, object] = {
        "transaction_id": "PDU91HIVIT",
        "amount": 5,
        "result_url": RESULT_URL,
        "queue_timeout_url": TIMEOUT_URL,
        **changes,
    }
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        with pytest.raises(error):
            await client.reversal(**values)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_reversal_without_an_initiator_is_a_config_error() -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(certificate=None)) as client:
        with pytest.raises(DarajaConfigError):
            await client.reversal(
                transaction_id="X", amount=5, result_url=RESULT_URL, queue_timeout_url=TIMEOUT_URL
            )
    with pytest.raises(DarajaConfigError, match="together"):
        config(reversal_initiator_name="only-a-name")


async def test_transaction_status_of_a_customer_payment_names_its_shortcode() -> None:
    fake = FakeDaraja()
    fake.script(
        "/mpesa/transactionstatus/v1/query",
        httpx.Response(200, json={**ACCEPTED}),
    )
    async with make_client(fake, cfg=config(certificate=CERT.pem)) as client:
        await client.transaction_status(
            transaction_id="NLJ7RT61SV",
            result_url=RESULT_URL,
            queue_timeout_url=TIMEOUT_URL,
            party_a="174379",
        )
    assert fake.bodies("/mpesa/transactionstatus/v1/query")[0]["PartyA"] == "174379"


# ---------------------------------------------------------------- callback URLs


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://oracle.example/cb/abc", []),
        ("https://oracle.example/M-PESA/cb", ["m-pesa"]),
        ("https://oracle.example/m_pesa/cb", ["m_pesa"]),
        ("https://oracle.example/MPesa/cb", ["mpesa"]),
        ("https://safaricom-hooks.example/cb", ["safaricom"]),
        ("https://oracle.example/cb/aExEcb", ["exe"]),
        ("https://oracle.example/cb/xCmDy/SqL", ["cmd", "sql"]),
        ("https://oracle.example/cb?QUERY=1", ["query"]),
    ],
)
def test_filtered_words(url: str, words: list[str]) -> None:
    assert filtered_words(url) == words


def test_callback_tokens_never_hold_a_filtered_word(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["abcEXEdef", "x-sql-y", "cleanToken_1"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws))
    assert callback_token() == "cleanToken_1"
    monkeypatch.undo()
    tokens = [callback_token() for _ in range(5_000)]
    assert not any(filtered_words(t) for t in tokens)
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == len(secrets.token_urlsafe(32)) for t in tokens)


async def test_production_refuses_public_url_testers() -> None:
    fake = FakeDaraja()
    async with make_client(fake, cfg=config(base_url=PRODUCTION_URL)) as client:
        with pytest.raises(InvalidUrl, match="tester"):
            await client.stk_push(
                phone="0708374149",
                amount=1,
                account_reference="NISHATI",
                description="Solar kWh",
                callback_url="https://abc123.ngrok.app/cb/x",
            )
