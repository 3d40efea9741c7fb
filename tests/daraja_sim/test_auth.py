"""OAuth tokens, the gateway's checks, and spike arrest."""

from __future__ import annotations

import time

import httpx

from tests.harness.daraja_sim import Daraja, Receiver, error


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


def test_a_token_lives_its_configured_lifetime(daraja: Daraja, receiver: Receiver) -> None:
    changed = daraja.http.patch("/simulator/settings", json={"token_lifetime_secs": 0.4})
    assert changed.json()["token_lifetime_secs"] == 0.4
    token = daraja.token()
    body = daraja.push_body(receiver.url("/lifetime"))
    assert daraja.post("/mpesa/stkpush/v1/processrequest", body, token=token).status_code == 200
    time.sleep(0.5)
    body = daraja.push_body(receiver.url("/lifetime"), phone="254708374150")
    reply = daraja.post("/mpesa/stkpush/v1/processrequest", body, token=token)
    assert error(reply)[:2] == (404, "404.001.03")


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


def test_spike_arrest_refuses_calls_over_the_rate(daraja: Daraja) -> None:
    token = daraja.token()
    daraja.http.patch("/simulator/settings", json={"rate_limit_per_sec": 3})
    replies = [daraja.query(f"ws_CO_unknown{i}", token) for i in range(5)]
    codes = [r.json()["errorCode"] for r in replies]
    assert codes == ["400.002.02"] * 3 + ["500.003.02"] * 2
    assert error(replies[3]) == (500, "500.003.02", "Spike arrest violation")
    refused = daraja.http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("nishati-sim-consumer-key", "nishati-sim-consumer-secret"),
    )
    assert error(refused)[:2] == (500, "500.003.02")
    time.sleep(1.05)
    assert daraja.query("ws_CO_unknown", token).json()["errorCode"] == "400.002.02"
    daraja.http.patch("/simulator/settings", json={"rate_limit_per_sec": None})
    assert all(daraja.query("ws_CO_x", token).status_code == 400 for _ in range(5))


def test_reset_restores_changed_settings(daraja: Daraja) -> None:
    daraja.http.patch("/simulator/settings", json={"callback_delay_secs": 9.0})
    daraja.http.post("/simulator/reset")
    after = daraja.http.patch("/simulator/settings", json={}).json()
    assert after["callback_delay_secs"] == 0.05
    assert daraja.http.patch("/simulator/settings", json={"port": 1}).status_code == 422
