"""The browser suite's fixtures: Chromium for the session, the SMS simulator for the module,
and for each test a market on LiteSVM with the oracle serving the web app on loopback,
sending its sign-in codes through the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from nishati_client.phone import commitment
from nishati_dev.inprocess import serving
from nishati_dev.processes import DarajaSimService, SmsSimService
from nishati_dev.sandbox import Harness, Member, set_time
from nishati_oracle.core.settings import ForecastSettings, HttpSettings
from nishati_oracle.daraja.credentials import NAIROBI
from tests.accounts.conftest import CODE, OPERATOR, OPERATOR_PASSWORD, new_phone, sign_in_settings
from tests.harness.oracle import PHONE_SALT, OracleWorld, start_world
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, built

# How long the oracle may take to hand a code to the SMS simulator.
SMS_WAIT_SECS = 10.0


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh (Debian's chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def sms_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsSimService]:
    with SmsSimService(tmp_path_factory.mktemp("sms-sim") / "sms-sim.log") as sim:
        yield sim


@dataclass
class Site:
    """The oracle serving the web app at ``url``, its market, the SMS simulator, and a
    custodial household with a meter and an enrolled phone."""

    url: str
    world: OracleWorld
    sms: SmsSimService
    member: Member
    phone: str

    @property
    def household(self) -> str:
        return str(self.member.address)

    async def read(self, at: int, exported_wh: int = 0, imported_wh: int = 0) -> None:
        """The household's meter's next reading, at chain time ``at``."""
        set_time(self.world.market.h, at)
        await self.world.elapse(0)
        answer = await self.world.post(self.member.meter.read(at, exported_wh, imported_wh))
        assert answer.json()["accepted"] == 1, answer.text

    async def messages(self) -> int:
        """How many SMS the simulator took for the household's phone."""
        async with httpx.AsyncClient(base_url=self.sms.url) as sim:
            return len((await sim.get("/messages", params={"to": "+" + self.phone})).json())

    async def last_code(self, after: int = 0) -> str:
        """The code in the SMS the simulator took for the household's phone after its first
        ``after`` (the oracle sends it once it has answered), waited for."""
        sent: list[dict[str, Any]] = []
        deadline = time.monotonic() + SMS_WAIT_SECS
        async with httpx.AsyncClient(base_url=self.sms.url) as sim:
            while len(sent) <= after and time.monotonic() < deadline:
                sent = (await sim.get("/messages", params={"to": "+" + self.phone})).json()
                await asyncio.sleep(0.05)
        assert len(sent) > after, f"no message for {self.phone}"
        found = CODE.search(sent[-1]["message"])
        assert found is not None, sent[-1]
        return found.group(1)

    async def sign_in(self, context: BrowserContext) -> None:
        """The household signed in in ``context`` (its cookies), as the sign-in page does."""
        asked = await context.request.post(
            f"{self.url}/api/v1/auth/code", data={"phone": self.phone}
        )
        assert asked.status == 202, await asked.text()
        answer = await context.request.post(
            f"{self.url}/api/v1/auth/session",
            data={"phone": self.phone, "code": await self.last_code()},
        )
        assert answer.status == 200, await answer.text()

    async def sign_in_operator(self, context: BrowserContext) -> None:
        await self.world.services.accounts.operators.add(OPERATOR, OPERATOR_PASSWORD)
        answer = await context.request.post(
            f"{self.url}/api/v1/auth/operator",
            data={"username": OPERATOR, "password": OPERATOR_PASSWORD},
        )
        assert answer.status == 200, await answer.text()


def start_of_today() -> int:
    now = datetime.now(NAIROBI)
    return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


@pytest.fixture
def site_forecast() -> ForecastSettings:
    """The site's forecasts: off, for the pages' empty states of a market without them (503
    ForecastUnavailable); a module showing forecasts overrides it."""
    return ForecastSettings(enabled=False)


@pytest.fixture
def site_database_url(tmp_path: Path) -> str:
    """The site's database: SQLite; a module overrides it to run on PostgreSQL."""
    return f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"


@pytest.fixture
async def site(
    litesvm: Harness,
    tmp_path: Path,
    sms_sim: SmsSimService,
    sim_process: DarajaSimService,
    site_forecast: ForecastSettings,
    site_database_url: str,
) -> AsyncIterator[Site]:
    # The chain's clock two hours ago: the household registers then, and every reading the
    # tests send (today's, and up to 90 minutes old) follows, at any hour of Nairobi's day.
    set_time(litesvm, int(time.time()) - 7_200)
    world = await start_world(
        litesvm,
        site_database_url,
        tmp_path,
        http=HttpSettings(web_dir=built()),
        forecast=site_forecast,
        **sign_in_settings(sms_sim.url, sim_process.url),
    )
    async with world.app.router.lifespan_context(world.app), world.http:
        phone = new_phone()
        member = await world.market.register(
            custodial=True, phone_commitment=commitment(PHONE_SALT, phone)
        )
        enrolled = await world.http.put(
            f"/api/v1/households/{member.address}/phone", json={"phone": phone}
        )
        assert enrolled.status_code == 204, enrolled.text
        async with serving(world.app) as url:
            yield Site(url, world, sms_sim, member, phone)
