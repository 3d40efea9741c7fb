"""Auto-sell on a market on LiteSVM: a custodial household opts in, the oracle keeps one offer
open for the advised share of its surplus within its limits, replaces it as the advice
changes, records each with why, and cancels it when the household stops; a household with its
own wallet is refused, and limits outside the market's are 422s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from nishati_client.errors import AccountNotFound
from nishati_dev.sandbox import MAX_PRICE, MIN_PRICE, Harness, Member
from nishati_oracle.forecast.advice import SellAdvice
from tests.forecast.support import ORACLE_SETTINGS, StandInAdvisor, call
from tests.harness.oracle import OracleWorld, start_world
from tests.harness.polling import eventually

HELD_WH = 8_000
LIMITS = {"floor_price_cents_per_kwh": 2_000, "share_percent": 50, "max_wh_per_offer": 3_000}


@pytest.fixture
async def market(
    litesvm: Harness, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[OracleWorld, StandInAdvisor]]:
    world = await start_world(litesvm, database_url, tmp_path, **ORACLE_SETTINGS)
    async with world.app.router.lifespan_context(world.app), world.http:
        advisor = StandInAdvisor()
        world.services.advisor = advisor
        yield world, advisor


def auto_sell(member: Member, route: str = "auto-sell") -> str:
    return f"/api/v1/households/{member.address}/{route}"


async def seller(world: OracleWorld) -> Member:
    member = await world.member()
    await world.market.mint(member, HELD_WH)
    return member


async def offers(world: OracleWorld, member: Member) -> list[dict[str, Any]]:
    answer = await call(world, "GET", auto_sell(member, "auto-sell/offers"), member.owner_keypair)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def test_the_oracle_keeps_one_offer_for_the_advised_share_and_replaces_it(
    market: tuple[OracleWorld, StandInAdvisor],
) -> None:
    world, advisor = market
    home = await seller(world)
    now = await world.market.now()
    advisor.sell = SellAdvice(offer_wh=5_000, price_cents_per_kwh=1_800, until=now + 7_200)
    answer = await call(world, "PUT", auto_sell(home), home.owner_keypair, LIMITS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is True
    await world.services.auto_sell.run_once()

    # Half the 5,000 Wh surplus, at the floor (the advice was under it), until the advised end.
    [made] = await offers(world, home)
    offer = await world.market.h.client.offer(Pubkey.from_string(made["offer"]))
    assert (offer.unreserved_wh, offer.price_cents_per_kwh, offer.expires_at) == (
        2_500,
        2_000,
        now + 7_200,
    )
    assert (made["wh"], made["forecast_surplus_wh"], made["balance_wh"]) == (2_500, 5_000, HELD_WH)
    assert "50 % share: 2,500 Wh" in made["why"]
    assert "floor 2,000" in made["why"]
    assert made["closed_at"] is None
    assert await world.market.balance(home) == HELD_WH - 2_500

    # The same advice again: the offer stands.
    await world.services.auto_sell.run_once()
    assert len(await offers(world, home)) == 1

    # A bigger surplus at a better price: replaced, capped at the most per offer.
    advisor.sell = SellAdvice(offer_wh=9_000, price_cents_per_kwh=2_600, until=now + 3_600)
    await world.services.auto_sell.run_once()
    newer, older = await offers(world, home)
    assert older["closed_at"] is not None
    assert older["closed_why"].startswith("replaced")
    with pytest.raises(AccountNotFound):
        await world.market.h.client.offer(Pubkey.from_string(older["offer"]))
    offer = await world.market.h.client.offer(Pubkey.from_string(newer["offer"]))
    assert (offer.unreserved_wh, offer.price_cents_per_kwh) == (3_000, 2_600)
    assert newer["closed_at"] is None
    shown = (await call(world, "GET", auto_sell(home), home.owner_keypair)).json()
    assert shown["open_offer"]["offer"] == newer["offer"]

    # No surplus left in the advice: the offer is withdrawn and none made.
    advisor.sell = None
    await world.services.auto_sell.run_once()
    assert all(o["closed_at"] is not None for o in await offers(world, home))
    assert await world.market.balance(home) == HELD_WH
    metrics = (await world.http.get("/metrics")).text
    assert 'nishati_auto_sell_offers_total{action="made"} 2.0' in metrics
    assert 'nishati_auto_sell_offers_total{action="closed"} 2.0' in metrics


async def test_stopping_cancels_the_open_automatic_offer(
    market: tuple[OracleWorld, StandInAdvisor],
) -> None:
    world, advisor = market
    home = await seller(world)
    advisor.sell = SellAdvice(
        offer_wh=4_000, price_cents_per_kwh=2_500, until=await world.market.now() + 7_200
    )
    await call(world, "PUT", auto_sell(home), world.market.installer, LIMITS)
    await world.services.auto_sell.run_once()
    [made] = await offers(world, home)
    assert made["wh"] == 2_000
    stopped = await call(world, "DELETE", auto_sell(home), home.owner_keypair)
    assert stopped.status_code == 200, stopped.text
    closed = stopped.json()["closed_offer"]
    assert (closed["offer"], closed["closed_why"]) == (
        made["offer"],
        f"stopped by owner:{home.owner}",
    )
    with pytest.raises(AccountNotFound):
        await world.market.h.client.offer(Pubkey.from_string(made["offer"]))
    assert await world.market.balance(home) == HELD_WH
    # Stopped, it offers nothing more.
    await world.services.auto_sell.run_once()
    assert len(await offers(world, home)) == 1
    shown = (await call(world, "GET", auto_sell(home), home.owner_keypair)).json()
    assert (shown["enabled"], shown["open_offer"]) == (False, None)


async def test_never_more_than_the_household_holds(
    market: tuple[OracleWorld, StandInAdvisor],
) -> None:
    world, advisor = market
    home = await seller(world)
    advisor.sell = SellAdvice(
        offer_wh=40_000, price_cents_per_kwh=2_500, until=await world.market.now() + 7_200
    )
    limits = {**LIMITS, "share_percent": 100, "max_wh_per_offer": 100_000}
    await call(world, "PUT", auto_sell(home), home.owner_keypair, limits)
    await world.services.auto_sell.run_once()
    [made] = await offers(world, home)
    assert made["wh"] == HELD_WH
    assert await world.market.balance(home) == 0


async def test_a_household_with_its_own_wallet_cannot_opt_in(
    market: tuple[OracleWorld, StandInAdvisor],
) -> None:
    world, _ = market
    wallet = await world.market.register()
    answer = await call(world, "PUT", auto_sell(wallet), wallet.owner_keypair, LIMITS)
    assert (answer.status_code, answer.json()["reason"]) == (409, "NotCustodial")
    assert "nishati offer create" in answer.json()["detail"]
    shown = (await call(world, "GET", auto_sell(wallet), wallet.owner_keypair)).json()
    assert shown["enabled"] is False


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"floor_price_cents_per_kwh": MIN_PRICE - 1}, "FloorPriceOutOfBounds"),
        ({"floor_price_cents_per_kwh": MAX_PRICE + 1}, "FloorPriceOutOfBounds"),
        ({"share_percent": 101}, "InvalidAutoSell"),
        ({"share_percent": -1}, "InvalidAutoSell"),
        ({"max_wh_per_offer": 0}, "InvalidAutoSell"),
    ],
)
async def test_limits_outside_their_bounds_are_422s(
    market: tuple[OracleWorld, StandInAdvisor], change: dict[str, int], reason: str
) -> None:
    world, _ = market
    home = await world.member()
    answer = await call(world, "PUT", auto_sell(home), home.owner_keypair, {**LIMITS, **change})
    assert (answer.status_code, answer.json()["reason"]) == (422, reason), answer.text
    shown = (await call(world, "GET", auto_sell(home), home.owner_keypair)).json()
    assert shown["enabled"] is False


async def test_the_running_worker_acts_as_soon_as_a_household_opts_in(
    market: tuple[OracleWorld, StandInAdvisor],
) -> None:
    world, advisor = market
    home = await seller(world)
    advisor.sell = SellAdvice(
        offer_wh=2_000, price_cents_per_kwh=2_500, until=await world.market.now() + 7_200
    )
    await call(world, "PUT", auto_sell(home), home.owner_keypair, LIMITS)

    async def offered() -> dict[str, Any] | None:
        shown = (await call(world, "GET", auto_sell(home), home.owner_keypair)).json()
        found: dict[str, Any] | None = shown["open_offer"]
        return found

    # Its rounds are 300 s apart; the PUT wakes it.
    made = await eventually(offered, "an automatic offer", within_secs=20)
    assert made is not None
    assert made["wh"] == 1_000
