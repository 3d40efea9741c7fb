"""The launcher and the /simulator control endpoints."""

from __future__ import annotations

import uuid

import httpx

from nishati_dev.processes import DarajaSimService
from tests.harness.daraja_sim import FAST, Daraja, Receiver


async def test_async_launcher_starts_and_stops_by_pid() -> None:
    async with DarajaSimService(FAST) as sim:
        assert sim.process is not None
        process = sim.process
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{sim.url}/simulator/health")
        assert reply.json() == {"status": "ok"}
    assert process.poll() is not None
    assert sim.process is None


def test_certificate_is_served_as_pem(daraja: Daraja) -> None:
    pem = daraja.certificate()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_rules_can_be_listed_and_cleared(daraja: Daraja) -> None:
    daraja.scenario(phone="254708374149", result_code=1032, count=3)
    daraja.scenario(api="b2c", queue_timeout=True)
    rules = daraja.http.get("/simulator/scenario").json()["rules"]
    assert [(r["api"], r["result_code"], r["count"]) for r in rules] == [
        ("stk", 1032, 3),
        ("b2c", None, None),
    ]
    assert daraja.http.delete("/simulator/scenario").json() == {"rules": []}
    assert daraja.http.get("/simulator/scenario").json() == {"rules": []}


def test_bad_rules_are_refused(daraja: Daraja) -> None:
    reply = daraja.http.post("/simulator/scenario", json={"delivery": "sideways"})
    assert reply.status_code == 422
    reply = daraja.http.post("/simulator/scenario", json={"count": 0})
    assert reply.status_code == 422


def test_reset_forgets_everything_but_tokens(daraja: Daraja, receiver: Receiver) -> None:
    path = f"/stk/{uuid.uuid4().hex}"
    checkout = daraja.push(receiver.url(path)).json()["CheckoutRequestID"]
    receiver.wait(path)
    daraja.wait_callbacks(1)
    daraja.scenario(result_code=1)
    state = daraja.http.get("/simulator/transactions").json()
    assert [p["checkout_request_id"] for p in state["stk"]] == [checkout]
    assert state["stk"][0]["result_code"] == 0
    assert daraja.http.post("/simulator/reset").json() == {"status": "reset"}
    state = daraja.http.get("/simulator/transactions").json()
    assert (state["stk"], state["payouts"], state["funds"]) == ([], [], 1_000_000)
    assert daraja.callbacks() == []
    assert daraja.http.get("/simulator/requests").json() == []
    assert daraja.http.get("/simulator/scenario").json() == {"rules": []}
    assert daraja.query(checkout).json()["errorCode"] == "400.002.02"  # the old token still works
