"""The web app in Debian's Chromium, driven by Playwright: the oracle serving the build on
loopback, pages that may reach loopback only, and what every page must pass (no console
errors, no serious or critical axe-core violations, screenshots at a phone's size and a
laptop's)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots and what the tests saw; gitignored.
OUTPUT = Path(__file__).resolve().parent / "output"
VIEWPORTS = {"phone": {"width": 360, "height": 780}, "laptop": {"width": 1280, "height": 800}}
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Chromium resolves no name but loopback's: a request meant for elsewhere fails in the browser
# even before the context's routes see it.
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def built() -> Path:
    """web/dist, built first if it is not there (scripts/build-web.sh)."""
    if not (DIST / "index.html").is_file() or not AXE.is_file():
        subprocess.run([str(ROOT / "scripts" / "build-web.sh")], check=True)
    return DIST


@dataclass
class Watched:
    """What a browser context did that a test must check: console errors (less the failed
    loads a test expects: a 401 before sign-in), uncaught exceptions, requests refused for
    leaving the machine."""

    expected_failures: set[tuple[str, int]] = field(default_factory=set)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_loads: list[tuple[str, int]] = field(default_factory=list)

    def expect_failure(self, path: str, status: int) -> None:
        self.expected_failures.add((path, status))

    def problems(self) -> list[str]:
        unexpected = [
            f"{status} {path}"
            for path, status in self.failed_loads
            if (path, status) not in self.expected_failures
        ]
        return (
            self.console_errors
            + self.page_errors
            + unexpected
            + [f"blocked {url}" for url in self.blocked]
        )


async def watched_context(
    browser: Browser, base_url: str, viewport: str, *, service_workers: bool = False
) -> tuple[BrowserContext, Watched]:
    """A fresh context (no cookies, no storage) at ``viewport``, every request beyond
    loopback aborted and recorded."""
    context = await browser.new_context(
        base_url=base_url,
        viewport=VIEWPORTS[viewport],  # type: ignore[arg-type]
        service_workers="allow" if service_workers else "block",
        locale="en-KE",
        timezone_id="Africa/Nairobi",
    )
    seen = Watched()

    async def only_loopback(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            await route.continue_()
        else:
            seen.blocked.append(route.request.url)
            await route.abort("blockedbyclient")

    await context.route("**/*", only_loopback)
    context.on("page", lambda page: watch_page(page, seen))
    return context, seen


def watch_page(page: Page, seen: Watched) -> None:
    def console(message: ConsoleMessage) -> None:
        # A failed load is judged by its response (expected or not), not by its console line.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            seen.console_errors.append(message.text)

    def response(answer: Any) -> None:
        if answer.status >= 400:
            seen.failed_loads.append((urlsplit(answer.url).path, answer.status))

    page.on("console", console)
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.on("response", response)


async def choose_language(context: BrowserContext, lang: str) -> None:
    """The language the app opens in, as if chosen before (its localStorage key)."""
    await context.add_init_script(
        "try { if (!localStorage.getItem('nishati.lang')) "
        f"localStorage.setItem('nishati.lang', '{lang}') }} catch {{}}"
    )


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it stands."""
    await page.add_script_tag(content=AXE.read_text())
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, { resultTypes: ['violations'] })"
    )
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


async def check_page(page: Page, name: str, viewport: str) -> Path:
    """The page passes axe-core and is photographed; the screenshot's path."""
    await page.wait_for_load_state("networkidle")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in found]
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / f"{name}-{VIEWPORTS[viewport]['width']}x{VIEWPORTS[viewport]['height']}.png"
    await page.screenshot(path=str(shot), full_page=True)
    return shot
