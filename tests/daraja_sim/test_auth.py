"""OAuth tokens, the gateway's checks, and spike arrest."""

from __future__ import annotations

import time

import httpx
from nishati_daraja_sim.launcher import running_daraja_sim

from tests.daraja_sim.conftest import FAST, Daraja, Receiver, error


def test_token_is_issued_with_expires_in_as_a_string(daraja: Daraja) -> None:
    reply = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("nishati-sim-consumer-key", "nishati-sim-consumer-secret"),
    )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == "3599"
    assert len(body["access_token"]) >= 20


def test_wrong_consumer_secret_is_refused(daraja: Daraja) -> None:
    reply = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("nishati-sim-consumer-key", "wrong"),
    )
    assert error(reply) == (400, "400.008.01", "Invalid Authentication passed")


def test_missing_basic_auth_and_wrong_grant_type_are_refused(daraja: Daraja) -> None:
    no_auth = daraja.http.get("/oauth/v1/generate", params={"grant_type": "client_credentials"})
    assert error(no_auth)[:2] == (400, "400.008.01")
    wrong_grant = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "password"},
        auth=("nishati-sim-consumer-key", "nishati-sim-consumer-secret"),
    )
    assert error(wrong_grant) == (400, "400.008.02", "Invalid grant type passed")


def test_missing_or_unknown_token_is_invalid(daraja: Daraja, receiver: Receiver) -> None:
    body = daraja.push_body(receiver.url("/stk"))
    reply = daraja.http.post("/mpesa/stkpush/v1/processrequest", json=body)
    assert error(reply) == (404, "404.001.03", "Invalid Access Token")
    reply = daraja.post("/mpesa/stkpush/v1/processrequest", body, token="not-a-token")  # noqa: S106
    assert error(reply)[:2] == (404, "404.001.03")


def test_expired_tokens_are_invalid(daraja: Daraja, receiver: Receiver) -> None:
    token = daraja.token()
    assert daraja.http.post("/simulator/tokens/expire").json()["count"] >= 1
    reply = daraja.post(
        "/mpesa/stkpush/v1/processrequest", daraja.push_body(receiver.url("/s")), token=token
    )
    assert error(reply)[:2] == (404, "404.001.03")
    fresh = daraja.post(
        "/mpesa/stkpush/v1/processrequest",
        daraja.push_body(receiver.url("/s")),
        token=daraja.token(),
    )
    assert fresh.status_code == 200


def test_a_token_lives_its_configured_lifetime(receiver: Receiver) -> None:
    with running_daraja_sim(token_lifetime_secs=0.5, **FAST) as sim:
        client = Daraja(sim.url)
        try:
            token = client.token()
            body = client.push_body(receiver.url("/lifetime"))
            assert (
                client.post("/mpesa/stkpush/v1/processrequest", body, token=token).status_code
                == 200
            )
            time.sleep(0.6)
            body = client.push_body(receiver.url("/lifetime"), phone="254708374150")
            reply = client.post("/mpesa/stkpush/v1/processrequest", body, token=token)
            assert error(reply)[:2] == (404, "404.001.03")
        finally:
            client.close()


def test_missing_or_wrong_content_type_is_a_bad_request(daraja: Daraja, receiver: Receiver) -> None:
    token = daraja.token()
    raw = httpx.Request("POST", "/x", json=daraja.push_body(receiver.url("/ct"))).content
    for content_type in (None, "text/plain"):
        headers = {"Authorization": f"Bearer {token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        reply = daraja.http.post("/mpesa/stkpush/v1/processrequest", content=raw, headers=headers)
        assert error(reply) == (400, "400.002.02", "Bad Request - Invalid Content-Type")
    reply = daraja.http.post(
        "/mpesa/stkpush/v1/processrequest",
        content=b"{not json",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert error(reply)[:2] == (400, "400.002.02")


def test_spike_arrest_refuses_calls_over_the_rate(receiver: Receiver) -> None:
    with running_daraja_sim(rate_limit_per_sec=3, **FAST) as sim:
        client = Daraja(sim.url)
        try:
            token = client.token()  # the first of three calls this second
            replies = [client.query(f"ws_CO_unknown{i}", token) for i in range(4)]
            codes = [r.json()["errorCode"] for r in replies]
            assert codes[:2] == ["400.002.02", "400.002.02"]
            assert codes[2:] == ["500.003.02", "500.003.02"]
            assert replies[2].status_code == 500
            assert error(replies[2])[2] == "Spike arrest violation"
            time.sleep(1.05)
            assert client.query("ws_CO_unknown", token).json()["errorCode"] == "400.002.02"
        finally:
            client.close()
