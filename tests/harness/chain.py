"""The program on a chain, in-process (LiteSVM) or over JSON-RPC (a local validator per module),
and the same test on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import LiteSvmChain, RpcChain
from nishati_client.program import NishatiClient
from nishati_dev.localnet import LocalValidator
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
    """A module's local validator: its JSON-RPC and websocket endpoints."""

    rpc_url: str
    ws_url: str


@pytest.fixture(scope="module")
def localnet(
    settings: LocalChainSettings, rpc_payer: Keypair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Localnet]:
    """A local validator for each test module, on free ports, its log in the module's
    temporary directory.

    Per module, not per session: surfpool's embedded validator stops answering after about
    400 transactions, which the whole suite together would pass."""
    log = tmp_path_factory.mktemp("localnet") / "validator.log"
    with LocalValidator(settings, {str(rpc_payer.pubkey()): PAYER_LAMPORTS}, log) as validator:
        yield Localnet(validator.rpc_url, validator.ws_url)


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
