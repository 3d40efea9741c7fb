"""The oracle as a process against the JSON-RPC validator, under faults: killed mid-batch and
restarted, and cut off from the chain for 30 s. Each reading it accepted reaches the chain
exactly once: every household ends on its meter's last counter, minted exactly its export."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.program import NishatiClient
from nishati_client.readings import SignedReading
from nishati_dev.processes import OracleService
from nishati_dev.sandbox import FAST_EXPORT, Harness, Member, OpenMarket, fund, open_market
from tests.oracle.proxy import CuttableProxy

pytestmark = pytest.mark.rpc
MEMBERS = 9
EXPORT_PER_READING_WH = 50
# Chain time between rounds: the oracle's clock is read every 0.2 s and trails by that much.
CHAIN_SECS_BETWEEN_ROUNDS = 2


@dataclass
class Setup:
    market: OpenMarket
    members: list[Member]
    env: dict[str, str]
    exported: dict[Pubkey, int]

    async def readings(self, offset: int) -> list[SignedReading]:
        """One new reading per household, ``offset`` seconds after the cluster's now, once a
        few seconds of chain time have passed (an attestation before may have just landed:
        the export limit counts from it, 100 MW here, 27 kWh a second)."""
        await self.market.elapse(CHAIN_SECS_BETWEEN_ROUNDS)
        now = await self.market.now()
        batch = []
        for m in self.members:
            batch.append(m.meter.read(now + offset, exported_wh=EXPORT_PER_READING_WH))
            self.exported[m.address] = self.exported.get(m.address, 0) + EXPORT_PER_READING_WH
        return batch


@pytest.fixture
async def setup(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path
) -> AsyncIterator[Setup]:
    program_id = Pubkey.from_string(settings.program_id)
    chain = RpcChain(rpc_url, program_id, settings.commitment)
    h = Harness(chain, rpc_payer, NishatiClient(chain, program_id), None)
    market = await open_market(h, config=FAST_EXPORT)
    await fund(h, market.oracle.pubkey(), 10 * 10**9)
    members = [await market.register(custodial=True) for _ in range(MEMBERS)]
    key = tmp_path / "oracle.json"
    write_keypair(key, market.oracle)
    env = {
        "NISHATI_RPC_URL": rpc_url,
        "NISHATI_MARKET": str(market.address),
        "NISHATI_ORACLE_KEYPAIR": str(key),
        "NISHATI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}",
        "NISHATI_ATTEST_INTERVAL_SECS": "0.2",
        "NISHATI_ATTEST_THRESHOLD_WH": "0",
        "NISHATI_CHAIN_CLOCK_SECS": "0.2",
    }
    try:
        yield Setup(market, members, env, {})
    finally:
        await chain.close()


@pytest.fixture
def oracle(setup: Setup, tmp_path: Path) -> Iterator[OracleService]:
    process = OracleService(setup.env, tmp_path / "oracle.log")
    try:
        yield process
    finally:
        process.stop()


def post(oracle: OracleService, readings: list[SignedReading]) -> dict[str, int]:
    body = {
        "readings": [
            {"message": r.message.hex(), "signature": r.signature.hex(), "meter": str(r.meter)}
            for r in readings
        ]
    }
    answer: dict[str, int] = httpx.post(f"{oracle.url}/api/v1/readings", json=body).json()
    return answer


async def drained(oracle: OracleService, within_secs: float) -> None:
    """Waits until the oracle has attested everything. Blocking calls run in a thread: the
    chain proxy of the outage test serves from this event loop."""
    deadline = time.monotonic() + within_secs
    while await asyncio.to_thread(oracle.unattested) > 0:
        assert time.monotonic() < deadline, "the queue did not drain"
        await asyncio.sleep(0.3)


async def assert_on_chain_exactly_once(setup: Setup) -> None:
    for m in setup.members:
        household = await setup.market.household(m)
        assert household.last_counter == m.meter.counter
        # The first reading is each meter's baseline; every later one minted its export once.
        minted = setup.exported[m.address] - EXPORT_PER_READING_WH
        assert household.total_exported_wh == minted
        assert await setup.market.balance(m) == minted


async def test_killed_mid_batch_then_restarted_attests_each_reading_once(
    setup: Setup, oracle: OracleService
) -> None:
    oracle.start()
    for round_ in range(4):
        answer = post(oracle, await setup.readings(offset=round_ * 10))
        assert answer["accepted"] == MEMBERS, answer
        if round_ == 2:
            await asyncio.sleep(0.25)  # the batcher is sending: kill it there
            oracle.kill()
            oracle.start()
    await drained(oracle, within_secs=60)
    await assert_on_chain_exactly_once(setup)


async def test_the_queue_holds_while_the_chain_is_away_then_drains(
    setup: Setup, tmp_path: Path
) -> None:
    target = urlparse(setup.env["NISHATI_RPC_URL"])
    assert target.hostname is not None
    assert target.port is not None
    proxy = CuttableProxy(target.hostname, target.port)
    proxy.start()
    oracle = OracleService(
        {**setup.env, "NISHATI_RPC_URL": f"http://127.0.0.1:{proxy.port}"}, tmp_path / "o.log"
    )
    try:
        await asyncio.to_thread(oracle.start)
        first = await asyncio.to_thread(post, oracle, await setup.readings(offset=0))
        assert first["accepted"] == MEMBERS
        await drained(oracle, within_secs=30)
        # The oracle reads the chain's clock past the last attestation before losing it: it
        # then checks readings against that time while the chain is away.
        await setup.market.elapse(CHAIN_SECS_BETWEEN_ROUNDS)
        await asyncio.sleep(1)
        proxy.cut()
        for round_ in range(3):
            answer = await asyncio.to_thread(post, oracle, await setup.readings(10 * round_ + 10))
            assert answer["accepted"] == MEMBERS, answer
        await asyncio.sleep(30)
        # Held, not lost, not attested.
        assert await asyncio.to_thread(oracle.unattested) == 3 * MEMBERS
        proxy.start()
        await drained(oracle, within_secs=60)
    finally:
        oracle.stop()
        proxy.close()
    await assert_on_chain_exactly_once(setup)
