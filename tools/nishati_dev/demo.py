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
cancelled and the energy goes back to its offer. A summary closes the day, and then each home's
forecast: the oracle forecasts every home with a meter every few seconds here (weather from a
local Open-Meteo, ``nishati_dev.open_meteo``), and the demo prints each home's forecast for the
next day beside what its meter reported over the replayed morning, with the oracle's advice
for it (the rule-based advisor without a Gemini key), all through the oracle's routes.
With ``--serve`` the market stays up after the day, with the web app (web/dist, built by
scripts/build-web.sh), until Ctrl-C or SIGTERM stops everything by PID: it prints the app's URL,
a seller's phone to sign in with (its code arrives at the SMS simulator's messages URL printed
beside it) and an operator added for the demo with a random password.
Run it with ``scripts/demo.sh [--serve]`` (which builds first) or ``python -m nishati_dev.demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table
from solders.pubkey import Pubkey

from nishati_client.market import MarketConfig
from nishati_client.phone import mask, normalise
from nishati_client.readings import export_secs
from nishati_client.trading import Offer
from nishati_dev.localday import (
    LOCAL_PHONE_SALT,
    as_environment,
    describe,
    household,
    kes,
    kwh,
    local_market_config,
)
from nishati_dev.localnet import LocalnetError
from nishati_dev.open_meteo import OpenMeteoStub
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
from nishati_dev.stack import Interrupts, Stack, local_stack, rows
from nishati_oracle.core.settings import ForecastSettings, ReadingSettings
from nishati_oracle.forecast.advice import Advice
from nishati_oracle.forecast.store import Outlook, OutlookStep
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
) -> tuple[list[Offer], list[str]]:
    """The three homes that exported most offer three quarters of it (enough for every buyer
    under any day's sky, where half left some buyer unserved on about one day in five); the
    oracle learns their phones (checked against their chain commitments) so it can pay them.
    The offers, and the sellers' phones in the same order."""
    homes = [(await market.h.client.household(home_address(market, m)), m) for m in meters]
    homes.sort(key=lambda pair: pair[0].total_exported_wh, reverse=True)
    offers = []
    phones = []
    for (home, meter), price in zip(homes, OFFER_PRICES, strict=False):
        phone = simulated_phone(meter.public_key)
        answer = await oracle.put(f"/api/v1/households/{home.address}/phone", json={"phone": phone})
        answer.raise_for_status()
        created = await market.h.client.offer_create(
            payer=market.oracle,
            authority=market.oracle,
            household=home,
            wh=home.total_exported_wh * 3 // 4,
            price_cents_per_kwh=price,
            expires_at=await market.now() + 3_600,
        )
        offer = await market.h.client.offer(created.address)
        offers.append(offer)
        phones.append(phone)
        print(f"home {mask(phone)} offers {kwh(offer.unreserved_wh)} at {kes(price)}/kWh")
    return offers, phones


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


# The oracle's least time between forecast rounds: the demo's homes are forecast within
# seconds of reporting.
DEMO_FORECAST_ROUND_SECS = 10.0
NAIROBI_UTC_OFFSET_SECS = 3 * 3_600
# The replayed late morning, in steps: 10:00 to 12:00 in Nairobi.
MORNING_HOURS = (10, 12)


def nairobi(unix: int) -> str:
    return time.strftime("%a %d %b %H:%M", time.gmtime(unix + NAIROBI_UTC_OFFSET_SECS))


def local_hour(step: OutlookStep) -> float:
    return ((step.end - 900 + NAIROBI_UTC_OFFSET_SECS) % 86_400) / 3_600


def the_day(outlook: Outlook) -> list[OutlookStep]:
    """The outlook's steps of the first day in Nairobi whose daylight (06:00 to 19:00) it
    covers whole: today's, early enough, else tomorrow's."""
    first = outlook.steps[0].end - 900
    midnight = first - (first + NAIROBI_UTC_OFFSET_SECS) % 86_400
    if first > midnight + 6 * 3_600:
        midnight += 86_400
    return [s for s in outlook.steps if midnight < s.end <= midnight + 86_400]


OUTLOOK = TypeAdapter(Outlook)


async def forecasts_ready(
    oracle: httpx.AsyncClient, households: Sequence[str], since: int, within_secs: float = 90
) -> dict[str, Outlook]:
    """Waits for a forecast round made from ``since`` on to have forecast every home, asking
    the oracle's forecast route."""
    deadline = time.monotonic() + within_secs
    ready: dict[str, Outlook] = {}
    while True:
        for address in households:
            if address in ready:
                continue
            response = await oracle.get(f"/api/v1/households/{address}/forecast")
            if response.status_code == 404:
                continue
            response.raise_for_status()
            outlook = OUTLOOK.validate_python(response.json())
            if outlook.made_at >= since:
                ready[address] = outlook
        if len(ready) == len(households):
            return ready
        if time.monotonic() > deadline:
            raise TimeoutError("the oracle's forecast rounds did not forecast every home")
        await asyncio.sleep(1)


async def forecasts(
    stack: Stack, meters: Sequence[SimulatedMeter], oracle: httpx.AsyncClient
) -> None:
    """Each home's forecast for the next day beside what its meter reported over the late
    morning it replayed, and the oracle's advice for it: the PV systems set, the forecasts and
    the advice read through the oracle's routes, as the operator."""
    market = stack.market
    households = [str(home_address(market, m)) for m in meters]
    for address, meter in zip(households, meters, strict=True):
        watts = round(meter.home.pv_kwp * 1_000)
        response = await oracle.put(
            f"/api/v1/households/{address}/pv-system",
            json={"capacity_wp": watts, "inverter_limit_w": watts},
        )
        response.raise_for_status()
    # A round made from the next whole second on has read the systems.
    set_at = int(time.time()) + 1
    outlooks = await forecasts_ready(oracle, households, set_at)
    times = last_late_morning(await market.now())
    first_day = the_day(next(iter(outlooks.values())))
    table = Table(
        title=f"Forecasts for {nairobi(first_day[0].end - 900)[:10]} beside the meters' "
        f"{MORNING_HOURS[0]}:00-{MORNING_HOURS[1]}:00 of {nairobi(times[0])[:10]} (Nairobi)"
    )
    for column in (
        "home",
        "source",
        "day: make / use",
        "day surplus p10..p90",
        "10-12 forecast make / use",
        "10-12 meter export / import",
        "advice (advisor)",
    ):
        table.add_column(column, overflow="fold")
    for address, meter in zip(households, meters, strict=True):
        outlook = outlooks[address]
        day = the_day(outlook)
        morning = [s for s in day if MORNING_HOURS[0] <= local_hour(s) < MORNING_HOURS[1]]
        reported = [energy_mwh(meter.home, a, b) for a, b in itertools.pairwise(times)]
        response = await oracle.get(f"/api/v1/households/{address}/advice")
        response.raise_for_status()
        advice = Advice.model_validate(response.json())
        table.add_row(
            f"{meter.home.pv_kwp} kWp",
            outlook.source.value,
            f"{kwh(sum(s.production_wh for s in day))} / {kwh(sum(s.consumption_wh for s in day))}",
            f"{kwh(sum(s.p10_wh for s in day))}..{kwh(sum(s.p90_wh for s in day))}",
            f"{kwh(sum(s.production_wh for s in morning))} / "
            f"{kwh(sum(s.consumption_wh for s in morning))}",
            f"{kwh(sum(e for e, _ in reported) // 1_000)} / "
            f"{kwh(sum(i for _, i in reported) // 1_000)}",
            f"{advice.action.value} ({advice.advisor.value}): {advice.explanation_en}",
        )
    table.caption = (
        "use: what the home imports, learned from the 15-minute steps its meter has reported; "
        "the demo replays its morning in a minute (readings signed seconds apart), so no step "
        "is reported yet: use is 0 and the band has no width until the homes have a history"
    )
    Console(width=200).print(table)


DEMO_OPERATOR = "demo-operator"


class DemoError(RuntimeError):
    """The demo could not set up what ``--serve`` offers."""


async def add_operator(stack: Stack) -> str:
    """Adds DEMO_OPERATOR with the oracle's own command on its database; its new random
    password."""
    password = secrets.token_urlsafe(18)
    added = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "nishati_oracle",
            "operator",
            "add",
            DEMO_OPERATOR,
            "--password-stdin",
        ],
        input=password + "\n",
        env={**os.environ, **as_environment(stack.oracle_settings)},
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise DemoError(f"adding the demo's operator failed: {added.stderr.strip()}")
    return password


def sign_ins(stack: Stack, phone: str, operator_password: str) -> str:
    """What --serve prints: the web app, and who may sign in to it and how."""
    web = f"{stack.oracle.url}/"
    if not (stack.oracle_settings.http.web_dir / "index.html").is_file():
        web += " (not built: run scripts/build-web.sh)"
    return rows(
        "the market stays open: Ctrl-C stops everything",
        [
            ("web app", web),
            ("household phone", phone),
            ("its sign-in code", f"{stack.sms.url}/messages?to=+{normalise(phone)}"),
            ("operator", DEMO_OPERATOR),
            ("its password", operator_password),
        ],
    )


async def run(settings: LocalChainSettings, serve: bool) -> int:
    """The market day; with ``serve``, then the market kept open until a signal. 0 once
    stopped, 1 if a service died while served, 130 if stopped during the day."""
    interrupts = Interrupts()
    try:
        return await market_day(settings, serve, interrupts)
    except asyncio.CancelledError:
        print("stopped during the day", flush=True)
        return 130


async def market_day(settings: LocalChainSettings, serve: bool, interrupts: Interrupts) -> int:
    program_id = Pubkey.from_string(settings.program_id)
    print(f"starting a local {settings.validator} validator with {settings.program_so.name}")
    with (
        tempfile.TemporaryDirectory(prefix="nishati-demo-") as directory,
        OpenMeteoStub(time.time) as weather,
    ):
        async with local_stack(
            Path(directory),
            settings,
            market_id=DEMO_MARKET_ID,
            config=demo_market_config,
            sim_settings={"callback_delay_secs": 0.5},
            readings=DEMO_READINGS,
            forecast=ForecastSettings(weather_url=weather.url, round_secs=DEMO_FORECAST_ROUND_SECS),
        ) as stack:
            print(f"validator ready at {stack.validator.rpc_url}; program {program_id}")
            print(describe(await stack.market.h.client.market(stack.market.address)))
            print(
                f"mosquitto on 127.0.0.1:{stack.broker.port}, Daraja simulator on "
                f"{stack.sim.url}, oracle on {stack.oracle.url}"
            )
            # The demo places the buyers' orders and reads every payment as the operator.
            operator = {"Authorization": f"Bearer {stack.operator_token}"}
            async with httpx.AsyncClient(
                base_url=stack.oracle.url, timeout=30, headers=operator
            ) as http:
                meters = await meters_over_mqtt(stack)
                offers, phones = await sellers_offer(stack.market, meters, http)
                opened = await buyers_buy(stack.market, offers, http)
                await outcomes(http, opened)
                await forecasts(stack, meters, http)
            if not serve:
                return 0
            print(sign_ins(stack, phones[0], await add_operator(stack)), flush=True)
            died = await interrupts.serve(stack.services)
            if died is not None:
                print(f"the {died.name} exited; its log: {died.log_path}", file=sys.stderr)
            print("stopping", flush=True)
    print("stopped", flush=True)
    return 0 if died is None else 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nishati_dev.demo", description=__doc__)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the day, keep the market and the web app running until Ctrl-C or SIGTERM",
    )
    args = parser.parse_args(argv)
    try:
        sys.exit(asyncio.run(run(LocalChainSettings(), args.serve)))
    except (LocalnetError, ServiceError, DemoError) as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
