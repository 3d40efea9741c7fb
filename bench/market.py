"""What the market costs on chain: compute units per instruction, readings per transaction,
and lamports for a household's day, each checked against its target.

Run: ``.venv/bin/python -m bench.market`` (LiteSVM, solders 0.26, classic SPL Token);
``--rpc`` adds a column measured on the local surfpool validator (agave 4.1 runtime).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from dataclasses import dataclass

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.sizes import attest_sizes, most_that_fit
from bench.stats import Report
from nishati_client.chain import (
    PACKET_DATA_SIZE,
    LiteSvmChain,
    RpcChain,
    TxOutcome,
)
from nishati_client.lookup import attest_accounts
from nishati_client.market import MarketUpdate
from nishati_client.program import NishatiClient
from nishati_client.readings import SignedReading
from nishati_dev.localnet import LocalValidator
from nishati_dev.sandbox import (
    FAST_EXPORT,
    Harness,
    Member,
    Meter,
    OpenMarket,
    config_for,
    digest,
    fund,
    lamports,
    new_table,
    open_market,
    slot_after,
)
from nishati_dev.settings import LocalChainSettings

PAYER_LAMPORTS = 1_000 * 10**9
TARGETS = {
    "trade_open": 10_000,
    "trade_settle": 10_000,
    "trade_open + trade_settle": 20_000,
}
TARGET_PER_READING = 6_000
TARGET_READINGS_PER_TX = 6
# trade_open at this many trade indexes (each a new address, its own bump): its compute units
# may spread by at most TARGET_OPEN_SPREAD and stay within TARGET_OPEN_MAX at every one.
OPEN_SAMPLES = 100
TARGET_OPEN_SPREAD = 200
TARGET_OPEN_MAX = 6_000
# Published figures of comparable programs, for scale (classic SPL Token unless noted).
COMPARABLES = [
    ("SPL Token Transfer (classic)", 4_645, "solanahub.de/en/glossary/compute-unit"),
    ("SPL Token MintTo (classic)", 4_538, "solanahub.de/en/glossary/compute-unit"),
    ("p-token Transfer / MintTo (SIMD-0266)", 76, "solanahub.de/en/glossary/compute-unit"),
    ("Anchor init of one account (tests/bench)", 4_829, "anchor bench/COMPUTE_UNITS.md, 2.1"),
    ("solana-program/escrow CreateEscrow", 4_802, "solana-program/escrow CU_BENCHMARKS.md"),
    ("solana-program/escrow Deposit (best)", 18_819, "solana-program/escrow CU_BENCHMARKS.md"),
    ("solana-program/escrow Withdraw (best)", 15_342, "solana-program/escrow CU_BENCHMARKS.md"),
]


@dataclass
class Results:
    units: dict[str, int]
    # trade_open's compute units at OPEN_SAMPLES trade indexes, each with its own reference.
    open_units: list[int]
    # Readings: bytes as a legacy transaction, and as a v0 one with the market's lookup table.
    attest_bytes: dict[int, tuple[int, int]]
    max_readings: int
    max_table_readings: int
    day_lamports: int
    day_fees: dict[str, int]


async def members(market: OpenMarket, count: int) -> list[Member]:
    """Custodial households (the oracle signs for them), each with a baseline reading."""
    people = [await market.register(custodial=True) for _ in range(count)]
    now = await market.now()
    for person in people:
        await market.attest((person, person.meter.read(now)))
    return people


async def attest_table(
    h: Harness, market: OpenMarket, people: list[Member]
) -> list[AddressLookupTableAccount]:
    """A lookup table holding what attesting ``people`` names, usable from now on: as the
    oracle's tables hold them (setup, paid by the harness)."""
    addresses = attest_accounts(h.client.program, market.address, [p.address for p in people])
    table = await new_table(h, addresses)
    return [table.usable(await slot_after(h, table))]


async def oracle_attest(
    market: OpenMarket,
    pairs: list[tuple[Member, SignedReading]],
    tables: list[AddressLookupTableAccount],
) -> TxOutcome:
    """One attestation as the oracle sends it: paid and signed by the oracle alone, v0 with the
    market's table."""
    return await market.h.client.meter_attest(
        payer=market.oracle,
        oracle=market.oracle,
        market=market.address,
        readings=[(signed, member.address) for member, signed in pairs],
        lookup_tables=tables,
    )


async def trade_open_spread(market: OpenMarket, seller: Member, buyer: Member) -> list[int]:
    """trade_open's compute units at OPEN_SAMPLES trade indexes of one offer, each trade with
    a reference of its own and cancelled by the oracle before the next opens."""
    client, oracle = market.h.client, market.oracle
    offer = await market.offer(seller, 1_000)
    units = []
    for _ in range(OPEN_SAMPLES):
        opened = await client.trade_open(
            payer=market.h.payer,
            authority=buyer.authority,
            market=market.address,
            offer=offer.address,
            buyer=buyer.address,
            wh=10,
            payment_ref_hash=digest(secrets.token_hex(16)),
        )
        units.append(opened.outcome.compute_units)
        trade = await client.trade(opened.address)
        await client.trade_cancel(payer=market.h.payer, caller=oracle, trade=trade)
    return units


async def measure(h: Harness) -> Results:
    units: dict[str, int] = {}
    # Meters may export 100 MW, so readings mint after seconds of chain time on a validator.
    market = await open_market(h, config=FAST_EXPORT)
    units["market_initialize"] = (
        await h.client.market_initialize(
            payer=h.payer,
            admin=Keypair(),
            market_id=secrets.randbits(64),
            config=config_for(market.oracle.pubkey()),
        )
    ).compute_units
    client, oracle, admin, payer = h.client, market.oracle, market.admin, h.payer
    units["market_update"] = (
        await client.market_update(
            payer=payer, admin=admin, market=market.address, update=MarketUpdate(fee_bps=200)
        )
    ).compute_units
    units["market_pause"] = (
        await client.market_pause(payer=payer, admin=admin, market=market.address)
    ).compute_units
    units["market_resume"] = (
        await client.market_resume(payer=payer, admin=admin, market=market.address)
    ).compute_units
    seller = await market.register()
    owner, meter = Keypair(), Meter(market.address)
    units["household_register"] = (
        await client.household_register(
            payer=payer,
            owner=owner,
            authority=oracle,
            installer=market.installer,
            market=market.address,
            meter=meter.public_key,
            meter_proof=meter.prove(
                client.program.household_address(market.address, owner.pubkey())
            ),
            phone_commitment=digest("bench"),
        )
    ).outcome.compute_units

    # Attestation: the cost per reading at 1, 4 and the most one transaction holds, sent as
    # the oracle sends it.
    people = await members(market, 8)
    tables = await attest_table(h, market, people)
    await fund(h, market.oracle.pubkey(), 10 * 10**9)
    attest_bytes: dict[int, tuple[int, int]] = {}
    for n in range(1, len(people) + 1):
        await market.until_exportable(people[0], 500)
        now = await market.now()
        pairs = [(p, p.meter.read(now, exported_wh=500)) for p in people[:n]]
        readings: list[tuple[SignedReading, Pubkey]] = [(s, p.address) for p, s in pairs]
        # As sent: the JSON-RPC chain adds its compute-budget instructions, LiteSVM none.
        sizes = attest_sizes(client.program, oracle, market.address, readings, h.chain.policy)
        attest_bytes[n] = sizes
        # LiteSVM does not enforce the packet limit, so larger batches still measure compute;
        # over JSON-RPC they could not be sent.
        if h.litesvm is not None or sizes[1] <= PACKET_DATA_SIZE:
            outcome = await oracle_attest(market, pairs, tables)
            units[f"meter_attest x{n}"] = outcome.compute_units
    await market.mint(seller, 50_000)

    offer_created = await client.offer_create(
        payer=payer,
        authority=seller.authority,
        household=await market.household(seller),
        wh=20_000,
        price_cents_per_kwh=2_500,
        expires_at=await market.now() + 3_600,
    )
    units["offer_create"] = offer_created.outcome.compute_units
    offer = await client.offer(offer_created.address)
    buyer = people[0]
    opened = await client.trade_open(
        payer=payer,
        authority=oracle,
        market=market.address,
        offer=offer.address,
        buyer=buyer.address,
        wh=2_500,
        payment_ref_hash=digest("bench-1"),
    )
    units["trade_open"] = opened.outcome.compute_units
    trade = await client.trade(opened.address)
    units["trade_settle"] = (
        await client.trade_settle(
            payer=payer,
            oracle=oracle,
            trade=trade,
            receipt_hash=digest("r"),
            buyer=trade.buyer,
            wh=trade.wh,
            total_cents=trade.total_cents,
        )
    ).compute_units
    cancelled = await market.open_trade(offer, buyer, 1_000)
    units["trade_cancel"] = (
        await client.trade_cancel(payer=payer, caller=oracle, trade=cancelled)
    ).compute_units
    units["energy_redeem"] = (
        await client.energy_redeem(
            payer=payer,
            authority=seller.authority,
            market=market.address,
            household=seller.address,
            wh=1_000,
        )
    ).compute_units
    offer = await client.offer(offer.address)
    units["offer_cancel"] = (
        await client.offer_cancel(payer=payer, caller=seller.authority, offer=offer)
    ).compute_units
    units["trade_open + trade_settle"] = units["trade_open"] + units["trade_settle"]
    open_units = await trade_open_spread(market, seller, buyer)

    max_readings = most_that_fit({n: legacy for n, (legacy, _) in attest_bytes.items()})
    max_table_readings = most_that_fit({n: v0 for n, (_, v0) in attest_bytes.items()})
    day_lamports, day_fees = await household_day(h, market, max(max_table_readings, 1))
    return Results(
        units, open_units, attest_bytes, max_readings, max_table_readings, day_lamports, day_fees
    )


async def household_day(h: Harness, market: OpenMarket, batch: int) -> tuple[int, dict[str, int]]:
    """A household's day as the oracle relays it, the oracle paying every fee: its reading
    attested in a full batch (v0, the market's table holding the batch's accounts), one offer
    made and later withdrawn, two trades opened and both settled in one transaction. Measured
    from the oracle's balance step by step (fees plus any rent not returned); the batch's other
    households share the attestation."""
    relay = Harness(h.chain, market.oracle, h.client, h.litesvm)
    await fund(h, market.oracle.pubkey(), 10 * 10**9)
    day = OpenMarket(relay, market.address, market.admin, market.oracle, market.installer)
    people = await members(day, batch + 2)
    tables = await attest_table(h, market, people[:batch])
    seller, buyers = people[0], people[1:3]
    await day.mint(seller, 10_000)

    async def balance() -> int:
        return await lamports(h, market.oracle.pubkey())

    costs: dict[str, int] = {}
    await day.until_exportable(people[0], 100)
    before = await balance()
    now = await day.now()
    batched = [(p, p.meter.read(now, exported_wh=100)) for p in people[:batch]]
    await oracle_attest(day, batched, tables)
    costs[f"attestation (1/{batch} of a batch)"] = (before - await balance()) // batch
    before = await balance()
    offer = await day.offer(seller, 5_000)
    costs["offer_create"] = before - await balance()
    before = await balance()
    trades = [await day.open_trade(offer, buyer, 1_000) for buyer in buyers]
    costs["2 x trade_open"] = before - await balance()
    before = await balance()
    settles = [
        h.client.program.trade_settle(
            oracle=market.oracle.pubkey(),
            trade=t,
            receipt_hash=digest(str(t.address)),
            buyer=t.buyer,
            wh=t.wh,
            total_cents=t.total_cents,
        )
        for t in trades
    ]
    await h.chain.send(settles, [market.oracle])
    costs["2 x trade_settle, one transaction"] = before - await balance()
    before = await balance()
    offer = await h.client.offer(offer.address)
    await h.client.offer_cancel(payer=market.oracle, caller=seller.authority, offer=offer)
    costs["offer_cancel"] = before - await balance()
    return sum(costs.values()), costs


async def measure_rpc(settings: LocalChainSettings) -> Results:
    payer = Keypair()
    program_id = Pubkey.from_string(settings.program_id)
    with LocalValidator(settings, {str(payer.pubkey()): PAYER_LAMPORTS}) as validator:
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            return await measure(Harness(chain, payer, NishatiClient(chain, program_id), None))
        finally:
            await chain.close()


def cell(value: int | None) -> str:
    """A right-aligned number, or a dash where the chain could not run the case."""
    return f"{value:>14,}" if value is not None else f"{'-':>14}"


def per_reading(units: int | None, n: int) -> int | None:
    return None if units is None else units // n


def targets(name: str, results: Results) -> Report:
    """``results``' figures that have a target, each beside it, marked ok or MISSED."""
    report = Report(f"targets, {name}")
    for key, target in TARGETS.items():
        value = results.units[key]
        report.add(f"{key} CU", f"{value:,}", f"<= {target:,}", value <= target)
    low, high = min(results.open_units), max(results.open_units)
    report.add(
        f"trade_open CU over {len(results.open_units)} trade indexes",
        f"min {low:,}, max {high:,}",
        f"max - min <= {TARGET_OPEN_SPREAD}, max <= {TARGET_OPEN_MAX:,}",
        high - low <= TARGET_OPEN_SPREAD and high <= TARGET_OPEN_MAX,
        "each a new address with its own bump, each with its own payment reference",
    )
    for n in sorted({1, 4, results.max_table_readings}):
        units = results.units.get(f"meter_attest x{n}")
        if units is not None:
            per = units // n
            report.add(
                f"meter_attest CU per reading at {n}",
                f"{per:,}",
                f"<= {TARGET_PER_READING:,}",
                per <= TARGET_PER_READING,
            )
    fits = results.max_table_readings
    report.add(
        "largest attestation that fits, v0 + table",
        f"{fits} readings, {results.attest_bytes[fits][1]:,} bytes",
        f">= {TARGET_READINGS_PER_TX} in {PACKET_DATA_SIZE:,} bytes",
        fits >= TARGET_READINGS_PER_TX,
        f"legacy, without the table: {results.max_readings} readings",
    )
    size = results.attest_bytes[TARGET_READINGS_PER_TX][1]
    report.add(
        f"attestation of {TARGET_READINGS_PER_TX} readings, v0 + table",
        f"{size:,} bytes",
        f"<= {PACKET_DATA_SIZE:,}",
        size <= PACKET_DATA_SIZE,
        f"legacy, without the table: {results.attest_bytes[TARGET_READINGS_PER_TX][0]:,} bytes",
    )
    return report


def report(columns: dict[str, Results]) -> None:
    names = list(columns)
    first = columns[names[0]]
    print(f"{'compute units':<28}" + "".join(f"{n:>14}" for n in names))
    for key in first.units:
        row = "".join(cell(columns[n].units.get(key)) for n in names)
        print(f"{key:<28}{row}")
    for n in (1, 4, first.max_table_readings):
        key = f"meter_attest x{n}"
        per = "".join(cell(per_reading(columns[c].units.get(key), n)) for c in names)
        print(f"{f'  per reading at {n}':<28}{per}")
    print()
    print(f"ed25519 + meter_attest transaction bytes (limit {PACKET_DATA_SIZE:,}):")
    print(f"  {'readings':>8} {'legacy':>16} {'v0 + table':>16}")
    for n, (legacy, v0) in first.attest_bytes.items():
        cells = [
            f"{size:>7,} {'fits' if size <= PACKET_DATA_SIZE else 'too big':<8}"
            for size in (legacy, v0)
        ]
        print(f"  {n:>8} {cells[0]} {cells[1]}".rstrip())
    sizes = first.attest_bytes
    print(
        f"  bytes per extra reading: {sizes[2][0] - sizes[1][0]} legacy, "
        f"{sizes[2][1] - sizes[1][1]} v0; most readings per transaction: "
        f"{first.max_readings} legacy, {first.max_table_readings} v0 with the market's table "
        "(the oracle's way)"
    )
    print()
    print("a household's day, relayed by the oracle: its balance change per step, lamports")
    print("(rent put down for offers and trades comes back when they settle or are withdrawn;")
    print(" each meter signature in an attestation is charged like a transaction signature)")
    for step in first.day_fees:
        row = "".join(cell(columns[n].day_fees.get(step)) for n in names)
        print(f"  {step:<36}{row}")
    print(f"  {'total':<36}" + "".join(f"{columns[n].day_lamports:>14,}" for n in names))
    print()
    print("published figures of comparable programs (compute units):")
    for name, value, source in COMPARABLES:
        print(f"  {name:<44}{value:>7,}   {source}")
    for name, results in columns.items():
        targets(name, results).print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpc", action="store_true", help="also measure on surfpool")
    args = parser.parse_args()
    settings = LocalChainSettings()
    program_id = Pubkey.from_string(settings.program_id)
    chain = LiteSvmChain(program_id, settings.program_so)
    payer = Keypair()
    chain.fund(payer.pubkey(), PAYER_LAMPORTS)
    harness = Harness(chain, payer, NishatiClient(chain, program_id), chain)
    columns = {"LiteSVM 0.26": asyncio.run(measure(harness))}
    if args.rpc:
        columns["surfpool 1.5"] = asyncio.run(measure_rpc(settings))
    report(columns)


if __name__ == "__main__":
    main()
