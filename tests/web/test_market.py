"""The market in the browser, over a local JSON-RPC validator (whose account listing the market
page needs), the oracle and the Daraja simulator as real processes, each household signed in
with the SMS simulator's code: a buyer buys 0.5 kWh, the simulator pays, and the page follows
the trade until it is settled; a seller creates an offer and cancels it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, expect
from pydantic import SecretStr
from solders.keypair import Keypair

from nishati_client.config import ClientSettings
from nishati_dev.localday import as_environment, enrol, household, oracle_database
from nishati_dev.processes import SmsSimService
from nishati_dev.sandbox import Member
from nishati_dev.sms_sim import TEST_API_KEY
from nishati_oracle.core.settings import AuthSettings, HttpSettings, Sms, SmsSettings
from tests.accounts.conftest import AUTH_SECRET, CODE, OPERATOR, OPERATOR_PASSWORD
from tests.harness.oracle import PHONE_SALT
from tests.harness.trading import TradingWorld, trading_world
from tests.web.browser import Watched, built, check_page, choose_language, watched_context

pytestmark = pytest.mark.rpc

# The Daraja simulator pays a phone ending in 00.
BUYER_PHONE = "254711223300"


@pytest.fixture(scope="module")
def market_sms(tmp_path_factory: pytest.TempPathFactory) -> SmsSimService:
    sim = SmsSimService(tmp_path_factory.mktemp("sms") / "sms-sim.log")
    sim.start()
    return sim


@pytest.fixture(scope="module")
async def market(
    rpc_url: str,
    rpc_payer: Keypair,
    settings: ClientSettings,
    tmp_path_factory: pytest.TempPathFactory,
    market_sms: SmsSimService,
) -> AsyncIterator[TradingWorld]:
    changes = as_environment(HttpSettings(web_dir=built()))
    changes |= as_environment(
        SmsSettings(provider=Sms.simulator, url=market_sms.url, api_key=SecretStr(TEST_API_KEY))
    )
    changes |= as_environment(AuthSettings(secret=SecretStr(AUTH_SECRET)))
    try:
        async with trading_world(
            rpc_url,
            rpc_payer,
            settings,
            tmp_path_factory.mktemp("web-market"),
            oracle_env_changes=changes,
        ) as world:
            yield world
    finally:
        market_sms.stop()


async def code_for(sms: SmsSimService, phone: str) -> str:
    async with httpx.AsyncClient(base_url=sms.url) as sim:
        for _ in range(200):
            sent = (await sim.get("/messages", params={"to": "+" + phone})).json()
            if sent:
                found = CODE.search(sent[-1]["message"])
                assert found is not None, sent[-1]
                return found.group(1)
            await asyncio.sleep(0.05)
    raise AssertionError(f"no code for {phone}")


async def signed_in(
    browser: Browser, market: TradingWorld, sms: SmsSimService, phone: str, lang: str
) -> tuple[BrowserContext, Watched, Member]:
    """A context of a new custodial household with ``phone``, signed in with its code."""
    member = await household(market.market, phone, PHONE_SALT)
    await enrol(market.http, member, phone)
    context, seen = await watched_context(browser, market.oracle.url, "phone")
    await choose_language(context, lang)
    asked = await context.request.post(
        f"{market.oracle.url}/api/v1/auth/code", data={"phone": phone}
    )
    assert asked.status == 202
    answer = await context.request.post(
        f"{market.oracle.url}/api/v1/auth/session",
        data={"phone": phone, "code": await code_for(sms, phone)},
    )
    assert answer.status == 200, await answer.text()
    # This oracle runs no forecasts or advisor: their empty states.
    for route in ("forecast", "advice"):
        seen.expect_failure(f"/api/v1/households/{member.address}/{route}", 503)
    return context, seen, member


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_household_buys_half_a_kwh_and_sees_it_settled(
    browser: Browser, market: TradingWorld, market_sms: SmsSimService, lang: str
) -> None:
    phone = BUYER_PHONE[:-4] + ("10" if lang == "sw" else "20") + "00"
    context, seen, _ = await signed_in(browser, market, market_sms, phone, lang)
    page = await context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/payments/" in r.url else None)
    await page.goto("/market")
    offer = page.locator("li.card").filter(has=page.locator("form.buy")).first
    await expect(offer).to_be_visible()
    await check_page(page, f"{lang}-market-offers", "phone")
    await offer.get_by_role("spinbutton").fill("0.5")
    await offer.get_by_role("textbox").fill(phone)
    await offer.get_by_role("button").click()
    settled = "Done: the energy is yours." if lang == "en" else "Imekamilika: nishati ni yako."
    await expect(page.get_by_text(settled)).to_be_visible(timeout=60_000)
    await check_page(page, f"{lang}-market-settled", "phone")
    # The progress came from the trade's event stream, opened once (no fallback to polling).
    assert [url.rsplit("/", 1)[-1] for url in asked] == ["events"], asked
    assert seen.problems() == []
    await context.close()


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_seller_creates_an_offer_and_cancels_it(
    browser: Browser, market: TradingWorld, market_sms: SmsSimService, lang: str
) -> None:
    phone = BUYER_PHONE[:-4] + ("30" if lang == "sw" else "40") + "00"
    context, seen, seller = await signed_in(browser, market, market_sms, phone, lang)
    await market.market.mint(seller, 3_000)
    page = await context.new_page()
    await page.goto("/sell")
    none_open = "You have no open offers." if lang == "en" else "Huna matoleo yaliyo wazi."
    await expect(page.get_by_text(none_open)).to_be_visible()
    await page.locator("#sell-kwh").fill("2")
    await page.locator("#sell-price").fill("30")
    offer_form = page.locator("form.card", has=page.locator("#sell-kwh"))
    await offer_form.locator("button[type=submit]").click()
    own = page.locator("li.card")
    await expect(own).to_have_count(1)
    await expect(own).to_contain_text("2 kWh")
    await expect(own).to_contain_text("KES 30.00")
    assert await market.market.balance(seller) == 1_000
    await check_page(page, f"{lang}-sell-offer", "phone")
    await own.get_by_role("button").click()
    await expect(page.get_by_text(none_open)).to_be_visible()
    assert await market.market.balance(seller) == 3_000
    assert seen.problems() == []
    await context.close()


@pytest.fixture(scope="module")
def operator(market: TradingWorld) -> str:
    """The operator amina, added once with the oracle's command on its database."""
    env = {
        **os.environ,
        "NISHATI_DATABASE_URL": oracle_database(market.database.parent),
        "NISHATI_AUTH_SECRET": AUTH_SECRET,
    }
    subprocess.run(
        [sys.executable, "-m", "nishati_oracle", "operator", "add", OPERATOR, "--password-stdin"],
        input=OPERATOR_PASSWORD + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return OPERATOR


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_an_operator_retries_a_failed_payout(
    browser: Browser, market: TradingWorld, operator: str, lang: str
) -> None:
    seller_phone = market.phone("01")  # every B2C to it fails: 2001
    _, offer = await market.seller_with_offer(seller_phone)
    buyer_phone = market.phone()
    await market.buyer(buyer_phone)
    bought = await market.buy(buyer_phone, 500, offer)
    assert bought.status_code == 201, bought.text
    trade_id = bought.json()["trade_id"]
    assert (await market.final(trade_id, within_secs=90))["state"] == "payout_failed"
    context, seen = await watched_context(browser, market.oracle.url, "laptop")
    await choose_language(context, lang)
    signed_in = await context.request.post(
        f"{market.oracle.url}/api/v1/auth/operator",
        data={"username": operator, "password": OPERATOR_PASSWORD},
    )
    assert signed_in.status == 200, await signed_in.text()
    page = await context.new_page()
    await page.goto("/")
    line = page.get_by_test_id("attention").locator("li.card").filter(has_text=trade_id[:8])
    await expect(line).to_be_visible()
    await check_page(page, f"{lang}-operator-attention", "laptop")
    # The seller's account is fixed; the operator pays once more.
    rule = {"api": "b2c", "phone": seller_phone, "result_code": 0, "count": 1}
    await market.sim_control("/simulator/scenario", rule)
    await line.get_by_role("textbox").fill("seller's M-Pesa account fixed")
    await line.get_by_role("button").click()
    await expect(line).to_have_count(0)
    payment = await market.final(trade_id, within_secs=60)
    assert payment["state"] == "payout_confirmed", payment["history"]
    actions = await market.operator("GET", "/api/v1/operator/attention")
    assert trade_id not in [t["trade_id"] for t in actions.json()]
    # A JSON-RPC chain lists accounts: the market's page shows its approved installer.
    await page.goto("/operator/market")
    installer = str(market.market.installer.pubkey())
    await expect(page.locator(f"code[title='{installer}']")).to_be_visible()
    await check_page(page, f"{lang}-operator-market-installers", "laptop")
    assert seen.problems() == []
    await context.close()
