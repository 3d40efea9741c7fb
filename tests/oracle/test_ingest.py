"""Readings over HTTP into durable storage: what is accepted, refused and why, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.pubkey import Pubkey

from nishati_client.errors import RpcUnavailable
from nishati_client.household import MeterRecord
from nishati_client.program import NishatiClient
from nishati_client.readings import Reading, SignedReading, market_tag, sign
from nishati_oracle.readings.http import READING_BODY_BYTES
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.readings.pipeline import THREAD_VERIFY_FROM
from nishati_oracle.readings.registry import MeterRegistry
from nishati_oracle.readings.store import Store
from tests.harness.oracle import OracleWorld


async def test_a_signed_reading_is_accepted_and_stored(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    response = await world.post(member.meter.read(now, exported_wh=1_000))
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.json()["results"][0] == {
        "status": "accepted",
        "reason": None,
        "counter": 1,
        "detail": None,
    }
    assert await world.services.store.unattested_count() == 1


async def test_a_repeated_reading_is_a_duplicate_and_stored_once(world: OracleWorld) -> None:
    member = await world.member()
    signed = member.meter.read(await world.market.now(), exported_wh=10)
    assert (await world.post(signed)).json()["accepted"] == 1
    again = (await world.post(signed)).json()
    assert again["duplicates"] == 1
    assert again["results"][0]["status"] == "duplicate"
    assert await world.services.store.unattested_count() == 1


async def test_a_batch_is_judged_reading_by_reading(world: OracleWorld) -> None:
    member, stranger = await world.member(), await world.member()
    now = await world.market.now()
    first = member.meter.read(now, exported_wh=100)
    second = member.meter.read(now + 60, exported_wh=100)
    replayed = sign(Reading.decode(first.message), member.meter.key)
    foreign = stranger.meter.read(now)
    forged = replace(foreign, meter=member.meter.public_key)
    body = (await world.post(first, second, replayed, forged)).json()
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
    ]
    assert body["results"][3]["reason"] == "InvalidSignature"


async def test_a_large_batch_refuses_each_bad_signature_where_it_is(world: OracleWorld) -> None:
    """A batch large enough to be verified in a worker thread, one reading of it with another's
    signature at the start, the middle and the end: exactly those refused."""
    member = await world.member()
    now = await world.market.now()
    size = THREAD_VERIFY_FROM + 8
    readings = [member.meter.read(now + i, exported_wh=i) for i in range(size)]
    bad = {0, size // 2, size - 1}
    for i in bad:
        readings[i] = replace(readings[i], signature=readings[(i + 1) % size].signature)
    body = (await world.post(*readings)).json()
    assert [r["status"] for r in body["results"]] == [
        "rejected" if i in bad else "accepted" for i in range(size)
    ]
    assert {body["results"][i]["reason"] for i in bad} == {"InvalidSignature"}


async def test_each_broken_rule_is_refused_with_its_reason(world: OracleWorld) -> None:
    member = await world.member()
    meter = member.meter
    registered = await world.market.now()
    now = await world.elapse(60)
    assert (await world.post(meter.read(now, exported_wh=500))).status_code == 200
    # The baseline on chain: the export limit counts from its attestation, now.
    assert await world.services.attester.run_once() == 1

    def signed(
        counter: int | None = None, timestamp: int = now + 60, exported_wh: int = 600
    ) -> SignedReading:
        """The meter's next reading with some values changed; the meter's count stays."""
        reading = Reading.decode(meter.read(now).message)
        meter.counter -= 1
        changed = replace(
            reading,
            counter=reading.counter if counter is None else counter,
            timestamp=timestamp,
            exported_wh=exported_wh,
        )
        return sign(changed, meter.key)

    other_market = replace(
        Reading.decode(meter.read(now).message), market_tag=market_tag(member.address)
    )
    meter.counter -= 1
    cases = {
        "ReadingReplayed": signed(counter=1),
        "ReadingBeforeMeterRegistered": signed(timestamp=registered - 1),
        "ReadingOutOfOrder": signed(timestamp=now - 1),
        "ReadingFromTheFuture": signed(timestamp=now + 10**6),
        "MeterWentBackwards": signed(exported_wh=10),
        # 100 Wh in 60 s of the meter's time, but no chain time since the attestation.
        "ExportAboveMeterLimit": signed(),
        "ReadingForAnotherMarket": sign(other_market, meter.key),
    }
    for reason, reading in cases.items():
        response = await world.post(reading)
        assert response.status_code == 422, reason
        assert response.json()["results"][0]["reason"] == reason
    assert await world.services.store.unattested_count() == 0  # only the baseline was stored
    metrics = (await world.http.get("/metrics")).text
    assert 'nishati_readings_rejected_total{reason="ExportAboveMeterLimit"} 1.0' in metrics


async def test_the_export_limit_counts_chain_time_never_the_meters(world: OracleWorld) -> None:
    """A meter may date its readings as it likes; what it may mint is the market's export
    limit (10 kW) over the chain's time since its last attestation."""
    member = await world.member()
    now = await world.market.now()
    assert (await world.post(member.meter.read(now))).status_code == 200
    assert await world.services.attester.run_once() == 1
    # Dated 5 minutes on (the most the chain allows ahead): 500 Wh in the meter's 300 s is
    # 6 kW, but the chain has counted no time since the baseline's attestation.
    ahead = await world.post(member.meter.read(now + 300, exported_wh=500))
    assert refused_reason(ahead) == "ExportAboveMeterLimit"
    member.meter.counter -= 1
    member.meter.exported_wh -= 500
    wait = world.settings.readings.export_wait_secs
    # 500 Wh at 10 kW needs 180 s: at 179 - wait, the chain would allow it only after the wait.
    now = await world.elapse(179 - wait)
    late = await world.post(member.meter.read(now, exported_wh=500))
    assert refused_reason(late) == "ExportAboveMeterLimit"
    member.meter.counter -= 1
    member.meter.exported_wh -= 500
    # At 180 - wait it is taken, and held until the chain's 180 s.
    now = await world.elapse(1)
    assert (await world.post(member.meter.read(now, exported_wh=500))).json()["accepted"] == 1
    await world.services.attester.request(member.meter.public_key)
    assert await world.services.attester.run_once() == 0
    assert await world.market.balance(member) == 0
    await world.elapse(wait)
    await world.services.attester.request(member.meter.public_key)
    assert await world.services.attester.run_once() == 1
    assert await world.market.balance(member) == 500


async def test_a_reading_above_the_daily_mint_cap_is_refused(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    assert (await world.post(member.meter.read(now))).status_code == 200
    assert await world.services.attester.run_once() == 1
    cap = (await world.market.h.client.market(world.market.address)).config.daily_mint_cap_wh
    # Chain time enough for the export limit (10 kW) and the meter's own power (20 kW).
    now = await world.elapse(cap * 3_600 // 10_000 + 3_600)
    response = await world.post(member.meter.read(now, exported_wh=cap + 1))
    assert refused_reason(response) == "MintCeilingReached"


async def test_malformed_requests_get_a_4xx_with_a_reason(world: OracleWorld) -> None:
    member = await world.member()
    good = member.meter.read(await world.market.now())
    assert (await world.http.post(READINGS_PATH, content=b"{nope")).status_code == 400
    missing = await world.http.post(READINGS_PATH, json={"message": "00"})
    assert missing.status_code == 400
    assert missing.json()["reason"] == "MalformedSubmission"
    bad_hex = {"message": "zz", "signature": good.signature.hex(), "meter": str(good.meter)}
    response = await world.http.post(READINGS_PATH, json=bad_hex)
    assert response.status_code == 422
    assert response.json()["results"][0]["reason"] == "MalformedSubmission"
    short = {
        "message": good.message[:-1].hex(),
        "signature": good.signature.hex(),
        "meter": str(good.meter),
    }
    response = await world.http.post(READINGS_PATH, json=short)
    assert response.json()["results"][0]["reason"] == "InvalidReadingLength"
    unknown = await world.post(sign(Reading.decode(good.message), Ed25519PrivateKey.generate()))
    assert unknown.json()["results"][0]["reason"] == "UnknownMeter"
    too_many = {"readings": [bad_hex] * (world.settings.readings.max_batch_readings + 1)}
    response = await world.http.post(READINGS_PATH, json=too_many)
    assert response.status_code == 413
    assert response.json()["reason"] == "BatchTooLarge"
    short_signature = {**bad_hex, "message": good.message.hex(), "signature": "00" * 10}
    response = await world.http.post(READINGS_PATH, json=short_signature)
    assert response.json()["results"][0]["reason"] == "MalformedSubmission"
    assert await world.services.store.unattested_count() == 0
    # One refused by the route (bad hex), one by the pipeline (short signature): each once.
    metrics = (await world.http.get("/metrics")).text
    assert 'nishati_readings_rejected_total{reason="MalformedSubmission"} 2.0' in metrics


async def test_a_body_past_the_batch_limit_is_refused_unread(world: OracleWorld) -> None:
    """The readings route reads a body only up to what the batch limit can need."""
    limit = (world.settings.readings.max_batch_readings + 1) * READING_BODY_BYTES
    padded = b'{"readings": [' + b" " * limit + b"]}"
    response = await world.http.post(READINGS_PATH, content=padded)
    assert response.status_code == 413
    assert response.json() == {
        "reason": "BatchTooLarge",
        "detail": f"at most {world.settings.readings.max_batch_readings} readings",
    }
    # Just under the limit, the same body is read: an empty batch, which is malformed.
    fits = b'{"readings": [' + b" " * (limit - 100) + b"]}"
    empty = await world.http.post(READINGS_PATH, content=fits)
    assert (empty.status_code, empty.json()["reason"]) == (400, "MalformedSubmission")
    assert "at least 1 item" in empty.json()["detail"]
    other = await world.http.get(READINGS_PATH)
    assert (other.status_code, other.headers["allow"]) == (405, "POST")


async def test_the_readings_route_is_in_the_openapi_schema(world: OracleWorld) -> None:
    schema = (await world.http.get("/openapi.json")).json()
    post = schema["paths"][READINGS_PATH]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in body] == ["ReadingBatchIn", "SignedReadingIn"]
    assert set(post["responses"]) == {"200", "400", "413", "422", "503"}
    models = schema["components"]["schemas"]
    assert models["SignedReadingIn"]["required"] == ["message", "signature", "meter"]
    assert "results" in models["IngestOut"]["properties"]
    # The app's own routes are still there.
    assert "/api/v1/meters/{meter}/attest" in schema["paths"]


async def test_a_restart_remembers_the_last_counter(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    first = member.meter.read(now, exported_wh=100)
    assert (await world.post(first)).json()["accepted"] == 1
    reopened = await Store.open(world.settings.storage.database_url)
    try:
        states = await reopened.meter_states([str(member.meter.public_key)])
    finally:
        await reopened.close()
    assert states[str(member.meter.public_key)].last_counter == 1


async def test_health_and_readiness(world: OracleWorld) -> None:
    assert (await world.http.get("/healthz")).json() == {"status": "ok"}
    ready = await world.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "chain": "ok"}


async def rechecked(registry: MeterRegistry) -> None:
    """Until the registry has read its stale meters again."""
    for _ in range(200):
        if registry._rechecking is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the registry never read its stale meters again")


def refused_reason(response: httpx.Response) -> str | None:
    reason: str | None = response.json()["results"][0]["reason"]
    return reason


async def test_a_replaced_meter_is_refused_once_the_chain_says_so(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    old = member.meter
    assert (await world.post(old.read(now, exported_wh=10))).json()["accepted"] == 1
    await world.market.set_meter(member, authority=world.market.admin)
    registry = world.services.pipeline.registry
    registry.ttl_secs, registry.gather_secs = 0, 0
    # Known and confirmed a moment ago: accepted, and the record is read again meanwhile.
    assert (await world.post(old.read(now + 60, exported_wh=20))).status_code == 200
    await rechecked(registry)
    refused = await world.post(old.read(now + 120, exported_wh=30))
    assert refused.status_code == 422
    assert refused_reason(refused) == "UnknownMeter"
    assert await world.services.store.unattested_count() == 2


class RecordReads:
    """``NishatiClient.meter_records`` watched: the addresses each call asked for, and a chain
    that fails while ``down``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[int] = []
        self.down = False
        real = NishatiClient.meter_records

        async def meter_records(
            client: NishatiClient, addresses: Sequence[Pubkey]
        ) -> list[MeterRecord | None]:
            self.asked.append(len(addresses))
            if self.down:
                raise RpcUnavailable("getMultipleAccounts: connection refused")
            return await real(client, addresses)

        monkeypatch.setattr(NishatiClient, "meter_records", meter_records)


async def test_stale_meters_are_read_again_together_and_kept_while_the_chain_is_down(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [await world.member() for _ in range(4)]
    now = await world.market.now()
    await world.post(*(m.meter.read(now) for m in members))
    registry = world.services.pipeline.registry
    registry.ttl_secs, registry.gather_secs = 0, 0
    reads = RecordReads(monkeypatch)
    reads.down = True
    body = (await world.post(*(m.meter.read(now + 60) for m in members))).json()
    assert body["accepted"] == 4
    await asyncio.sleep(0.05)
    # One request for the four, tried again while the chain is down.
    assert len(reads.asked) >= 2
    assert set(reads.asked) == {4}
    reads.down = False
    reads.asked.clear()
    await rechecked(registry)
    assert reads.asked == [4]
    body = (await world.post(*(m.meter.read(now + 120) for m in members))).json()
    assert body["accepted"] == 4


async def test_new_meters_are_looked_up_together_and_sent_again_when_the_chain_is_down(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [await world.member() for _ in range(3)]
    now = await world.market.now()
    readings = [m.meter.read(now, exported_wh=5) for m in members]
    reads = RecordReads(monkeypatch)
    reads.down = True
    refused = await world.post(*readings)
    assert refused.status_code == 422
    assert {r["reason"] for r in refused.json()["results"]} == {"ChainUnavailable"}
    assert await world.services.store.unattested_count() == 0
    reads.down = False
    assert (await world.post(*readings)).json()["accepted"] == 3
    assert reads.asked == [3, 3]  # the three in one request, each time
