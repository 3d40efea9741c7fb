"""A household's dashboard and sell page in the browser, in English and Swahili: where the
day's solar went (sold to neighbours, to the grid) after a day of readings and a settled sale,
and auto-sell's limits refused with the oracle's reason, saved, remembered after a reload and
turned off."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser, Request, expect
from sqlalchemy import insert

from nishati_oracle.storage.schema import trade_history, trades
from nishati_oracle.trading.ledger import TradeState
from tests.harness.oracle import new_postgres_database
from tests.households.test_household_api import trade_row
from tests.web.browser import check_page, choose_language, watched_context
from tests.web.conftest import Site
from tests.web.test_app import a_day_of_readings, signed_in_household

TEXT = {
    "en": {
        "title": "Where your solar went",
        "sold": "Sold to neighbours",
        "home": "Used at home: not measured.",
        "off": "Auto-sell is off.",
        "on": "Auto-sell is on.",
        "floor": "Lowest price (KES per kWh)",
        "share": "Share of the surplus to offer (%)",
        "most": "Most per offer (kWh)",
        "save": "Save and turn on",
        "stop": "Turn off",
        "saved": "Saved.",
        "out_of_bounds": "The lowest price is outside the market's prices.",
    },
    "sw": {
        "title": "Jua lako lilienda wapi",
        "sold": "Iliyouzwa kwa majirani",
        "home": "Iliyotumika nyumbani: haipimwi.",
        "off": "Uuzaji wa kiotomatiki umezimwa.",
        "on": "Uuzaji wa kiotomatiki umewashwa.",
        "floor": "Bei ya chini kabisa (KES kwa kWh)",
        "share": "Sehemu ya ziada ya kutoa (%)",
        "most": "Kiwango cha juu kwa toleo (kWh)",
        "save": "Hifadhi na uwashe",
        "stop": "Zima",
        "saved": "Imehifadhiwa.",
        "out_of_bounds": "Bei ya chini kabisa iko nje ya bei za soko.",
    },
}
SOLD_WH = 500


@pytest.fixture
def site_database_url(postgres_base: str) -> str:
    """PostgreSQL, the store replicas share. On SQLite, in a long run of the whole suite, the
    solar route twice missed the settled sale this module inserts, though reads by hand just
    before and after found it; docs/storage.md ("SQLite: an open question") has what is known."""
    return new_postgres_database(postgres_base)


async def a_settled_sale(site: Site, wh: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sale of the household's to a neighbour, settled a minute ago. The payment worker's
    rounds are held: they would try to pay out the hand-made trade, whose phones are no one's."""
    trading = site.world.services.trading
    assert trading is not None

    async def held() -> None:
        return None

    monkeypatch.setattr(trading.worker, "run_rest", held)
    neighbour = await site.world.member()
    row = trade_row(
        buyer=str(neighbour.address),
        seller=site.household,
        state=TradeState.settled,
        wh=wh,
        total_cents=wh * 25 // 10,
        payout_kes=wh * 25 // 1_000,
    )
    now = time.time()
    row["created_at"] = row["updated_at"] = now - 120
    history = {"trade_id": row["id"], "at": now - 60, "state": "settled", "detail": None}
    async with site.world.services.store.engine.begin() as conn:
        await conn.execute(insert(trades), [row])
        await conn.execute(insert(trade_history), [history])


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_the_dashboard_shows_where_the_days_solar_went(
    browser: Browser, site: Site, lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, _ = await a_day_of_readings(site)
    await a_settled_sale(site, SOLD_WH, monkeypatch)
    context, seen = await watched_context(browser, site.url, "phone")
    await choose_language(context, lang)
    await signed_in_household(context, site, seen)
    page = await context.new_page()
    await page.goto("/")
    await expect(page.get_by_role("heading", name=TEXT[lang]["title"])).to_be_visible()
    await expect(page.get_by_test_id("solar-exported")).to_have_text(f"{exported / 1000:g} kWh")
    await expect(page.get_by_test_id("solar-sold")).to_contain_text(f"{SOLD_WH} Wh")
    await expect(page.get_by_test_id("solar-grid")).to_have_text(
        f"{(exported - SOLD_WH) / 1000:g} kWh"
    )
    # The bar says in words what its colours show.
    bar = page.get_by_role("img", name=f"{exported / 1000:g} kWh")
    await expect(bar).to_have_attribute("aria-label", f"{bar_text(lang, exported)}")
    await expect(page.get_by_text(TEXT[lang]["sold"])).to_be_visible()
    await expect(page.get_by_text(TEXT[lang]["home"])).to_be_visible()
    # The sold part is its share of the bar.
    widths = await page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=solar-bar] span')]
              .map((s) => s.getBoundingClientRect().width)"""
    )
    assert widths[0] / sum(widths) == pytest.approx(SOLD_WH / exported, abs=0.01)
    await check_page(page, f"{lang}-dashboard-solar", "phone")
    # A day long ago: nothing exported, nothing sold.
    await page.get_by_label("Day" if lang == "en" else "Siku").fill("2026-01-01")
    await expect(page.get_by_test_id("solar-bar")).to_have_count(0)
    assert seen.problems() == []
    await context.close()


def bar_text(lang: str, exported: int) -> str:
    sold, grid = f"{SOLD_WH} Wh", f"{(exported - SOLD_WH) / 1000:g} kWh"
    if lang == "en":
        return f"Of {exported / 1000:g} kWh exported: {sold} sold to neighbours, {grid} to the grid"
    return (
        f"Kati ya {exported / 1000:g} kWh iliyotumwa nje: {sold} iliuzwa kwa majirani, "
        f"{grid} kwa gridi"
    )


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_auto_sell_is_refused_saved_remembered_and_turned_off(
    browser: Browser, site: Site, lang: str
) -> None:
    text = TEXT[lang]
    auto_sell = f"/api/v1/households/{site.household}/auto-sell"
    context, seen = await watched_context(browser, site.url, "laptop")
    await choose_language(context, lang)
    await signed_in_household(context, site, seen)
    seen.expect_failure(auto_sell, 422)
    page = await context.new_page()
    changes: list[Request] = []
    page.on("request", lambda r: changes.append(r) if r.method != "GET" else None)
    await page.goto("/sell")
    state = page.get_by_test_id("auto-sell-state")
    await expect(state).to_have_text(text["off"])
    # A floor above the market's highest price (40 KES): the oracle's reason and its rule.
    await page.get_by_label(text["floor"]).fill("45")
    await page.get_by_role("button", name=text["save"]).click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text(text["out_of_bounds"])
    await expect(alert).to_contain_text("1,500 to 4,000 KES cents per kWh")
    await expect(state).to_have_text(text["off"])
    # Within the bounds: saved, on, and so after a reload.
    await page.get_by_label(text["floor"]).fill("22.5")
    await page.get_by_label(text["share"]).fill("60")
    await page.get_by_label(text["most"]).fill("2.5")
    await page.get_by_role("button", name=text["save"]).click()
    await expect(page.get_by_role("status").filter(has_text=text["saved"])).to_be_visible()
    await expect(state).to_have_text(text["on"])
    await page.reload()
    await expect(state).to_have_text(text["on"])
    await expect(page.get_by_label(text["floor"])).to_have_value("22.5")
    await expect(page.get_by_label(text["share"])).to_have_value("60")
    await expect(page.get_by_label(text["most"])).to_have_value("2.5")
    stored = await site.world.services.auto_sell.store.limits(site.household)
    assert stored is not None
    assert (stored.floor_price_cents_per_kwh, stored.share_percent, stored.max_wh_per_offer) == (
        2_250,
        60,
        2_500,
    )
    await check_page(page, f"{lang}-sell-auto", "laptop")
    # Turned off, and off after a reload.
    await page.get_by_role("button", name=text["stop"]).click()
    await expect(state).to_have_text(text["off"])
    await page.reload()
    await expect(state).to_have_text(text["off"])
    assert await site.world.services.auto_sell.store.limits(site.household) is None
    # Every change carried the session's CSRF token.
    csrf = {c["name"]: c["value"] for c in await context.cookies()}["nishati_csrf"]
    assert [r.method for r in changes] == ["PUT", "PUT", "DELETE"]
    assert [await r.header_value("x-csrf-token") for r in changes] == [csrf] * 3
    assert seen.problems() == []
    await context.close()
