"""The oracle's core as fixtures: its databases (SQLite, and PostgreSQL from
:mod:`tests.harness.postgres`) and the app serving a market on LiteSVM (``world``)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.readings import SignedReading
from nishati_dev.localday import simulator_payments
from nishati_dev.sandbox import Harness, Member, OpenMarket, open_market
from nishati_oracle.app import create_app
from nishati_oracle.core.settings import (
    OracleSettings,
    ReadingSettings,
    Sms,
    SmsSettings,
    StorageSettings,
)
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.services import Services
from tests.harness.postgres import PG_BIN, postgres_server


@pytest.fixture(scope="session")
def postgres_base() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on each engine the oracle supports."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_base"))


def new_postgres_database(base: str) -> str:
    """A new, empty database on the server at ``base`` (a URL): its URL."""
    name = f"t{secrets.token_hex(6)}"
    host, port = base.split("@", 1)[1].split("/", 1)[0].split(":")
    subprocess.run(
        [str(PG_BIN / "createdb"), "-h", host, "-p", port, "-U", "nishati", name], check=True
    )
    return base.rsplit("/", 1)[0] + "/" + name


PHONE_SALT = bytes(range(32))
CALLBACK_TOKEN = "test-callback-token-0123456789abcdef"  # noqa: S105 (a test value)
# Trading in-process, paying through a Daraja that is never reached: no request a test sends
# gets past the checks to a payment.
OPERATOR_TOKEN = "test-operator-token-0123456789abcdef"  # noqa: S105 (a test value)
# What an operator sends (``Authorization``), for routes an operator may use.
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
IN_PROCESS_TRADING: dict[str, Any] = {
    "chain": ClientSettings(phone_salt=SecretStr(PHONE_SALT.hex())),
    "payments": simulator_payments(
        "http://127.0.0.1:9", "http://oracle", CALLBACK_TOKEN
    ).model_copy(update={"operator_token": SecretStr(OPERATOR_TOKEN)}),
    # Codes sent to an SMS gateway that is never reached either.
    "sms": SmsSettings(
        provider=Sms.simulator, url="http://127.0.0.1:9", api_key=SecretStr("test-sms-key")
    ),
}


@dataclass
class OracleWorld:
    """A market on LiteSVM, and the oracle app serving it."""

    market: OpenMarket
    app: FastAPI
    http: httpx.AsyncClient
    settings: OracleSettings

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found

    async def post(self, *signed: SignedReading) -> httpx.Response:
        body = {
            "readings": [
                {"message": s.message.hex(), "signature": s.signature.hex(), "meter": str(s.meter)}
                for s in signed
            ]
        }
        return await self.http.post(READINGS_PATH, json=body)

    async def member(self) -> Member:
        return await self.market.register(custodial=True)

    async def elapse(self, secs: int) -> int:
        """Lets ``secs`` of chain time pass (LiteSVM's clock is moved on) and has the oracle
        read the chain's clock again (it never carries it forward itself); the new time."""
        await self.market.elapse(secs)
        return await self.services.pipeline.chain_clock.fresh()


async def start_world(
    litesvm: Harness, database_url: str, tmp_path: Path, **changes: Any
) -> OracleWorld:
    """The app serving a new market; ``changes`` to its settings."""
    assert litesvm.litesvm is not None
    market = await open_market(litesvm)
    # The oracle pays for its attestations.
    litesvm.litesvm.fund(market.oracle.pubkey(), 100 * 10**9)
    key_file = tmp_path / "oracle.json"
    write_keypair(key_file, market.oracle)
    settings = OracleSettings(
        market=str(market.address),
        oracle_keypair=key_file,
        storage=StorageSettings(database_url=database_url),
        # Tests drive the batcher by hand (run_once); its own rounds wait an hour.
        readings=ReadingSettings(attest_interval_secs=3_600),
        **changes,
    )
    app = create_app(settings, chain=litesvm.litesvm)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oracle")
    return OracleWorld(market, app, http, settings)


@pytest.fixture
async def world(litesvm: Harness, database_url: str, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    started = await start_world(litesvm, database_url, tmp_path)
    async with started.app.router.lifespan_context(started.app), started.http:
        yield started
