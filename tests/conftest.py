"""Shared fixtures: the program on a chain, in-process (LiteSVM) or over JSON-RPC."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from xprocess import ProcessStarter, XProcess

from nishati_client.chain import LiteSvmChain, RpcChain
from nishati_client.program import NishatiClient
from nishati_dev.localnet import FUND_ENV, READY_PATTERN
from nishati_dev.sandbox import Harness
from nishati_dev.settings import LocalChainSettings

PAYER_LAMPORTS = 100 * 10**9


@pytest.fixture(scope="session")
def settings() -> LocalChainSettings:
    settings = LocalChainSettings()
    if not settings.program_so.is_file():
        pytest.exit(f"{settings.program_so} is missing: run scripts/build-program.sh", 2)
    return settings


@pytest.fixture(scope="session")
def program_id(settings: LocalChainSettings) -> Pubkey:
    return Pubkey.from_string(settings.program_id)


@pytest.fixture(scope="session")
def rpc_payer() -> Keypair:
    return Keypair()


@dataclass(frozen=True)
class Localnet:
    """The session's local validator: its JSON-RPC and websocket endpoints."""

    rpc_url: str
    ws_url: str


@pytest.fixture(scope="module")
def localnet(
    xprocess: XProcess, rpc_payer: Keypair, request: pytest.FixtureRequest
) -> Iterator[Localnet]:
    """A local validator for each test module, started and stopped under pytest-xprocess.

    Per module, not per session: surfpool's embedded validator stops answering after about
    400 transactions, which the whole suite together would pass."""

    class Starter(ProcessStarter):  # type: ignore[misc]
        pattern = READY_PATTERN.pattern
        args: ClassVar = [sys.executable, "-m", "nishati_dev.localnet"]
        env: ClassVar = dict(os.environ, **{FUND_ENV: f"{rpc_payer.pubkey()}={PAYER_LAMPORTS}"})
        timeout = 120
        terminate_on_interrupt = True

    # Named by session and module: concurrent sessions in one checkout share xprocess's
    # directory, and must neither reuse nor stop each other's validator.
    name = f"nishati-localnet-{os.getpid()}-{request.module.__name__}"
    _, logfile = xprocess.ensure(name, Starter)
    rpc_url, ws_url = READY_PATTERN.findall(Path(logfile).read_text())[-1]
    yield Localnet(rpc_url, ws_url)
    xprocess.getinfo(name).terminate()


@pytest.fixture(scope="module")
def rpc_url(localnet: Localnet) -> str:
    return localnet.rpc_url


@pytest.fixture
def litesvm(settings: LocalChainSettings, program_id: Pubkey) -> Harness:
    chain = LiteSvmChain(program_id, settings.program_so)
    payer = Keypair()
    chain.fund(payer.pubkey(), PAYER_LAMPORTS)
    return Harness(chain, payer, NishatiClient(chain, program_id), chain)


@pytest.fixture(params=["litesvm", pytest.param("rpc", marks=pytest.mark.rpc)])
async def harness(
    request: pytest.FixtureRequest, settings: LocalChainSettings, program_id: Pubkey
) -> AsyncIterator[Harness]:
    """The same test on both chains."""
    if request.param == "litesvm":
        yield request.getfixturevalue("litesvm")
        return
    url: str = request.getfixturevalue("rpc_url")
    chain = RpcChain(url, program_id, settings.commitment)
    try:
        yield Harness(
            chain, request.getfixturevalue("rpc_payer"), NishatiClient(chain, program_id), None
        )
    finally:
        await chain.close()
