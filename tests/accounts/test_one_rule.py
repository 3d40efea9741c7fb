"""Sessions and API keys are further ways to the same caller the signed requests and the
operator's token make: a household signed in with its phone is its owner on the household
routes, a change needs its CSRF token, another household's session and an API key are refused;
the owner's signed request sees its own trades."""

from __future__ import annotations

import time

import pytest

from nishati_client.signing import SignedRequests
from tests.accounts.conftest import OPERATOR_TOKEN, SignInWorld

SYSTEM = {
    "latitude": -1.29,
    "longitude": 36.82,
    "capacity_wp": 3_000,
    "tilt_deg": 15,
    "azimuth_deg": 0,
    "inverter_limit_w": 3_000,
}


async def test_a_signed_in_household_is_its_owner_on_the_household_routes(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member, phone = await signin.household()
    _, neighbour_phone = await signin.household()
    path = f"/api/v1/households/{member.address}/pv-system"
    mine, neighbour = signin.browser(), signin.browser()
    await signin.sign_in(mine, phone)
    await signin.sign_in(neighbour, neighbour_phone)

    assert (await mine.get(path)).status_code == 200
    without = await mine.put(path, json=SYSTEM)
    assert (without.status_code, without.json()["reason"]) == (403, "CsrfTokenMissing")
    csrf = {"X-CSRF-Token": mine.cookies["nishati_csrf"]}
    changed = await mine.put(path, json=SYSTEM, headers=csrf)
    assert changed.status_code == 200, changed.text
    assert changed.json()["capacity_wp"] == 3_000

    refused = await neighbour.get(path)
    assert (refused.status_code, refused.json()["reason"]) == (403, "NotYourHousehold")
    theirs = {"X-CSRF-Token": neighbour.cookies["nishati_csrf"]}
    overwrite = await neighbour.put(path, json={**SYSTEM, "capacity_wp": 1}, headers=theirs)
    assert (overwrite.status_code, overwrite.json()["reason"]) == (403, "NotYourHousehold")

    operator = signin.browser()
    await signin.operator_session(operator)
    assert (await operator.get(path)).json()["capacity_wp"] == 3_000
    issued = await signin.browser().post(
        "/api/v1/operator/api-keys",
        json={"name": "integration", "scopes": ["payments:read", "trades:write"]},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    key = {"Authorization": f"Bearer {issued.json()['key']}"}
    as_key = await signin.browser().get(path, headers=key)
    assert (as_key.status_code, as_key.json()["reason"]) == (403, "NotYourHousehold")
    market_wide = await signin.browser().get("/api/v1/forecast/skill", headers=key)
    assert (market_wide.status_code, market_wide.json()["reason"]) == (403, "NotInThisMarket")

    nobody = await signin.browser().get(path)
    assert (nobody.status_code, nobody.json()["reason"]) == (401, "NotSignedIn")
    sessions = signin.oracle.services.accounts.sessions
    later = time.time() + signin.oracle.settings.auth.session_secs + 1
    monkeypatch.setattr(sessions, "clock", lambda: later)
    stale = await mine.get(path)
    assert (stale.status_code, stale.json()["reason"]) == (401, "NotSignedIn")


async def test_a_households_owner_key_sees_its_trades_and_no_others(signin: SignInWorld) -> None:
    buyer, _ = await signin.household()
    seller, _ = await signin.household()
    outsider, _ = await signin.household()
    trade = await signin.trade(buyer, seller)
    path = f"/api/v1/payments/{trade.id}"
    client = signin.browser()
    for member, status in ((buyer, 200), (seller, 200), (outsider, 404)):
        answer = await client.get(path, auth=SignedRequests(member.owner_keypair))
        assert answer.status_code == status, answer.text
    me = await client.get("/api/v1/auth/me", auth=SignedRequests(buyer.owner_keypair))
    assert me.json() == {"role": "key", "key": str(buyer.owner)}
