"""The web app in a real browser (Debian's Chromium, headless): it loads, speaks English and
Swahili and keeps the choice, signs a household in with the code the SMS simulator received,
charts the day's readings the meter sent, opens offline with its last data; every page is
photographed at a phone's and a laptop's size, with no console errors and no serious or
critical axe-core violations."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, expect

from nishati_oracle.daraja.credentials import NAIROBI
from nishati_oracle.http.webapp import dashboard_calls
from tests.web.browser import OUTPUT, Watched, check_page, choose_language, watched_context
from tests.web.conftest import Site, start_of_today

ME = "/api/v1/auth/me"
HEADINGS = {
    "en": {
        "/": "My energy",
        "/market": "Buy energy",
        "/sell": "Sell energy",
        "/history": "History",
        "/meter": "Meter health",
        "/operator": "Operator",
        "/signin": "Sign in",
    },
    "sw": {
        "/": "Nishati yangu",
        "/market": "Nunua nishati",
        "/sell": "Uza nishati",
        "/history": "Historia",
        "/meter": "Hali ya mita",
        "/operator": "Msimamizi",
        "/signin": "Ingia",
    },
}
HOUSEHOLD_PAGES = ["/", "/market", "/sell", "/history", "/meter"]
# What the sign-in and the dashboard say, in each language (web/src/i18n.ts).
WORDS = {
    "en": {
        "phone": "Phone number",
        "send": "Send code",
        "sent": "We sent a code to your phone",
        "code": "Code from the SMS",
        "verify": "Sign in",
        "wrong": "That code is not right, or it has expired.",
        "sell": "Sell",
        "create": "Create offer",
        "signOut": "Sign out",
        "export": "Export",
        "import": "Import",
        "day": "Day",
        "noReadings": "No readings for this day yet.",
    },
    "sw": {
        "phone": "Namba ya simu",
        "send": "Tuma msimbo",
        "sent": "Tumetuma msimbo kwenye simu yako",
        "code": "Msimbo kutoka kwa SMS",
        "verify": "Ingia",
        "wrong": "Msimbo huo si sahihi, au muda wake umeisha.",
        "sell": "Uza",
        "create": "Unda toleo",
        "signOut": "Ondoka",
        "export": "Iliyotumwa",
        "import": "Iliyochukuliwa",
        "day": "Siku",
        "noReadings": "Bado hakuna vipimo vya siku hii.",
    },
}


async def signed_in_household(context: BrowserContext, site: Site, seen: Watched) -> None:
    """The browser signed in as the site's household, with the code its phone was sent."""
    await site.sign_in(context)
    expect_unlisted(site, seen)


def expect_unlisted(site: Site, seen: Watched) -> None:
    """No account listing on LiteSVM: the market's offers are unlisted (a clear empty state);
    this oracle runs no forecasts or advisor (their empty states too)."""
    for route in ("offers", "forecast", "advice"):
        seen.expect_failure(f"/api/v1/households/{site.household}/{route}", 503)


async def a_day_of_readings(site: Site) -> tuple[int, int]:
    """Four readings today after the meter's baseline; the day's export and import."""
    start = max(start_of_today(), int(time.time()) - 7_000)
    step = max(1, (int(time.time()) - start) // 6)
    steps = [(0, 0), (600, 30), (900, 0), (250, 120), (0, 400)]
    for i, (exported, imported) in enumerate(steps):
        await site.read(start + (i + 1) * step, exported, imported)
    return sum(e for e, _ in steps), sum(i for _, i in steps)


@pytest.mark.parametrize("lang", ["en", "sw"])
@pytest.mark.parametrize("viewport", ["phone", "laptop"])
async def test_every_page_renders_passes_axe_and_is_photographed(
    browser: Browser, site: Site, lang: str, viewport: str
) -> None:
    await a_day_of_readings(site)
    context, seen = await watched_context(browser, site.url, viewport)
    await choose_language(context, lang)
    await signed_in_household(context, site, seen)
    page = await context.new_page()
    for path in HOUSEHOLD_PAGES:
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang][path])
        await check_page(page, f"{lang}-{path.strip('/') or 'dashboard'}", viewport)
    await context.close()
    assert seen.problems() == []

    # Signed out: the sign-in page, whatever page was asked for.
    context, seen = await watched_context(browser, site.url, viewport)
    await choose_language(context, lang)
    seen.expect_failure(ME, 401)
    page = await context.new_page()
    await page.goto("/history")
    await expect(page).to_have_url(f"{site.url}/signin")
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang]["/signin"])
    await check_page(page, f"{lang}-signin", viewport)
    await context.close()
    assert seen.problems() == []

    # An operator, signed in with a password: the operator's pages.
    context, seen = await watched_context(browser, site.url, viewport)
    await choose_language(context, lang)
    await site.sign_in_operator(context)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(f"{site.url}/operator")
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang]["/operator"])
    await check_page(page, f"{lang}-operator", viewport)
    await context.close()
    assert seen.problems() == []


async def test_swahili_chosen_stays_after_a_reload(browser: Browser, site: Site) -> None:
    context, seen = await watched_context(browser, site.url, "phone")
    seen.expect_failure(ME, 401)
    page = await context.new_page()
    await page.goto("/")
    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_have_text("Sign in")
    await page.get_by_label("Language").select_option("sw")
    await expect(heading).to_have_text("Ingia")
    await expect(page.get_by_text("Namba ya simu")).to_be_visible()
    await page.reload()
    await expect(heading).to_have_text("Ingia")
    assert await page.evaluate("document.documentElement.lang") == "sw"
    await page.get_by_label("Lugha").select_option("en")
    await page.reload()
    await expect(heading).to_have_text("Sign in")
    assert seen.problems() == []
    await context.close()


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_a_household_signs_in_with_the_code_the_sms_brought(
    browser: Browser, site: Site, lang: str
) -> None:
    words = WORDS[lang]
    context, seen = await watched_context(browser, site.url, "phone")
    await choose_language(context, lang)
    seen.expect_failure(ME, 401)
    seen.expect_failure("/api/v1/auth/session", 401)
    expect_unlisted(site, seen)
    page = await context.new_page()
    await page.goto("/")
    await page.get_by_label(words["phone"]).fill(site.phone)
    await page.get_by_role("button", name=words["send"]).click()
    await expect(page.get_by_text(words["sent"])).to_be_visible()
    code = await site.last_code(after=0)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await page.get_by_label(words["code"]).fill(wrong)
    await page.get_by_role("button", name=words["verify"], exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(words["wrong"])
    await page.get_by_label(words["code"]).fill(code)
    await page.get_by_role("button", name=words["verify"], exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang]["/"])
    await expect(page).to_have_url(f"{site.url}/")
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["nishati_session"]["httpOnly"] is True
    assert cookies["nishati_csrf"]["httpOnly"] is False
    # A change made with the session carries the CSRF cookie back as its header: the oracle
    # takes it (the chain then refuses an offer of energy the household does not hold).
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    await page.get_by_role("link", name=words["sell"]).click()
    await page.get_by_role("button", name=words["create"]).click()
    await expect(page.get_by_role("alert")).to_be_visible()
    offers = f"/api/v1/households/{site.household}/offers"
    posted = [r for r in requests if r.method == "POST" and r.url.endswith(offers)]
    assert len(posted) == 1
    assert await posted[0].header_value("x-csrf-token") == cookies["nishati_csrf"]["value"]
    answer = await posted[0].response()
    assert answer is not None
    assert (answer.status, (await answer.json())["reason"]) == (409, "ChainRefused")
    seen.expect_failure(offers, 409)
    # Signed out: the session is over, and the sign-in page is back.
    await page.get_by_role("button", name=words["signOut"]).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[lang]["/signin"])
    assert (await context.request.get(f"{site.url}{ME}")).status == 401
    assert seen.problems() == []
    await context.close()


async def colours_drawn(page: Page) -> dict[str, int]:
    """Pixels of the day chart's canvas near each series' colour."""
    counted: dict[str, int] = await page.evaluate(
        """() => {
          const canvas = document.querySelector('[data-testid=day-chart] canvas');
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          const near = (i, r, g, b) =>
            Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60
            && data[i + 3] > 200;
          let exported = 0, imported = 0;
          for (let i = 0; i < data.length; i += 4) {
            if (near(i, 21, 128, 61)) exported++;
            if (near(i, 180, 83, 9)) imported++;
          }
          return { exported, imported };
        }"""
    )
    return counted


@pytest.mark.parametrize("lang", ["en", "sw"])
async def test_the_dashboard_charts_todays_readings_export_and_import_apart(
    browser: Browser, site: Site, lang: str
) -> None:
    words = WORDS[lang]
    exported, imported = await a_day_of_readings(site)
    context, seen = await watched_context(browser, site.url, "laptop")
    await choose_language(context, lang)
    await signed_in_household(context, site, seen)
    page = await context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await page.goto("/")
    await expect(page.get_by_test_id("day-exported")).to_have_text(f"{exported / 1000:g} kWh")
    await expect(page.get_by_test_id("day-imported")).to_have_text(f"{imported} Wh")
    await expect(page.locator("[data-testid=day-chart] canvas")).to_be_visible()
    # Today came with the page: the chart was drawn without asking for it.
    assert [url for url in asked if "/day?" in url or url.endswith("/auth/me")] == []
    drawn = await colours_drawn(page)
    # The axis is the whole day: readings of a day younger than 90 minutes (they start at
    # midnight in Nairobi) fill a sliver of it, where each series still shows.
    least = 200 if int(time.time()) - start_of_today() >= 5_400 else 0
    assert drawn["exported"] > least, drawn
    assert drawn["imported"] > least, drawn
    # The legend names both series, in the page's language.
    await expect(page.locator(".u-legend")).to_contain_text(words["export"])
    await expect(page.locator(".u-legend")).to_contain_text(words["import"])
    # A day with nothing: the empty state, no chart.
    await page.get_by_label(words["day"]).fill("2026-01-01")
    await expect(page.get_by_text(words["noReadings"])).to_be_visible()
    await expect(page.locator("[data-testid=day-chart]")).to_have_count(0)
    assert seen.problems() == []
    await context.close()


async def test_the_page_comes_with_todays_chart_drawn_before_the_script(
    browser: Browser, site: Site
) -> None:
    await a_day_of_readings(site)
    context, seen = await watched_context(browser, site.url, "phone")
    await signed_in_household(context, site, seen)
    page = await context.new_page()
    # No script arrives (as on a slow connection before it has): the oracle's paint alone.
    await page.route("**/assets/*.js", lambda route: route.abort())
    await page.goto("/")
    chart = page.locator("[data-testid=day-chart] svg")
    await expect(chart).to_be_visible()
    box = await chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] == 240
    day = await context.request.get(dashboard_calls(site.household, datetime.now(NAIROBI))[0])
    intervals = len((await day.json())["intervals"])
    for series in ("export", "import"):
        drawn = await chart.locator(f"path.{series}").get_attribute("d")
        assert drawn is not None
        assert drawn.count("M") == intervals, (series, drawn)
    assert seen.blocked == []
    await page.screenshot(path=OUTPUT / "first-paint-360x780.png")
    await context.close()


async def test_the_app_opens_offline_with_its_last_data(browser: Browser, site: Site) -> None:
    exported, _ = await a_day_of_readings(site)
    context, seen = await watched_context(browser, site.url, "phone", service_workers=True)
    await signed_in_household(context, site, seen)
    page = await context.new_page()
    await page.goto("/")
    await page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=10_000)
    # Loaded once more under the worker, which keeps each answer.
    await page.reload()
    await expect(page.get_by_test_id("day-exported")).to_have_text(f"{exported / 1000:g} kWh")
    await context.set_offline(True)
    await page.reload()
    await expect(page.get_by_test_id("day-exported")).to_have_text(f"{exported / 1000:g} kWh")
    await expect(page.get_by_text("You are offline").first).to_be_visible()
    assert seen.page_errors == []
    await context.close()
