"""The local market demo: a day in a Nairobi estate's solar market on a local validator.

A market opens on the embedded defaults; a household with rooftop solar (Wanjiru, who has a
wallet) and a neighbour without one (Otieno, for whom the oracle acts) register; Wanjiru's meter
signs two readings that the oracle attests, minting her exported energy; she offers part of it;
Otieno buys some; the oracle settles the trade (here directly: M-Pesa arrives with the payments
issue). Run it with ``scripts/demo.sh`` (which builds first) or ``python -m nishati_oracle.demo``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.localnet import LocalnetError, LocalValidator
from nishati_client.market import Market, MarketConfig
from nishati_client.program import NishatiClient
from nishati_client.sandbox import Harness, OpenMarket, digest, open_market

DEMO_MARKET_ID = 1
DEMO_FUNDING_LAMPORTS = 10 * 10**9


def demo_config(oracle: Pubkey) -> MarketConfig:
    """A market as an estate might run it: 1.5 % fee, KES 10 to 60 per kWh, 15 min to pay."""
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=1_000,
        max_price_cents_per_kwh=6_000,
        payment_deadline_secs=900,
    )


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def kwh(wh: int) -> str:
    return f"{wh // 1000:,}.{wh % 1000:03d} kWh"


def clock(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%H:%M:%S UTC")


def describe(market: Market) -> str:
    c = market.config
    rows = [
        ("address", str(market.address)),
        ("admin", str(market.admin)),
        ("oracle authority", str(c.oracle_authority)),
        ("energy mint", str(market.energy_mint)),
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


async def market_day(market: OpenMarket) -> None:
    """Households, readings, an offer and a trade, each step printed as it lands."""
    client = market.h.client
    wanjiru = await market.register()
    otieno = await market.register(custodial=True)
    print(f"registered Wanjiru (wallet)  household {wanjiru.address}")
    print(f"registered Otieno (no wallet, the oracle acts for him)  household {otieno.address}")

    now = await market.now()
    baseline = await market.attest((wanjiru, wanjiru.meter.read(now, exported_wh=12_480)))
    later = await market.attest((wanjiru, wanjiru.meter.read(now + 60, exported_wh=3_200)))
    [first] = client.program.events(baseline.logs)
    [second] = client.program.events(later.logs)
    print(
        f"Wanjiru's meter: {kwh(first.data.exported_wh)} exported so far (baseline, minted "
        f"{first.data.minted_wh} Wh); then {kwh(second.data.exported_wh)}: minted "
        f"{kwh(second.data.minted_wh)} ({later.compute_units:,} CU)"
    )

    offer = await market.offer(wanjiru, 2_500, price_cents_per_kwh=2_500)
    print(f"Wanjiru offers {kwh(offer.unreserved_wh)} at {kes(offer.price_cents_per_kwh)}/kWh")
    trade = await market.open_trade(offer, otieno, 1_500, reference="demo-payment-1")
    print(
        f"Otieno takes {kwh(trade.wh)}: {kes(trade.total_cents)} "
        f"(whole shillings, rounded up), to pay by {clock(trade.deadline)}"
    )
    settled = await client.trade_settle(
        payer=market.h.payer, oracle=market.oracle, trade=trade, receipt_hash=digest("SGR7X2K9QP")
    )
    print(f"the oracle settles the trade ({settled.compute_units:,} CU)")
    print(
        f"balances: Wanjiru {kwh(await market.balance(wanjiru))}, "
        f"Otieno {kwh(await market.balance(otieno))}, "
        f"still offered {kwh((await client.offer(offer.address)).unreserved_wh)}"
    )


async def run(settings: ClientSettings) -> None:
    payer = Keypair()
    program_id = Pubkey.from_string(settings.program_id)
    print(f"starting a local {settings.validator} validator with {settings.program_so.name}")
    with LocalValidator(settings, {str(payer.pubkey()): DEMO_FUNDING_LAMPORTS}) as validator:
        print(f"validator ready at {validator.rpc_url}; program {program_id}")
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            harness = Harness(chain, payer, NishatiClient(chain, program_id), None)
            market = await open_market(harness, DEMO_MARKET_ID, demo_config)
            print(describe(await harness.client.market(market.address)))
            await market_day(market)
        finally:
            await chain.close()


def main() -> None:
    try:
        asyncio.run(run(ClientSettings()))
    except LocalnetError as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
