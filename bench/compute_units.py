"""Compute units of each instruction, measured in LiteSVM (deterministic for a given build).

Run: ``.venv/bin/python -m bench.compute_units``
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import LiteSvmChain, TxOutcome
from nishati_client.config import ClientSettings
from nishati_client.market import MarketConfig, MarketUpdate
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient


async def measure() -> list[tuple[str, int]]:
    settings = ClientSettings()
    program_id = Pubkey.from_string(settings.program_id)
    chain = LiteSvmChain(program_id, settings.program_so)
    client = NishatiClient(chain, program_id)
    admin = Keypair()
    chain.fund(admin.pubkey(), 10**10)
    config = MarketConfig(Keypair().pubkey(), 150, 1_000, 6_000, 900)
    market = market_address(program_id, 1)[0]

    cases: list[tuple[str, Callable[[], Awaitable[TxOutcome]]]] = [
        (
            "market_initialize",
            lambda: client.market_initialize(payer=admin, admin=admin, market_id=1, config=config),
        ),
        (
            "market_update (one field)",
            lambda: client.market_update(
                payer=admin, admin=admin, market=market, update=MarketUpdate(fee_bps=200)
            ),
        ),
        (
            "market_update (all fields)",
            lambda: client.market_update(
                payer=admin,
                admin=admin,
                market=market,
                update=MarketUpdate(Keypair().pubkey(), 100, 1_500, 5_000, 600),
            ),
        ),
    ]
    return [(name, (await run()).compute_units) for name, run in cases]


def main() -> None:
    rows = asyncio.run(measure())
    width = max(len(name) for name, _ in rows)
    print(f"{'instruction':<{width}}  compute units (LiteSVM, solders 0.26)")
    for name, units in rows:
        print(f"{name:<{width}}  {units:>6,}")


if __name__ == "__main__":
    main()
