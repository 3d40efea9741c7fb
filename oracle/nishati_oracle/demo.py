"""The local market demo: a local validator with the program deployed, and a market opened on the
embedded defaults. Later issues grow it into a whole market day.

Run it with ``scripts/demo.sh`` (which builds first) or ``python -m nishati_oracle.demo``.
"""

from __future__ import annotations

import asyncio
import sys

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.localnet import LocalnetError, LocalValidator
from nishati_client.market import Market, MarketConfig
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient

DEMO_MARKET_ID = 1
DEMO_FUNDING_LAMPORTS = 10 * 10**9


def demo_config(oracle: Pubkey) -> MarketConfig:
    """A market as a Nairobi estate might run it: 1.5 % fee, KES 10 to 60 per kWh, 15 min to pay."""
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=1_000,
        max_price_cents_per_kwh=6_000,
        payment_deadline_secs=900,
    )


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def describe(market: Market) -> str:
    c = market.config
    rows = [
        ("address", str(market.address)),
        ("admin", str(market.admin)),
        ("oracle authority", str(c.oracle_authority)),
        ("fee", f"{c.fee_bps // 100}.{c.fee_bps % 100:02d} % ({c.fee_bps} bps)"),
        (
            "price bounds",
            f"{kes(c.min_price_cents_per_kwh)} to {kes(c.max_price_cents_per_kwh)} per kWh",
        ),
        ("payment deadline", f"{c.payment_deadline_secs} s"),
        ("paused", "yes" if market.paused else "no"),
    ]
    lines = [f"Market {market.market_id}"] + [f"  {name:<18}{value}" for name, value in rows]
    return "\n".join(lines)


async def run(settings: ClientSettings) -> Market:
    admin, oracle = Keypair(), Keypair()
    program_id = Pubkey.from_string(settings.program_id)
    print(f"starting a local {settings.validator} validator with {settings.program_so.name}")
    with LocalValidator(settings, {str(admin.pubkey()): DEMO_FUNDING_LAMPORTS}) as validator:
        print(f"validator ready at {validator.rpc_url}; program {program_id}")
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            client = NishatiClient(chain, program_id)
            outcome = await client.market_initialize(
                payer=admin,
                admin=admin,
                market_id=DEMO_MARKET_ID,
                config=demo_config(oracle.pubkey()),
            )
            print(f"market_initialize confirmed: {outcome.signature} ({outcome.compute_units} CU)")
            market = await client.market(market_address(program_id, DEMO_MARKET_ID)[0])
        finally:
            await chain.close()
    print(describe(market))
    return market


def main() -> None:
    try:
        asyncio.run(run(ClientSettings()))
    except LocalnetError as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
