"""The local validator keeps its clock with real time, as a cluster does: the program's ``now``
(the Clock sysvar) is the wall clock's, however many transactions it ran and however long it
sat idle."""

from __future__ import annotations

import asyncio
import time

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from nishati_client.chain import RpcChain, cluster_time
from nishati_dev.settings import LocalChainSettings
from tests.harness.chain import Localnet

pytestmark = pytest.mark.rpc

# The Clock holds whole seconds and is moved each second: it trails by under about 1.2 s.
MOST_BEHIND_SECS = 3
# A cluster's clock is never ahead of real time by more than a slot's rounding.
MOST_AHEAD_SECS = 1
TRANSACTIONS = 40
IDLE_SECS = 12


async def _drift(chain: RpcChain) -> float:
    """The wall clock's time minus the Clock sysvar's, read together."""
    before = time.time()
    chain_now = await cluster_time(chain)
    return (before + time.time()) / 2 - chain_now


async def test_the_clock_sysvar_follows_the_wall_clock(
    localnet: Localnet, settings: LocalChainSettings, program_id: Pubkey, rpc_payer: Keypair
) -> None:
    chain = RpcChain(localnet.rpc_url, program_id, settings.commitment)
    try:
        drifts = [await _drift(chain)]
        # Transactions make blocks; each moves surfpool's clock by its slot time only.
        receiver = Keypair().pubkey()
        for _ in range(TRANSACTIONS):
            ix = transfer(
                TransferParams(from_pubkey=rpc_payer.pubkey(), to_pubkey=receiver, lamports=10**6)
            )
            await chain.send([ix], [rpc_payer])
        drifts.append(await _drift(chain))
        # Idle, no block is made for a transaction: the clock still moves.
        for _ in range(IDLE_SECS // 3):
            await asyncio.sleep(3)
            drifts.append(await _drift(chain))
    finally:
        await chain.close()
    assert all(-MOST_AHEAD_SECS <= d <= MOST_BEHIND_SECS for d in drifts), drifts
