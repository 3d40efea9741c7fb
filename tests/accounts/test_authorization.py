"""A trade's payment and its STK status are its buyer's, its seller's, the operators' and
those of API keys with payments:read; orders are placed by a household for its own phone, by an
operator and by API keys with trades:write. Each route tried as each of them, as another
household, as nobody, with a session that is over and with keys of the wrong scope or revoked."""

from __future__ import annotations

import time

import httpx
import pytest
from solders.keypair import Keypair

from tests.accounts.conftest import OPERATOR_TOKEN, SignInWorld


def routes(trade_id: str, checkout: str) -> list[str]:
    return [
        f"/api/v1/payments/{trade_id}",
        f"/api/payment/status/{trade_id}",
        f"/api/v1/stk/{checkout}",
        f"/api/stk/status/{checkout}",
    ]


async def answers(client: httpx.AsyncClient, paths: list[str], **headers: str) -> list[int]:
    return [(await client.get(path, headers=headers)).status_code for path in paths]


async def test_a_trade_is_its_parties_and_the_operators(signin: SignInWorld) -> None:
    buyer, buyer_phone = await signin.household()
    seller, seller_phone = await signin.household()
    _, other_phone = await signin.household()
    trade = await signin.trade(buyer, seller)
    assert trade.checkout_request_id is not None
    paths = routes(trade.id, trade.checkout_request_id)
    browsers = {}
    for name, phone in (("buyer", buyer_phone), ("seller", seller_phone), ("other", other_phone)):
        browsers[name] = signin.browser()
        await signin.sign_in(browsers[name], phone)
    operator = signin.browser()
    await signin.operator_session(operator)

    assert await answers(browsers["buyer"], paths) == [200] * 4
    assert await answers(browsers["seller"], paths) == [200] * 4
    assert await answers(operator, paths) == [200] * 4
    token = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    assert await answers(signin.browser(), paths, **token) == [200] * 4
    payment = (await browsers["buyer"].get(paths[0])).json()
    assert (payment["trade_id"], payment["wh"]) == (trade.id, 500)

    # Another household: the same answer as for a trade that does not exist.
    refused = [await browsers["other"].get(path) for path in paths]
    assert [(a.status_code, a.json()["reason"]) for a in refused] == [(404, "UnknownTrade")] * 4
    missing = await browsers["other"].get("/api/v1/payments/no-such-trade")
    assert missing.json() == refused[0].json()

    # Nobody.
    nobody = [await signin.browser().get(path) for path in paths]
    assert [(a.status_code, a.json()["reason"]) for a in nobody] == [(401, "NotSignedIn")] * 4
    assert nobody[0].headers["WWW-Authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer not-the-operator-token"}
    guessed = [await signin.browser().get(path, headers=wrong) for path in paths]
    assert [(a.status_code, a.json()["reason"]) for a in guessed] == [
        (401, "OperatorTokenRefused")
    ] * 4


async def test_a_session_that_is_over_sees_nothing(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer, phone = await signin.household()
    seller, _ = await signin.household()
    trade = await signin.trade(buyer, seller)
    assert trade.checkout_request_id is not None
    paths = routes(trade.id, trade.checkout_request_id)
    browser = signin.browser()
    await signin.sign_in(browser, phone)
    assert await answers(browser, paths) == [200] * 4
    sessions = signin.oracle.services.accounts.sessions
    later = time.time() + signin.oracle.settings.auth.session_secs + 1
    monkeypatch.setattr(sessions, "clock", lambda: later)
    stale = [await browser.get(path) for path in paths]
    assert [(a.status_code, a.json()["reason"]) for a in stale] == [(401, "NotSignedIn")] * 4


async def test_api_keys_see_payments_with_payments_read_only(signin: SignInWorld) -> None:
    buyer, _ = await signin.household()
    seller, _ = await signin.household()
    trade = await signin.trade(buyer, seller)
    assert trade.checkout_request_id is not None
    paths = routes(trade.id, trade.checkout_request_id)
    operator = signin.browser()
    await signin.operator_session(operator)
    csrf = {"X-CSRF-Token": operator.cookies["nishati_csrf"]}

    async def issued(*scopes: str) -> dict[str, str]:
        answer = await operator.post(
            "/api/v1/operator/api-keys",
            json={"name": "reconciler", "scopes": list(scopes)},
            headers=csrf,
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, str] = answer.json()
        assert body["key"].startswith("nsk_")
        return body

    reader = await issued("payments:read")
    writer = await issued("trades:write")
    client = signin.browser()
    bearer = {"Authorization": f"Bearer {reader['key']}"}
    assert await answers(client, paths, **bearer) == [200] * 4
    me = (await client.get("/api/v1/auth/me", headers=bearer)).json()
    assert me == {"role": "integration", "key_id": reader["id"], "scopes": ["payments:read"]}
    unscoped = [
        await client.get(path, headers={"Authorization": f"Bearer {writer['key']}"})
        for path in paths
    ]
    assert [(a.status_code, a.json()["reason"]) for a in unscoped] == [(404, "UnknownTrade")] * 4
    # A key is not an operator: it issues no keys and works no operator routes.
    issuing = await client.post(
        "/api/v1/operator/api-keys", json={"name": "x", "scopes": ["payments:read"]}, headers=bearer
    )
    assert (issuing.status_code, issuing.json()["reason"]) == (403, "OperatorsOnly")
    attention = await client.get("/api/v1/operator/attention", headers=bearer)
    assert (attention.status_code, attention.json()["reason"]) == (403, "OperatorForbidden")

    # Listed without the keys themselves; the database holds neither.
    listed = (await operator.get("/api/v1/operator/api-keys")).json()
    assert [k["id"] for k in listed] == [reader["id"], writer["id"]]
    assert all("key" not in k for k in listed)
    assert listed[0]["last_used_at"] is not None
    dump = signin.database.read_bytes()
    assert reader["key"].encode() not in dump
    # The secret is what follows the id (a secret may itself hold "_").
    secret = reader["key"].removeprefix("nsk_").partition("_")[2]
    assert len(secret) >= 40
    assert secret.encode() not in dump

    # Revoked, refused; an altered key, refused.
    revoked = await operator.delete(f"/api/v1/operator/api-keys/{reader['id']}", headers=csrf)
    assert revoked.status_code == 204
    after = [await client.get(path, headers=bearer) for path in paths]
    assert [(a.status_code, a.json()["reason"]) for a in after] == [(401, "ApiKeyRefused")] * 4
    last = writer["key"][-1]
    altered = {"Authorization": f"Bearer {writer['key'][:-1]}{'y' if last == 'x' else 'x'}"}
    assert await answers(client, paths, **altered) == [401] * 4
    unknown = await operator.delete("/api/v1/operator/api-keys/0000000000000000", headers=csrf)
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "UnknownApiKey")


async def test_only_operators_manage_api_keys(signin: SignInWorld) -> None:
    _, phone = await signin.household()
    household = signin.browser()
    await signin.sign_in(household, phone)
    csrf = {"X-CSRF-Token": household.cookies["nishati_csrf"]}
    body = {"name": "mine", "scopes": ["payments:read"]}
    issuing = await household.post("/api/v1/operator/api-keys", json=body, headers=csrf)
    assert (issuing.status_code, issuing.json()["reason"]) == (403, "OperatorsOnly")
    nobody = await signin.browser().post("/api/v1/operator/api-keys", json=body)
    assert (nobody.status_code, nobody.json()["reason"]) == (401, "NotSignedIn")
    operator = signin.browser()
    await signin.operator_session(operator)
    # An operator's session issues keys only with its CSRF token.
    without = await operator.post("/api/v1/operator/api-keys", json=body)
    assert (without.status_code, without.json()["reason"]) == (403, "CsrfTokenMissing")
    unknown_scope = await operator.post(
        "/api/v1/operator/api-keys",
        json={"name": "x", "scopes": ["everything"]},
        headers={"X-CSRF-Token": operator.cookies["nishati_csrf"]},
    )
    assert unknown_scope.status_code == 400
    # The operator token issues keys too (a script's way), without CSRF: no cookie is involved.
    scripted = await signin.browser().post(
        "/api/v1/operator/api-keys",
        json=body,
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert scripted.status_code == 201
    assert scripted.json()["created_by"] == "operator"


async def test_orders_are_placed_by_households_for_their_own_phone_and_by_keys_with_trades_write(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, phone = await signin.household()
    _, other_phone = await signin.household()
    # An offer no one holds, a price out of the market's bounds: an order the caller may place
    # gets as far as the desk's refusal.
    offer = str(Keypair().pubkey())
    legacy = {"type": "BUY", "amount": 2.5, "price": 1_000.0, "seller_phone": "0700000000"}

    async def placed(
        client: httpx.AsyncClient, phone: str, **headers: str
    ) -> list[tuple[int, str]]:
        answers = [
            await client.post(
                "/api/v1/trades",
                json={"offer": offer, "wh": 2_000, "phone": phone},
                headers=headers,
            ),
            await client.post(
                "/api/execute_trade", json={**legacy, "phone": phone}, headers=headers
            ),
        ]
        return [(a.status_code, a.json()["reason"]) for a in answers]

    allowed = [(404, "UnknownOffer"), (422, "PriceOutOfBounds")]
    household = signin.browser()
    await signin.sign_in(household, phone)
    csrf = {"X-CSRF-Token": household.cookies["nishati_csrf"]}
    assert await placed(household, phone, **csrf) == allowed
    assert await placed(household, other_phone, **csrf) == [(403, "NotYourPhone")] * 2
    assert await placed(household, phone) == [(403, "CsrfTokenMissing")] * 2

    operator = signin.browser()
    await signin.operator_session(operator)
    issued = {}
    for scope in ("payments:read", "trades:write"):
        answer = await operator.post(
            "/api/v1/operator/api-keys",
            json={"name": scope, "scopes": [scope]},
            headers={"X-CSRF-Token": operator.cookies["nishati_csrf"]},
        )
        issued[scope] = {"Authorization": f"Bearer {answer.json()['key']}"}
    integration = signin.browser()
    assert await placed(integration, other_phone, **issued["trades:write"]) == allowed
    assert (
        await placed(integration, phone, **issued["payments:read"]) == [(403, "MissingScope")] * 2
    )
    token = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    assert await placed(signin.browser(), other_phone, **token) == allowed

    # Nobody, and a session that is over.
    assert await placed(signin.browser(), phone) == [(401, "NotSignedIn")] * 2
    sessions = signin.oracle.services.accounts.sessions
    later = time.time() + signin.oracle.settings.auth.session_secs + 1
    monkeypatch.setattr(sessions, "clock", lambda: later)
    assert await placed(household, phone, **csrf) == [(401, "NotSignedIn")] * 2


# The operator's pages' routes (``operators.api``); installers are unlisted on LiteSVM (503).
OPERATOR_PAGES = ["/api/v1/operator/market", "/api/v1/operator/meters", "/api/v1/operator/trades"]
INSTALLERS = "/api/v1/operator/installers"


async def refusals(client: httpx.AsyncClient) -> set[tuple[int, str]]:
    found = [await client.get(path) for path in [*OPERATOR_PAGES, INSTALLERS]]
    return {(a.status_code, a.json()["reason"]) for a in found}


async def test_the_operator_pages_are_the_operators_alone(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, phone = await signin.household()
    household = signin.browser()
    await signin.sign_in(household, phone)
    operator = signin.browser()
    await signin.operator_session(operator)
    assert await answers(operator, OPERATOR_PAGES) == [200] * 3
    assert (await operator.get(INSTALLERS)).json()["reason"] == "InstallersUnlisted"

    assert await refusals(household) == {(403, "OperatorsOnly")}
    assert await refusals(signin.browser()) == {(401, "NotSignedIn")}

    # The operator's session, over: nothing, as for nobody.
    sessions = signin.oracle.services.accounts.sessions
    later = time.time() + signin.oracle.settings.auth.operator_session_secs + 1
    monkeypatch.setattr(sessions, "clock", lambda: later)
    assert await refusals(operator) == {(401, "NotSignedIn")}
