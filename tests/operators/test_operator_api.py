"""The operator's pages' data: the market's settings as the chain holds them, its meters and
their silence, the readings refused at the door and by the chain, the trades by state; for an
operator only (a household and nobody are refused; sessions in tests/accounts)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from nishati_client.market import MarketUpdate
from nishati_client.signing import SignedRequests
from nishati_dev.sandbox import Harness, Member, set_time
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.storage.schema import trades
from nishati_oracle.trading.ledger import TradeState
from tests.harness.oracle import AS_OPERATOR, IN_PROCESS_TRADING, OracleWorld, start_world
from tests.operators.rows import trade_row


@pytest.fixture
async def world(litesvm: Harness, database_url: str, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    """The oracle with an operator's token (and trading, in-process)."""
    started = await start_world(litesvm, database_url, tmp_path, **IN_PROCESS_TRADING)
    async with started.app.router.lifespan_context(started.app), started.http:
        yield started


ROUTES = [
    "/api/v1/operator/market",
    "/api/v1/operator/installers",
    "/api/v1/operator/meters",
    "/api/v1/operator/trades",
]


async def as_operator(world: OracleWorld, path: str) -> Any:
    answer = await world.http.get(path, headers=AS_OPERATOR)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def read_at(world: OracleWorld, member: Member, at: int) -> None:
    set_time(world.market.h, at)
    await world.elapse(0)
    answer = await world.post(member.meter.read(at, 100, 10))
    assert answer.json()["accepted"] == 1, answer.text


async def test_every_route_refuses_a_household_and_nobody(world: OracleWorld) -> None:
    member = await world.member()
    for path in ROUTES:
        nobody = await world.http.get(path)
        assert (nobody.status_code, nobody.json()["reason"]) == (401, "NotSignedIn"), path
        household = await world.http.get(path, auth=SignedRequests(member.owner_keypair))
        assert (household.status_code, household.json()["reason"]) == (403, "OperatorsOnly")
        guessed = await world.http.get(path, headers={"Authorization": "Bearer not-it"})
        assert guessed.status_code == 401, path


async def test_the_market_is_as_the_chain_holds_it_now(world: OracleWorld) -> None:
    before = await as_operator(world, "/api/v1/operator/market")
    assert before["market"] == str(world.market.address)
    assert before["paused"] is False
    config = before["config"]
    assert config["min_price_cents_per_kwh"] < config["max_price_cents_per_kwh"]
    await world.market.h.client.market_update(
        payer=world.market.h.payer,
        admin=world.market.admin,
        market=world.market.address,
        update=MarketUpdate(fee_bps=250),
    )
    after = await as_operator(world, "/api/v1/operator/market")
    assert after["config"]["fee_bps"] == 250
    assert after["config"] | {"fee_bps": config["fee_bps"]} == config


async def test_installers_on_litesvm_are_unlisted_in_the_error_shape(world: OracleWorld) -> None:
    answer = await world.http.get("/api/v1/operator/installers", headers=AS_OPERATOR)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "InstallersUnlisted"


async def test_meters_silent_and_refused_by_reason(world: OracleWorld) -> None:
    now = int(time.time())
    quiet, talking, never = await world.member(), await world.member(), await world.member()
    await read_at(world, quiet, now - 7_200)
    await read_at(world, talking, now - 60)
    # At the door: a reading signed by another key, twice; one of a meter nobody registered.
    forged = quiet.meter.read(now - 30, 1, 0)
    wrong = {"message": forged.message.hex(), "signature": "00" * 64, "meter": str(forged.meter)}
    for _ in range(2):
        await world.http.post(READINGS_PATH, json={"readings": [wrong]})
    # The chain: the talking meter's reading refused for good (as the batcher closes them).
    fence = world.services.attester.lease.fence
    assert fence is not None
    await world.services.store.close_readings(
        fence, str(talking.meter.public_key), "MeterReplaced", now
    )

    found = await as_operator(world, "/api/v1/operator/meters?silent_after_secs=3600")
    assert found["meters"] >= 2
    listed = {m["meter"]: m for m in found["most_silent"]}
    quiet_line = listed[str(quiet.meter.public_key)]
    assert quiet_line["household"] == str(quiet.address)
    assert quiet_line["has_reading"] is True
    assert quiet_line["last_timestamp"] == now - 7_200
    assert quiet_line["silent_secs"] >= 7_200
    assert str(never.meter.public_key) not in listed  # never seen by the oracle
    silent = [m for m in found["most_silent"] if m["silent_secs"] > 3_600]
    assert found["silent"] == len(silent)
    assert str(talking.meter.public_key) not in {m["meter"] for m in silent}
    ages = [m["last_timestamp"] for m in found["most_silent"]]
    assert ages == sorted(ages)
    assert {"reason": "InvalidSignature", "readings": 2} in found["rejected"]
    assert found["refused"] == [{"reason": "MeterReplaced", "final": 1, "waiting": 0, "meters": 1}]

    one = await as_operator(world, "/api/v1/operator/meters?limit=1")
    assert len(one["most_silent"]) == 1
    assert one["most_silent"][0]["last_timestamp"] == min(ages)
    too_short = await world.http.get(
        "/api/v1/operator/meters?silent_after_secs=1", headers=AS_OPERATOR
    )
    assert too_short.status_code == 400


async def test_trades_by_state_count_each_and_list_the_latest(world: OracleWorld) -> None:
    rows = [trade_row(TradeState.payout_confirmed, 1_000.0 + i, 100 + i) for i in range(7)]
    rows += [
        trade_row(TradeState.stk_sent, 2_000.0, 500),
        trade_row(TradeState.payout_failed, 3_000.0, 9),
    ]
    async with world.services.store.engine.begin() as conn:
        await conn.execute(insert(trades), rows)
    found = await as_operator(world, "/api/v1/operator/trades?latest=3")
    states = {s["state"]: s for s in found["states"]}
    # In the ledger's order of states, only those holding a trade.
    assert [s["state"] for s in found["states"]] == [
        "stk_sent",
        "payout_confirmed",
        "payout_failed",
    ]
    assert (states["payout_confirmed"]["trades"], states["stk_sent"]["trades"]) == (7, 1)
    assert [t["wh"] for t in states["payout_confirmed"]["latest"]] == [106, 105, 104]
    failed = states["payout_failed"]["latest"][0]
    assert (failed["trade_id"], failed["total_cents"], failed["payout_kes"]) == (
        rows[-1]["id"],
        22,
        0,
    )
    empty_enough = await world.http.get("/api/v1/operator/trades?latest=0", headers=AS_OPERATOR)
    assert empty_enough.status_code == 400


async def test_a_market_without_meters_or_trades_has_empty_pages(world: OracleWorld) -> None:
    meters = await as_operator(world, "/api/v1/operator/meters")
    assert (meters["meters"], meters["silent"], meters["most_silent"]) == (0, 0, [])
    assert (meters["rejected"], meters["refused"]) == ([], [])
    assert (await as_operator(world, "/api/v1/operator/trades")) == {"states": []}
