"""The local market demo: a day in a Nairobi estate's solar market, all on this machine.

A market opens on the embedded defaults on the local stack (``nishati_dev.stack``: a local
validator, Mosquitto, the Daraja simulator and the oracle, on free ports). The test installer
registers six homes' meters, each meter proving it holds its key. The homes' rooftop solar
reports a late morning's signed readings through the broker to the oracle, which verifies,
stores and attests them, minting their exported energy. The morning is replayed in about a
minute, so the demo's market lets a meter export up to 1 MW (the local default is 10 kW),
and the oracle judges power by the same limit: the chain still holds every reading to it,
over its own clock, and the meters date their readings by the chain's time (a reading dated
before its meter's registration is refused). Three of the homes offer part of their energy;
eight neighbours buy through the oracle's API and pay by M-Pesa, here the Daraja simulator,
whose outcome each buyer's phone picks: most pay, some cancel or run short. Paid trades
settle on chain and the sellers are paid by B2C less the market fee; failed ones are
cancelled and the energy goes back to its offer. A summary closes the day.
Run it with ``scripts/demo.sh`` (which builds first) or ``python -m nishati_dev.demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from solders.pubkey import Pubkey

from nishati_client.market import MarketConfig
from nishati_client.phone import mask
from nishati_client.readings import export_secs
from nishati_client.trading import Offer
from nishati_dev.localday import (
    LOCAL_PHONE_SALT,
    describe,
    household,
    kes,
    kwh,
    local_market_config,
)
from nishati_dev.localnet import LocalnetError
from nishati_dev.processes import OracleService, ServiceError
from nishati_dev.sandbox import OpenMarket
from nishati_dev.settings import LocalChainSettings
from nishati_dev.simulate import (
    MqttTransport,
    SimulatedMeter,
    Tally,
    energy_mwh,
    grid,
    new_meter,
    register,
    simulated_phone,
)
from nishati_dev.stack import Stack, local_stack
from nishati_oracle.core.settings import ReadingSettings
from nishati_oracle.readings.clock import trailing_secs

DEMO_MARKET_ID = 1
# Two hours of a morning in about a minute, so a meter may export up to 1 MW.
DEMO_MAX_EXPORT_WATTS = 1_000_000


def demo_market_config(oracle: Pubkey) -> MarketConfig:
    """The local market, its meters allowed 1 MW (see the module)."""
    return replace(local_market_config(oracle), max_export_watts=DEMO_MAX_EXPORT_WATTS)


# The oracle attests at once.
DEMO_READINGS = ReadingSettings(attest_threshold_wh=0, attest_interval_secs=0.5)


SIMULATED_HOMES = 6
READING_INTERVAL_SECS = 300
NAIROBI_10AM_UTC_SECS = 7 * 3_600


def last_late_morning(now: int) -> range:
    """Reading times every 5 minutes over the last 10:00 to 12:00 in Nairobi that has passed."""
    day = 86_400
    start = now - now % day + NAIROBI_10AM_UTC_SECS
    if start + 2 * 3_600 > now:
        start -= day
    return grid(start, start + 2 * 3_600, READING_INTERVAL_SECS)


async def attested(oracle: OracleService, within_secs: float = 60) -> None:
    """Waits until the oracle's batcher has attested every stored reading."""
    deadline = time.monotonic() + within_secs
    while await asyncio.to_thread(oracle.unattested) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the oracle did not attest the readings in time")
        await asyncio.sleep(0.2)


async def exportable(market: OpenMarket, meters: Sequence[SimulatedMeter], wh: int) -> None:
    """Waits until the chain's clock, as the oracle reads it, lets every meter mint ``wh``
    since its last attestation."""
    client = market.h.client
    homes = [await client.household(home_address(market, m)) for m in meters]
    limit = (await client.market(market.address)).config.max_export_watts
    due = max(h.last_attested_at for h in homes) + export_secs(wh, limit)
    due += trailing_secs(DEMO_READINGS.chain_clock_secs)
    while await market.now() < due:  # noqa: ASYNC110 - the validator's clock, polled
        await asyncio.sleep(0.5)


async def meters_over_mqtt(stack: Stack) -> list[SimulatedMeter]:
    """Simulated meters publish to the broker; the oracle ingests and attests them."""
    market = stack.market
    rng = random.Random(2026)  # noqa: S311 - the same homes every run, not a secret
    # The same homes under the same sky every run, so the day's trades are the same too.
    meters = [
        new_meter(market.address, rng, weather=f"demo-home-{n}") for n in range(SIMULATED_HOMES)
    ]
    await register(
        market.h.client,
        market.oracle,
        market.address,
        meters,
        installer=market.installer,
        phone_salt=LOCAL_PHONE_SALT,
    )
    tally = Tally()
    transport = MqttTransport(
        stack.oracle_settings, market.address, [m.public_key for m in meters], tally
    )
    await transport.connect()
    times = last_late_morning(await market.now())
    # The meters' clocks: the chain's time from now on, a second a reading, while they
    # measure the late morning.
    clock = await market.now()
    # The first attested reading of a meter is its baseline; the rest mint the export, once
    # the chain's time since the baseline allows it.
    steps = list(itertools.pairwise(times))
    most_wh = max(sum(energy_mwh(m.home, a, b)[0] for a, b in steps) for m in meters) // 1_000
    for batch, start in ((times[:1], 0), (times[1:], 1)):
        if start:
            await exportable(market, meters, most_wh)
        for n, t in enumerate(batch, start):
            await transport.send([m.read_at(t, signed_at=clock + n) for m in meters])
        await transport.drain()
        await attested(stack.oracle)
    await transport.close()
    print(f"{SIMULATED_HOMES} meters published {tally.line()}")
    for m in meters:
        household = await market.h.client.household(home_address(market, m))
        print(
            f"  home with {m.home.pv_kwp} kWp: {len(times)} readings, counter "
            f"{household.last_counter} on chain, minted {kwh(household.total_exported_wh)}"
        )
    return meters


def home_address(market: OpenMarket, meter: SimulatedMeter) -> Pubkey:
    return market.h.client.program.household_address(market.address, meter.owner)


# The buyers: the last two digits of a phone pick the simulator's outcome (see
# nishati_dev.daraja_sim.scenarios): 00 pays, 32 cancels the prompt, 11 has too little balance.
BUYERS = [
    ("Otieno", "0712345600", 600),
    ("Akinyi", "0722000100", 700),
    ("Kamau", "0733000200", 500),
    ("Njeri", "0744000332", 500),
    ("Mwangi", "0755000400", 800),
    ("Chebet", "0766000511", 600),
    ("Wafula", "0777000600", 550),
    ("Achieng", "0788000700", 550),
]
OFFER_PRICES = [2_200, 2_500, 2_800]  # KES cents per kWh, one per seller


async def sellers_offer(
    market: OpenMarket, meters: list[SimulatedMeter], oracle: httpx.AsyncClient
) -> list[Offer]:
    """The three homes that exported most offer half of it; the oracle learns their phones
    (checked against their chain commitments) so it can pay them."""
    homes = [(await market.h.client.household(home_address(market, m)), m) for m in meters]
    homes.sort(key=lambda pair: pair[0].total_exported_wh, reverse=True)
    offers = []
    for (home, meter), price in zip(homes, OFFER_PRICES, strict=False):
        phone = simulated_phone(meter.public_key)
        answer = await oracle.put(f"/api/v1/households/{home.address}/phone", json={"phone": phone})
        answer.raise_for_status()
        created = await market.h.client.offer_create(
            payer=market.oracle,
            authority=market.oracle,
            household=home,
            wh=home.total_exported_wh // 2,
            price_cents_per_kwh=price,
            expires_at=await market.now() + 3_600,
        )
        offer = await market.h.client.offer(created.address)
        offers.append(offer)
        print(f"home {mask(phone)} offers {kwh(offer.unreserved_wh)} at {kes(price)}/kWh")
    return offers


async def buyers_buy(
    market: OpenMarket, offers: list[Offer], oracle: httpx.AsyncClient
) -> list[dict[str, Any]]:
    """Each neighbour buys from the cheapest offer with enough left, through the API; the
    simulator prompts their phone and calls back."""
    opened = []
    for name, phone, wh in BUYERS:
        await household(market, phone, LOCAL_PHONE_SALT)
        current = [await market.h.client.offer(o.address) for o in offers]
        offer = min(
            (o for o in current if o.unreserved_wh >= wh),
            key=lambda o: o.price_cents_per_kwh,
            default=current[0],
        )
        answer = await oracle.post(
            "/api/v1/trades", json={"offer": str(offer.address), "wh": wh, "phone": phone}
        )
        if answer.status_code != 201:
            print(f"{name} could not buy: {answer.json()}")
            continue
        trade = answer.json()
        opened.append({**trade, "name": name, "phone": phone})
        print(
            f"{name} ({mask(phone)}) buys {kwh(wh)} for {kes(trade['total_cents'])}: "
            f"STK Push {trade['checkout_request_id']}"
        )
    return opened


async def outcomes(oracle: httpx.AsyncClient, opened: list[dict[str, Any]]) -> None:
    """Waits for every trade to end, then prints each and the day's totals."""
    deadline = time.monotonic() + 120
    ended: list[dict[str, Any]] = []
    for trade in opened:
        while True:
            payment = (await oracle.get(f"/api/v1/payments/{trade['trade_id']}")).json()
            if payment["final"]:
                ended.append({**trade, **payment})
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"trade {trade['trade_id']} is still {payment['state']}")
            await asyncio.sleep(0.2)
    print("the day's trades:")
    for t in ended:
        how = (
            f"paid, receipt {t['mpesa_receipt']}; seller paid KES {t['payout_kes']}"
            if t["state"] == "payout_confirmed"
            else f"{t['state']} (M-Pesa result {t['result_code']}): energy back to the offer"
        )
        print(f"  {t['name']:<8} {kwh(t['wh'])} {kes(t['total_cents']):>11}  {how}")
    paid = [t for t in ended if t["state"] == "payout_confirmed"]
    print(
        f"summary: {len(paid)} of {len(ended)} trades settled, {kwh(sum(t['wh'] for t in paid))} "
        f"delivered; buyers paid {kes(sum(t['total_cents'] for t in paid))}, sellers received "
        f"{kes(100 * sum(t['payout_kes'] for t in paid))}, market fees "
        f"{kes(sum(t['fee_cents'] for t in paid))}; {len(ended) - len(paid)} cancelled"
    )


async def run(settings: LocalChainSettings) -> None:
    program_id = Pubkey.from_string(settings.program_id)
    print(f"starting a local {settings.validator} validator with {settings.program_so.name}")
    with tempfile.TemporaryDirectory(prefix="nishati-demo-") as directory:
        async with local_stack(
            Path(directory),
            settings,
            market_id=DEMO_MARKET_ID,
            config=demo_market_config,
            sim_settings={"callback_delay_secs": 0.5},
            readings=DEMO_READINGS,
        ) as stack:
            print(f"validator ready at {stack.validator.rpc_url}; program {program_id}")
            print(describe(await stack.market.h.client.market(stack.market.address)))
            print(
                f"mosquitto on 127.0.0.1:{stack.broker.port}, Daraja simulator on "
                f"{stack.sim.url}, oracle on {stack.oracle.url}"
            )
            async with httpx.AsyncClient(base_url=stack.oracle.url, timeout=30) as http:
                meters = await meters_over_mqtt(stack)
                offers = await sellers_offer(stack.market, meters, http)
                opened = await buyers_buy(stack.market, offers, http)
                await outcomes(http, opened)


def main(argv: Sequence[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m nishati_dev.demo", description=__doc__).parse_args(argv)
    try:
        asyncio.run(run(LocalChainSettings()))
    except (LocalnetError, ServiceError) as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
