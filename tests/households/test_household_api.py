"""A household's pages' data: its day of readings (export and import apart, at the meter's
resolution), its balance, its trades, its meter's health, its offers; only ever its own (each
request signed with the household owner's key, as the oracle's client signs them)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey
from sqlalchemy import insert

from nishati_client.signing import SignedRequests
from nishati_dev.sandbox import Harness, Member, set_time
from nishati_oracle.accounts.sessions import SESSION_COOKIE, Holder
from nishati_oracle.households.reads import day_bounds
from nishati_oracle.storage.schema import trade_history, trades
from nishati_oracle.trading.ledger import TradeState
from tests.harness.oracle import OracleWorld, start_world

# Noon on 7 December 2026 in Nairobi (09:00 UTC); households register the evening before.
NOON = int(datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp())
DAY = "2026-12-07"
EVENING_BEFORE = NOON - 15 * 3_600


@pytest.fixture
async def world(litesvm: Harness, database_url: str, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    set_time(litesvm, EVENING_BEFORE)
    started = await start_world(litesvm, database_url, tmp_path)
    async with started.app.router.lifespan_context(started.app), started.http:
        yield started


async def read_at(
    world: OracleWorld, member: Member, at: int, exported_wh: int = 0, imported_wh: int = 0
) -> None:
    """The member's meter's next reading, sent at chain time ``at`` (the chain's clock moved
    there first)."""
    set_time(world.market.h, at)
    await world.elapse(0)
    answer = await world.post(member.meter.read(at, exported_wh, imported_wh))
    assert answer.json()["accepted"] == 1, answer.text


def path(member: Member, route: str) -> str:
    return f"/api/v1/households/{member.address}/{route}"


async def get(world: OracleWorld, member: Member, route: str, by: Member | None = None) -> Any:
    """The household's route as ``by``'s owner signs it (the household's own unless given)."""
    signer = (by or member).owner_keypair
    answer = await world.http.get(path(member, route), auth=SignedRequests(signer))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def send(
    world: OracleWorld, method: str, member: Member, route: str, body: Any = None
) -> httpx.Response:
    return await world.http.request(
        method, path(member, route), json=body, auth=SignedRequests(member.owner_keypair)
    )


ROUTES = [f"day?date={DAY}", f"solar?date={DAY}", "balance", "trades", "meters", "offers"]
OFFER = {"wh": 1_000, "price_cents_per_kwh": 2_500, "expires_in_secs": 3_600}


async def test_every_route_refuses_nobody_and_another_household(world: OracleWorld) -> None:
    member, stranger = await world.member(), await world.member()
    for route in ROUTES:
        nobody = await world.http.get(path(member, route))
        assert nobody.status_code == 401, route
        assert nobody.json()["reason"] == "NotSignedIn"
        other = await world.http.get(
            path(member, route), auth=SignedRequests(stranger.owner_keypair)
        )
        assert other.status_code == 403, route
        assert other.json()["reason"] == "NotYourHousehold"
    offer = {"wh": 1, "price_cents_per_kwh": 2500, "expires_in_secs": 60}
    assert (await world.http.post(path(member, "offers"), json=offer)).status_code == 401
    other = await world.http.post(
        path(member, "offers"), json=offer, auth=SignedRequests(stranger.owner_keypair)
    )
    assert other.status_code == 403


async def test_a_day_is_each_interval_export_and_import_apart(world: OracleWorld) -> None:
    member = await world.member()
    start, end = day_bounds(datetime(2026, 12, 7).date())
    # A reading the evening before, three during the day, one the next morning.
    times = [start - 3_600, NOON - 1_800, NOON - 900, NOON, end + 60]
    steps = [(0, 0), (500, 20), (300, 0), (0, 250), (9_999, 9_999)]
    for at, (exported, imported) in zip(times[:4], steps[:4], strict=True):
        await read_at(world, member, at, exported, imported)
    day = await get(world, member, f"day?date={DAY}")
    assert (day["start"], day["end"]) == (start, end)
    assert day["meters"] == [str(member.meter.public_key)]
    assert [
        (i["start"], i["end"], i["exported_wh"], i["imported_wh"]) for i in day["intervals"]
    ] == [
        (times[0], times[1], 500, 20),
        (times[1], times[2], 300, 0),
        (times[2], times[3], 0, 250),
    ]
    # Never netted: 800 Wh out and 270 Wh in, not 530 Wh.
    assert (day["exported_wh"], day["imported_wh"]) == (800, 270)
    before = await get(world, member, "day?date=2026-12-06")
    # The evening before holds the meter's first reading (its baseline) alone: no interval.
    assert (before["intervals"], before["exported_wh"]) == ([], 0)


async def test_a_households_day_holds_its_own_meter_only(world: OracleWorld) -> None:
    mine, theirs = await world.member(), await world.member()
    for member in (mine, theirs):
        await read_at(world, member, NOON - 600)
        await read_at(world, member, NOON - 300, exported_wh=100)
    day = await get(world, mine, f"day?date={DAY}")
    meters = await get(world, mine, "meters")
    assert day["meters"] == [str(mine.meter.public_key)]
    assert [m["meter"] for m in meters["meters"]] == [str(mine.meter.public_key)]


async def test_the_meters_health_counts_what_waits_for_the_chain(world: OracleWorld) -> None:
    member = await world.member()
    await read_at(world, member, NOON - 600)
    await read_at(world, member, NOON - 300, exported_wh=40, imported_wh=7)
    health = (await get(world, member, "meters"))["meters"]
    assert len(health) == 1
    assert health[0]["last_counter"] == 2
    assert health[0]["last_timestamp"] == NOON - 300
    assert (health[0]["last_exported_wh"], health[0]["last_imported_wh"]) == (40, 7)
    assert (health[0]["unattested"], health[0]["refused"]) == (2, 0)
    assert health[0]["silent_secs"] >= 0


async def test_the_balance_is_the_energy_minted_and_the_trades_money(world: OracleWorld) -> None:
    member, other = await world.member(), await world.member()
    await world.market.mint(member, 3_000)
    household = str(member.address)
    rows = [
        # Bought and paid: spent.
        trade_row(
            buyer=household,
            seller=str(other.address),
            state=TradeState.settled,
            wh=500,
            total_cents=1_250,
            payout_kes=12,
        ),
        # Bought, then refunded: not spent.
        trade_row(
            buyer=household,
            seller=str(other.address),
            state=TradeState.refunded,
            wh=400,
            total_cents=1_000,
            payout_kes=9,
        ),
        # Sold and paid out: earned.
        trade_row(
            buyer=str(other.address),
            seller=household,
            state=TradeState.payout_confirmed,
            wh=1_000,
            total_cents=2_500,
            payout_kes=24,
        ),
        # Sold, settled, payout on its way: owed.
        trade_row(
            buyer=str(other.address),
            seller=household,
            state=TradeState.payout_sent,
            wh=200,
            total_cents=500,
            payout_kes=4,
        ),
        # Someone else's trade entirely.
        trade_row(
            buyer=str(other.address),
            seller=str(other.address),
            state=TradeState.settled,
            wh=7_000,
            total_cents=9_999,
            payout_kes=90,
        ),
    ]
    for i, row in enumerate(rows):  # listed oldest first, a minute apart
        row["created_at"] = float(NOON - 600 + 60 * i)
    async with world.services.store.engine.begin() as conn:
        await conn.execute(insert(trades), rows)
    balance = await get(world, member, "balance")
    history = (await get(world, member, "trades"))["trades"]
    assert balance["energy_wh"] == await world.market.balance(member) == 3_000
    assert (balance["spent_cents"], balance["bought_wh"]) == (1_250, 500)
    assert (balance["earned_cents"], balance["owed_cents"], balance["sold_wh"]) == (
        2_400,
        400,
        1_200,
    )
    assert [(t["role"], t["wh"]) for t in history] == [
        ("seller", 200),
        ("seller", 1_000),
        ("buyer", 400),
        ("buyer", 500),
    ]
    assert history[1]["mpesa_receipt"] == rows[2]["mpesa_receipt"]


async def test_offers_on_litesvm_are_unlisted_in_the_error_shape(world: OracleWorld) -> None:
    member = await world.member()
    answer = await world.http.get(path(member, "offers"), auth=SignedRequests(member.owner_keypair))
    assert answer.status_code == 503
    assert answer.json()["reason"] == "OffersUnlisted"


async def test_a_custodial_household_creates_and_cancels_an_offer(world: OracleWorld) -> None:
    member = await world.member()
    await world.market.mint(member, 2_000)
    created = await send(world, "POST", member, "offers", OFFER | {"wh": 1_500})
    assert created.status_code == 201, created.text
    offer = created.json()["offer"]
    assert await world.market.balance(member) == 500
    listed = await world.market.h.client.offer(Pubkey.from_string(offer))
    assert (listed.unreserved_wh, listed.price_cents_per_kwh) == (1_500, 2_500)
    too_much = await send(world, "POST", member, "offers", OFFER | {"wh": 5_000})
    assert too_much.status_code == 409
    assert too_much.json()["reason"] == "ChainRefused"
    cancelled = await send(world, "DELETE", member, f"offers/{offer}")
    assert cancelled.status_code == 204, cancelled.text
    assert await world.market.balance(member) == 2_000


async def test_a_household_cannot_cancel_another_households_offer(world: OracleWorld) -> None:
    seller, stranger = await world.member(), await world.member()
    await world.market.mint(seller, 1_000)
    offer = (await send(world, "POST", seller, "offers", OFFER)).json()["offer"]
    # Through its own household's route: no offer of its own there.
    answer = await send(world, "DELETE", stranger, f"offers/{offer}")
    assert answer.status_code == 404
    assert answer.json()["reason"] == "UnknownOffer"
    # Through the seller's: not its household.
    answer = await world.http.delete(
        path(seller, f"offers/{offer}"), auth=SignedRequests(stranger.owner_keypair)
    )
    assert answer.status_code == 403
    assert await world.market.balance(seller) == 0


async def test_where_the_solar_went_is_the_days_export_sold_or_to_the_grid(
    world: OracleWorld,
) -> None:
    member, other = await world.member(), await world.member()
    start, _ = day_bounds(datetime(2026, 12, 7).date())
    # 800 Wh exported during the day (the first reading, the evening before, its baseline).
    for at, exported in ((start - 3_600, 0), (NOON - 1_800, 500), (NOON, 300)):
        await read_at(world, member, at, exported, 40)
    household, neighbour = str(member.address), str(other.address)
    sales = [
        # Settled today, its payout confirmed since: sold today.
        (
            trade_row(
                buyer=neighbour,
                seller=household,
                state=TradeState.payout_confirmed,
                wh=250,
                total_cents=625,
                payout_kes=6,
            ),
            [("settled", NOON - 600), ("payout_confirmed", NOON - 500)],
        ),
        # Settled today, waiting for its payout: sold today.
        (
            trade_row(
                buyer=neighbour,
                seller=household,
                state=TradeState.settled,
                wh=150,
                total_cents=375,
                payout_kes=3,
            ),
            [("settled", NOON)],
        ),
        # Settled the day before: not today's.
        (
            trade_row(
                buyer=neighbour,
                seller=household,
                state=TradeState.settled,
                wh=90,
                total_cents=225,
                payout_kes=2,
            ),
            [("settled", start - 60)],
        ),
        # Paid, not settled yet: not sold.
        (
            trade_row(
                buyer=neighbour,
                seller=household,
                state=TradeState.paid,
                wh=70,
                total_cents=175,
                payout_kes=1,
            ),
            [("paid", NOON)],
        ),
        # Bought by the household, settled today: its neighbour's sale, not its own.
        (
            trade_row(
                buyer=household,
                seller=neighbour,
                state=TradeState.settled,
                wh=60,
                total_cents=150,
                payout_kes=1,
            ),
            [("settled", NOON)],
        ),
    ]
    # The one settled the day before was opened then too.
    sales[2][0]["created_at"] = float(start - 120)
    history = [
        {"trade_id": row["id"], "at": float(at), "state": state, "detail": None}
        for row, states in sales
        for state, at in states
    ]
    async with world.services.store.engine.begin() as conn:
        await conn.execute(insert(trades), [row for row, _ in sales])
        await conn.execute(insert(trade_history), history)
    solar = await get(world, member, f"solar?date={DAY}")
    assert solar == {
        "household": household,
        "date": DAY,
        "exported_wh": 800,
        "sold_wh": 400,
        "sold_trades": 2,
        "to_grid_wh": 400,
    }
    # The neighbour exported nothing and sold 60 Wh (energy of days before): none to the grid.
    theirs = await get(world, other, f"solar?date={DAY}")
    assert (theirs["exported_wh"], theirs["sold_wh"], theirs["to_grid_wh"]) == (0, 60, 0)
    before = await get(world, member, "solar?date=2026-12-06")
    assert (before["exported_wh"], before["sold_wh"], before["sold_trades"]) == (0, 90, 1)


async def test_where_the_solar_went_is_the_household_s_and_the_operator_s_only(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member, stranger = await world.member(), await world.member()
    route = path(member, f"solar?date={DAY}")
    sessions = world.services.accounts.sessions

    async def session_of(holder: Holder, subject: str) -> dict[str, str]:
        opened = await sessions.open(holder, subject)
        return {"Cookie": f"{SESSION_COOKIE}={opened.id}"}

    own = await session_of(Holder.household, str(member.address))
    theirs = await session_of(Holder.household, str(stranger.address))
    operator = await session_of(Holder.operator, "amina")
    assert (await world.http.get(route, headers=own)).status_code == 200
    assert (await world.http.get(route, headers=operator)).status_code == 200
    refused = await world.http.get(route, headers=theirs)
    assert (refused.status_code, refused.json()["reason"]) == (403, "NotYourHousehold")
    nobody = await world.http.get(route)
    assert (nobody.status_code, nobody.json()["reason"]) == (401, "NotSignedIn")
    an_hour_ago = time.time() - 3_600
    stale = await world.http.get(
        route, auth=SignedRequests(member.owner_keypair, lambda: an_hour_ago)
    )
    assert (stale.status_code, stale.json()["reason"]) == (401, "StaleSignature")
    # The household's own session, once it is over.
    later = time.time() + world.settings.auth.session_secs + 1
    monkeypatch.setattr(sessions, "clock", lambda: later)
    over = await world.http.get(route, headers=own)
    assert (over.status_code, over.json()["reason"]) == (401, "NotSignedIn")


def trade_row(
    *, buyer: str, seller: str, state: TradeState, wh: int, total_cents: int, payout_kes: int
) -> dict[str, object]:
    """A trade row as the ledger stores one, created at noon (a test changes it)."""
    created = float(NOON)
    return {
        "id": secrets.token_hex(16),
        "state": state.value,
        "market": "m",
        "offer": "o",
        "seller": seller,
        "buyer": buyer,
        "trade_address": secrets.token_hex(8),
        "payment_ref_hash": bytes(32),
        "wh": wh,
        "price_cents_per_kwh": 2_500,
        "total_cents": total_cents,
        "fee_cents": 0,
        "payout_kes": payout_kes,
        "buyer_phone": b"",
        "buyer_phone_hash": secrets.token_hex(8),
        "seller_phone": b"",
        "mpesa_receipt": secrets.token_hex(5).upper(),
        "queries": 0,
        "next_check_at": created,
        "created_at": created,
        "updated_at": created,
    }
