"""The operator's pages in a real browser, with data: trades by state beside the money that
needs a person, the market's meters (the silent one, readings refused at the door and by the
chain), the market's settings as the chain holds them, and the forecasts' skill; in English
and Swahili, photographed at a phone's and a laptop's size, passing axe-core."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import insert

from nishati_client.market import MarketUpdate
from nishati_dev.sandbox import set_time
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.storage.schema import forecast_skill, trades
from nishati_oracle.trading.ledger import TradeState
from tests.operators.rows import trade_row
from tests.web.browser import check_page, choose_language, watched_context
from tests.web.conftest import Site

HEADINGS = {
    "en": {
        "/operator": "Operator",
        "/operator/meters": "Meters",
        "/operator/market": "Market",
        "/operator/forecast": "Forecast skill",
    },
    "sw": {
        "/operator": "Msimamizi",
        "/operator/meters": "Mita",
        "/operator/market": "Soko",
        "/operator/forecast": "Usahihi wa utabiri",
    },
}
TEXTS = {
    "en": {"silent": "No reading for more than", "unlisted": "Installers cannot be listed"},
    "sw": {"silent": "Bila kipimo kwa zaidi ya", "unlisted": "Mafundi hawawezi kuorodheshwa"},
}


@pytest.fixture
def site_forecast() -> ForecastSettings:
    """Forecasts on: the skill page reads the market's skill."""
    return ForecastSettings(enabled=True)


async def a_market_with_data(site: Site) -> None:
    """Two meters, one silent for 90 minutes; a forged reading refused at the door; one
    reading the chain refused for good and one it will be asked again; trades in three states;
    two homes' forecast skill at both horizons."""
    now = int(time.time())
    await site.read(now - 5_400, 400, 20)
    neighbour = await site.world.market.register(custodial=True)
    set_time(site.world.market.h, now - 60)
    await site.world.elapse(0)
    answer = await site.world.post(neighbour.meter.read(now - 60, 300, 0))
    assert answer.json()["accepted"] == 1, answer.text
    forged = site.member.meter.read(now - 30, 1, 0)
    wrong = {"message": forged.message.hex(), "signature": "00" * 64, "meter": str(forged.meter)}
    refused = await site.world.http.post(READINGS_PATH, json={"readings": [wrong]})
    assert refused.status_code == 422, refused.text
    store = site.world.services.store
    fence = site.world.services.attester.lease.fence
    assert fence is not None
    await store.close_readings(fence, str(site.member.meter.public_key), "MeterReplaced", now)
    await store.note_refused(fence, str(neighbour.meter.public_key), 1, "MintCeilingReached")
    world = site.world
    await world.market.h.client.market_update(
        payer=world.market.h.payer,
        admin=world.market.admin,
        market=world.market.address,
        update=MarketUpdate(max_export_watts=7_500),
    )
    rows = [trade_row(TradeState.payout_confirmed, now - 3_600 + i, 500 + i) for i in range(3)]
    rows += [
        trade_row(TradeState.stk_sent, now - 120, 1_000),
        trade_row(TradeState.payout_failed, now - 600, 750),
    ]
    skill = [
        {
            "household": household,
            "horizon_secs": horizon,
            "steps": 40,
            "abs_error_wh": 40 * error,
            "reference_abs_error_wh": 40 * 100,
            "updated_at": now,
        }
        for household, error in ((site.household, 60), (str(neighbour.address), 80))
        for horizon in (3_600, 86_400)
    ]
    async with store.engine.begin() as conn:
        await conn.execute(insert(trades), rows)
        await conn.execute(insert(forecast_skill), skill)


@pytest.mark.parametrize("lang", ["en", "sw"])
@pytest.mark.parametrize("viewport", ["phone", "laptop"])
async def test_the_operator_pages_show_the_market(
    browser: Browser, site: Site, lang: str, viewport: str
) -> None:
    await a_market_with_data(site)
    context, seen = await watched_context(browser, site.url, viewport)
    await choose_language(context, lang)
    await site.sign_in_operator(context)
    # LiteSVM lists no accounts: the installers' page says so.
    seen.expect_failure("/api/v1/operator/installers", 503)
    page = await context.new_page()

    await page.goto("/operator")
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang]["/operator"])
    await expect(page.get_by_test_id("state-payout_confirmed")).to_have_text("3")
    await expect(page.get_by_test_id("state-stk_sent")).to_have_text("1")
    await expect(page.get_by_test_id("attention").locator("li.card")).to_have_count(1)
    await page.get_by_test_id("trades-by-state").locator("summary").first.click()
    await check_page(page, f"{lang}-operator-trades", viewport)

    await page.goto("/operator/meters")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        HEADINGS[lang]["/operator/meters"]
    )
    await expect(page.get_by_test_id("meters-seen")).to_have_text("2")
    await expect(page.get_by_test_id("meters-silent")).to_have_text("1")
    await expect(page.get_by_text(TEXTS[lang]["silent"])).to_be_visible()
    await expect(page.get_by_test_id("rejected")).to_contain_text("InvalidSignature")
    chain = page.get_by_test_id("chain-refused").locator("li")
    await expect(chain).to_have_count(2)
    await expect(chain.filter(has_text="MeterReplaced")).to_be_visible()
    await expect(chain.filter(has_text="MintCeilingReached")).to_be_visible()
    await check_page(page, f"{lang}-operator-meters", viewport)

    await page.goto("/operator/market")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        HEADINGS[lang]["/operator/market"]
    )
    # The market's export cap, changed on chain a moment ago.
    await expect(page.get_by_test_id("market-settings")).to_contain_text("7.5 kW")
    await expect(page.get_by_text(TEXTS[lang]["unlisted"])).to_be_visible()
    await check_page(page, f"{lang}-operator-market", viewport)

    await page.goto("/operator/forecast")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        HEADINGS[lang]["/operator/forecast"]
    )
    await expect(page.get_by_test_id("homes-scored")).to_have_text("2")
    # (60 + 80) / 2 Wh against persistence's 100 Wh: 30 % better, at both horizons.
    await expect(page.get_by_text("30 %")).to_have_count(2)
    await check_page(page, f"{lang}-operator-forecast", viewport)
    await context.close()
    assert seen.problems() == []
