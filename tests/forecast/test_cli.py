"""``nishati forecast``, ``skill``, ``advice``, ``pv-system`` and ``auto-sell`` against the oracle
under uvicorn on loopback, serving a market on LiteSVM: the command signs with its keypair, the
oracle answers its owner and refuses a neighbour."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
import uvicorn

from nishati_client.keys import write_keypair
from nishati_dev.sandbox import Harness, Member
from nishati_oracle.forecast.advice import SellAdvice
from tests.client.support import Cli
from tests.forecast.support import (
    ORACLE_SETTINGS,
    StandInAdvisor,
    as_operator,
    forecast_for,
)
from tests.harness.oracle import OracleWorld, start_world


@pytest.fixture
async def served(litesvm: Harness, tmp_path: Path) -> AsyncIterator[tuple[OracleWorld, str]]:
    """The oracle listening on a loopback port, and its URL; its log lines kept out of the
    command's output, which the tests read."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(io.StringIO()))
    database = f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    world = await start_world(litesvm, database, tmp_path, **ORACLE_SETTINGS)
    listening = socket.create_server(("127.0.0.1", 0))
    host, port = listening.getsockname()[:2]
    config = uvicorn.Config(world.app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    async with world.app.router.lifespan_context(world.app), world.http:
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        try:
            yield world, f"http://{host}:{port}"
        finally:
            server.should_exit = True
            await serving
            structlog.reset_defaults()


async def run(cli: Cli, url: str, keypair: Path, *argv: str) -> tuple[int, str, str]:
    """The command in a thread of its own (it runs its own event loop), as ``keypair``."""
    return await asyncio.to_thread(cli, "--oracle-url", url, "--keypair", keypair, *argv)


def key_file(tmp_path: Path, member: Member) -> Path:
    path = tmp_path / f"{member.owner}.json"
    write_keypair(path, member.owner_keypair)
    return path


async def test_pv_system_set_changes_only_the_options_given(
    served: tuple[OracleWorld, str], cli: Cli, tmp_path: Path
) -> None:
    world, url = served
    home = await world.member()
    owner = key_file(tmp_path, home)
    household = str(home.address)
    code, out, err = await run(cli, url, owner, "pv-system", "show", household)
    assert code == 0, err
    assert "a Nairobi rooftop's defaults" in out
    code, out, err = await run(
        cli, url, owner, "pv-system", "set", household, "--capacity-wp", "4500",
        "--inverter-limit-w", "4000", "--json",
    )  # fmt: skip
    assert code == 0, err
    shown = (
        await world.http.get(f"/api/v1/households/{household}/pv-system", headers=as_operator())
    ).json()
    assert (shown["capacity_wp"], shown["inverter_limit_w"], shown["tilt_deg"]) == (
        4_500,
        4_000,
        10.0,
    )
    assert shown["defaults"] is False
    code, out, err = await run(cli, url, owner, "pv-system", "set", household, "--tilt-deg", "95")
    assert code == 1
    assert "InvalidPvSystem" in err
    assert "tilt_deg" in err


async def test_forecast_skill_and_advice_print_tables_and_json(
    served: tuple[OracleWorld, str], cli: Cli, tmp_path: Path
) -> None:
    world, url = served
    home = await world.member()
    owner = key_file(tmp_path, home)
    household = str(home.address)
    await forecast_for(world, home)
    code, out, err = await run(cli, url, owner, "forecast", household, "--hours", "48")
    assert code == 0, err
    assert f"Forecast for {household} (from clear_sky" in out
    code, out, err = await run(cli, url, owner, "forecast", household, "--json")
    assert code == 0, err
    steps = json.loads(out)["forecast"]["steps"]
    assert len(steps) == 192
    assert max(step["production_wh"] for step in steps) > 0
    code, out, err = await run(cli, url, owner, "skill")
    assert code == 0, err
    assert "Forecast skill of the whole market" in out
    assert "1 h ahead" in out
    code, out, err = await run(cli, url, owner, "advice", household, "--json")
    assert code == 0, err
    advice = json.loads(out)["advice"]
    code, out, err = await run(cli, url, owner, "advice", household)
    assert code == 0, err
    assert "rules (no Gemini key)" in out
    assert advice["explanation_sw"][:20] in out


async def test_auto_sell_from_the_command_line(
    served: tuple[OracleWorld, str], cli: Cli, tmp_path: Path
) -> None:
    world, url = served
    home = await world.member()
    await world.market.mint(home, 6_000)
    advisor = StandInAdvisor()
    world.services.advisor = advisor
    advisor.sell = SellAdvice(
        offer_wh=4_000, price_cents_per_kwh=2_200, until=await world.market.now() + 7_200
    )
    owner = key_file(tmp_path, home)
    household = str(home.address)
    code, out, err = await run(
        cli, url, owner, "auto-sell", "set", household, "--floor-price-cents", "2000",
        "--share-percent", "75", "--max-wh", "5000",
    )  # fmt: skip
    assert code == 0, err
    assert "75 %" in out
    await world.services.auto_sell.run_once()
    code, out, err = await run(cli, url, owner, "auto-sell", "offers", household, "--json")
    assert code == 0, err
    assert '"wh": 3000' in out
    code, out, err = await run(cli, url, owner, "auto-sell", "stop", household)
    assert code == 0, err
    assert "cancelled" in out
    assert await world.market.balance(home) == 6_000


async def test_a_neighbours_keypair_is_refused_in_one_line(
    served: tuple[OracleWorld, str], cli: Cli, tmp_path: Path
) -> None:
    world, url = served
    home, neighbour = await world.member(), await world.member()
    code, _, err = await run(
        cli, url, key_file(tmp_path, neighbour), "pv-system", "show", str(home.address)
    )
    assert code == 1
    assert err.startswith("nishati: error: the oracle refused (403 NotYourHousehold)")
    code, _, err = await run(
        cli, "http://127.0.0.1:9", key_file(tmp_path, home), "advice", str(home.address)
    )
    assert code == 1
    assert "no oracle answers at http://127.0.0.1:9" in err
