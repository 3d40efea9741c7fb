"""The forecast routes on a market on LiteSVM: each as the household's owner, as another
household, as nobody, with a stale or forged signature, as an installer and as the operator;
PV systems stored and checked (422 with the rule broken)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solders.keypair import Keypair

from nishati_client.signing import KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from nishati_dev.sandbox import Harness, Member
from tests.forecast.support import (
    ORACLE_SETTINGS,
    as_operator,
    call,
    forecast_for,
    signed,
)
from tests.harness.oracle import OracleWorld, start_world

HOUSEHOLD_ROUTES = [
    ("GET", "pv-system"),
    ("PUT", "pv-system"),
    ("GET", "forecast"),
    ("GET", "skill"),
    ("GET", "advice"),
    ("GET", "auto-sell"),
    ("PUT", "auto-sell"),
    ("DELETE", "auto-sell"),
    ("GET", "auto-sell/offers"),
]
BODIES = {
    "pv-system": {"capacity_wp": 4_000, "inverter_limit_w": 3_600, "tilt_deg": 12},
    "auto-sell": {"floor_price_cents_per_kwh": 2_000, "share_percent": 50, "max_wh_per_offer": 900},
}


@pytest.fixture
async def api(litesvm: Harness, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    world = await start_world(litesvm, database, tmp_path, **ORACLE_SETTINGS)
    async with world.app.router.lifespan_context(world.app), world.http:
        yield world


def path(member: Member, route: str) -> str:
    return f"/api/v1/households/{member.address}/{route}"


def body(method: str, route: str) -> object:
    return BODIES.get(route) if method == "PUT" else None


async def test_each_household_route_answers_its_owner_an_installer_and_the_operator(
    api: OracleWorld,
) -> None:
    home = await api.member()
    await forecast_for(api, home)
    for method, route in HOUSEHOLD_ROUTES:
        for who, by, headers in [
            ("owner", home.owner_keypair, None),
            ("installer", api.market.installer, None),
            ("operator", None, as_operator()),
        ]:
            answer = await call(api, method, path(home, route), by, body(method, route), headers)
            assert answer.status_code == 200, f"{method} {route} as {who}: {answer.text}"


async def test_another_household_nobody_and_a_stale_signature_are_refused(
    api: OracleWorld,
) -> None:
    home, neighbour = await api.member(), await api.member()
    an_hour_ago = time.time() - 3_600
    for method, route in HOUSEHOLD_ROUTES:
        where = path(home, route)
        what = f"{method} {route}"
        answer = await call(api, method, where, neighbour.owner_keypair, body(method, route))
        assert (answer.status_code, answer.json()["reason"]) == (403, "NotYourHousehold"), what
        answer = await call(api, method, where, None, body(method, route))
        assert (answer.status_code, answer.json()["reason"]) == (401, "NotSignedIn"), what
        assert "Nishati-Ed25519" in answer.headers["WWW-Authenticate"]
        stale = signed(home.owner_keypair, lambda: an_hour_ago)
        answer = await api.http.request(method, where, json=body(method, route), auth=stale)
        assert (answer.status_code, answer.json()["reason"]) == (401, "StaleSignature"), what
        wrong = {"Authorization": "Bearer not-the-token"}
        answer = await call(api, method, where, None, body(method, route), wrong)
        assert (answer.status_code, answer.json()["reason"]) == (401, "OperatorTokenRefused")
    # Nothing the refused callers sent was stored.
    answer = await call(api, "GET", path(home, "pv-system"), home.owner_keypair)
    assert answer.json()["defaults"] is True


async def test_a_signature_must_be_the_keys_over_this_very_request(api: OracleWorld) -> None:
    home = await api.member()
    where = path(home, "pv-system")
    good = await call(api, "GET", where, home.owner_keypair)
    assert good.status_code == 200
    # The owner's key named, another key's signature.
    forger = signed(Keypair())
    request = api.http.build_request("GET", where)
    headers = next(forger.auth_flow(request)).headers
    forged = {
        KEY_HEADER: str(home.owner),
        TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER],
        SIGNATURE_HEADER: headers[SIGNATURE_HEADER],
    }
    answer = await api.http.get(where, headers=forged)
    assert (answer.status_code, answer.json()["reason"]) == (401, "BadSignature")
    # The owner's signature over one body, sent with another.
    request = api.http.build_request("PUT", where, json=BODIES["pv-system"])
    owner_headers = next(signed(home.owner_keypair).auth_flow(request)).headers
    replayed_on = {name: owner_headers[name] for name in (KEY_HEADER, TIMESTAMP_HEADER)}
    replayed_on[SIGNATURE_HEADER] = owner_headers[SIGNATURE_HEADER]
    other_body = {"capacity_wp": 90_000, "inverter_limit_w": 90_000}
    answer = await api.http.put(where, json=other_body, headers=replayed_on)
    assert (answer.status_code, answer.json()["reason"]) == (401, "BadSignature")
    # Half the headers.
    answer = await api.http.get(where, headers={KEY_HEADER: str(home.owner)})
    assert (answer.status_code, answer.json()["reason"]) == (401, "BadSignature")


async def test_a_signed_change_is_taken_once(api: OracleWorld) -> None:
    home = await api.member()
    where = path(home, "pv-system")
    request = api.http.build_request("PUT", where, json=BODIES["pv-system"])
    headers = dict(next(signed(home.owner_keypair).auth_flow(request)).headers)
    first = await api.http.send(request)
    assert first.status_code == 200, first.text
    again = api.http.build_request("PUT", where, json=BODIES["pv-system"], headers=headers)
    answer = await api.http.send(again)
    assert (answer.status_code, answer.json()["reason"]) == (401, "ReplayedSignature")


async def test_an_unknown_household_is_a_404_for_everyone(api: OracleWorld) -> None:
    nowhere = f"/api/v1/households/{Keypair().pubkey()}/pv-system"
    for by, headers in [(api.market.installer, None), (None, as_operator())]:
        answer = await call(api, "GET", nowhere, by, headers=headers)
        assert (answer.status_code, answer.json()["reason"]) == (404, "UnknownHousehold")
    answer = await call(
        api, "GET", "/api/v1/households/not-an-address/pv-system", None, None, as_operator()
    )
    assert (answer.status_code, answer.json()["reason"]) == (404, "UnknownHousehold")


async def test_the_pv_system_is_the_defaults_until_set_then_what_was_set(
    api: OracleWorld,
) -> None:
    home = await api.member()
    where = path(home, "pv-system")
    defaults = (await call(api, "GET", where, home.owner_keypair)).json()
    assert defaults["defaults"] is True
    assert (defaults["capacity_wp"], defaults["latitude"]) == (3_000, -1.2921)
    stored = await call(api, "PUT", where, api.market.installer, BODIES["pv-system"])
    assert stored.status_code == 200, stored.text
    shown = (await call(api, "GET", where, home.owner_keypair)).json()
    assert shown["defaults"] is False
    assert (shown["capacity_wp"], shown["inverter_limit_w"], shown["tilt_deg"]) == (
        4_000,
        3_600,
        12.0,
    )
    # Fields left out take the defaults again: a PUT replaces the whole system.
    await call(
        api, "PUT", where, home.owner_keypair, {"capacity_wp": 5_000, "inverter_limit_w": 5_000}
    )
    shown = (await call(api, "GET", where, home.owner_keypair)).json()
    assert (shown["capacity_wp"], shown["tilt_deg"]) == (5_000, 10.0)


@pytest.mark.parametrize(
    ("system", "rule"),
    [
        ({"tilt_deg": 120}, "tilt_deg"),
        ({"latitude": -91}, "latitude"),
        ({"azimuth_deg": 360}, "azimuth_deg"),
        ({"capacity_wp": 0}, "capacity_wp"),
        ({"capacity_wp": 3_000, "inverter_limit_w": 100}, "times capacity_wp"),
    ],
)
async def test_an_impossible_pv_system_is_a_422_naming_its_rule(
    api: OracleWorld, system: dict[str, float], rule: str
) -> None:
    home = await api.member()
    answer = await call(api, "PUT", path(home, "pv-system"), home.owner_keypair, system)
    assert (answer.status_code, answer.json()["reason"]) == (422, "InvalidPvSystem"), answer.text
    assert rule in answer.json()["detail"]
    shown = (await call(api, "GET", path(home, "pv-system"), home.owner_keypair)).json()
    assert shown["defaults"] is True


async def test_a_pv_system_of_the_wrong_shape_is_a_400(api: OracleWorld) -> None:
    home = await api.member()
    for wrong in [{"tilt_deg": "steep"}, {"colour": "blue"}]:
        answer = await call(api, "PUT", path(home, "pv-system"), home.owner_keypair, wrong)
        assert (answer.status_code, answer.json()["reason"]) == (400, "MalformedSubmission")


async def test_the_forecast_is_the_services_latest_for_that_household(
    api: OracleWorld,
) -> None:
    home, other = await api.member(), await api.member()
    answer = await call(api, "GET", path(home, "forecast"), home.owner_keypair)
    assert (answer.status_code, answer.json()["reason"]) == (404, "NoForecastYet")
    system = {"capacity_wp": 6_000, "inverter_limit_w": 6_000}
    await call(api, "PUT", path(home, "pv-system"), home.owner_keypair, system)
    await forecast_for(api, home)
    await forecast_for(api, other)
    forecast = (await call(api, "GET", path(home, "forecast"), home.owner_keypair)).json()
    assert (forecast["household"], forecast["source"]) == (str(home.address), "clear_sky")
    assert len(forecast["steps"]) == 48 * 4
    step = max(forecast["steps"], key=lambda s: s["production_wh"])
    assert step["surplus_wh"] == step["production_wh"] - step["consumption_wh"]
    # The larger system's noon: more than the default 3 kWp's would make in 15 minutes.
    nearby = (await call(api, "GET", path(other, "forecast"), other.owner_keypair)).json()
    most = max(s["production_wh"] for s in nearby["steps"])
    assert step["production_wh"] > most > 0


async def test_skill_and_advice_are_that_households(api: OracleWorld) -> None:
    home = await api.member()
    skill = (await call(api, "GET", path(home, "skill"), home.owner_keypair)).json()
    assert (skill["household"], skill["homes"]) == (str(home.address), 0)
    assert all(h["mae_wh"] is None for h in skill["horizons"])
    answer = await call(api, "GET", path(home, "advice"), home.owner_keypair)
    assert (answer.status_code, answer.json()["reason"]) == (404, "NoForecastYet")
    await api.market.mint(home, 5_000)
    await forecast_for(api, home)
    advice = (await call(api, "GET", path(home, "advice"), home.owner_keypair)).json()
    # No Gemini key: the rule-based advisor, which finds the 5 kWh held and the sun to come.
    assert (advice["household"], advice["advisor"], advice["fallback_reason"]) == (
        str(home.address),
        "rules",
        "no_key",
    )
    assert advice["action"] == "sell"
    assert advice["sell"]["offer_wh"] > 0
    assert advice["explanation_sw"]


async def test_the_market_skill_is_for_its_households_installers_and_the_operator(
    api: OracleWorld,
) -> None:
    home = await api.member()
    where = "/api/v1/forecast/skill"
    for by, headers in [
        (home.owner_keypair, None),
        (api.market.installer, None),
        (None, as_operator()),
    ]:
        answer = await call(api, "GET", where, by, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["household"] is None
    answer = await call(api, "GET", where, Keypair())
    assert (answer.status_code, answer.json()["reason"]) == (403, "NotInThisMarket")
    answer = await call(api, "GET", where)
    assert (answer.status_code, answer.json()["reason"]) == (401, "NotSignedIn")


async def test_without_the_forecast_service_or_advisor_their_routes_say_so(
    api: OracleWorld,
) -> None:
    home = await api.member()
    api.services.forecast = None
    api.services.advisor = None
    for route, reason in [
        ("forecast", "ForecastUnavailable"),
        ("skill", "ForecastUnavailable"),
        ("advice", "AdviceUnavailable"),
    ]:
        answer = await call(api, "GET", path(home, route), home.owner_keypair)
        assert (answer.status_code, answer.json()["reason"]) == (503, reason)
