"""DEVELOPING.md's local stack: started as an operator would, driven only through what it printed,
then stopped with Ctrl-C, leaving nothing running. It is the market's honest path end to end
through the oracle: the installer registered the seller's meter, one signed reading over HTTP
mints exactly its export, and one trade paid through the Daraja simulator settles its energy to
the buyer who paid."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no types-psutil in the venv
import pytest
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain, cluster_time
from nishati_client.keys import ed25519_private_key, load_keypair
from nishati_client.program import NishatiClient
from nishati_client.readings import Reading, export_secs, sign
from nishati_dev.settings import LocalChainSettings
from nishati_oracle.readings.clock import trailing_secs
from tests.harness.polling import eventually

START_SECS = 240
ROW = re.compile(r"^  (\S(?:.*?\S)?) {2,}(\S.*)$")
EXPORTED_WH = 2_000
OFFER_WH = 1_000
FREE_PORTS = ["--rpc-port", "0", "--oracle-port", "0", "--mqtt-port", "0", "--daraja-port", "0"]
# The program's highest export limit: the seller's meter may mint EXPORTED_WH in seconds.
MAX_EXPORT_WATTS = 100_000_000


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    printed: list[str]

    @property
    def rows(self) -> dict[str, str]:
        """Every ``  label   value`` line it printed."""
        return {m[1]: m[2] for line in self.printed if (m := ROW.match(line))}


def _read(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture
def stack() -> Iterator[RunningStack]:
    """``python -m nishati_dev.stack`` on free ports, until it prints that it is ready."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nishati_dev.stack",
            *FREE_PORTS,
            "--max-export-watts",
            str(MAX_EXPORT_WATTS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read, args=(process, lines), daemon=True).start()
    running = RunningStack(process, [])
    deadline = time.monotonic() + START_SECS
    try:
        while not running.printed or not running.printed[-1].startswith("ready:"):
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, "\n".join(running.printed)
            running.printed.append(line)
        yield running
        # The test itself stops it; this is for a test that failed first.
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)


@pytest.mark.rpc
async def test_the_stack_takes_a_reading_and_a_trade_through_the_urls_it_printed(
    stack: RunningStack, settings: LocalChainSettings
) -> None:
    rows = stack.rows
    urls = (
        "rpc",
        "websocket",
        "oracle",
        "docs",
        "metrics",
        "mqtt",
        "daraja simulator",
        "sms simulator",
    )
    for name in urls:
        assert re.match(r"(https?|wss?|mqtt)://127\.0\.0\.1:\d+", rows[name]), (name, rows[name])
    assert rows["docs"] == f"{rows['oracle']}/docs"
    for name in ("payer keypair", "admin keypair", "oracle keypair", "oracle settings"):
        assert Path(rows[name].split(" (")[0]).is_file(), name
    assert "NISHATI_PAYMENTS='simulator'" in Path(rows["oracle settings"]).read_text()

    program_id = Pubkey.from_string(settings.program_id)
    chain = RpcChain(rows["rpc"], program_id, settings.commitment)
    client = NishatiClient(chain, program_id)
    oracle_key = load_keypair(Path(rows["oracle keypair"]))
    market = Pubkey.from_string(rows["market"])
    seller = Pubkey.from_string(rows["seller household"])
    try:
        async with (
            httpx.AsyncClient(base_url=rows["oracle"], timeout=30) as oracle,
            httpx.AsyncClient(base_url=rows["daraja simulator"], timeout=30) as sim,
            httpx.AsyncClient(base_url=rows["sms simulator"], timeout=30) as sms,
        ):
            assert (await oracle.get("/docs")).status_code == 200
            assert "nishati_" in (await oracle.get("/metrics")).text

            # One signed reading from the seller's meter, over HTTP: accepted, then attested,
            # once the chain's time since its baseline, as the oracle reads it, lets the meter
            # have exported it.
            home = await client.household(seller)
            due = home.last_attested_at + export_secs(EXPORTED_WH, MAX_EXPORT_WATTS)
            due += trailing_secs()

            async def exportable() -> bool:
                return await cluster_time(chain) >= due

            await eventually(exportable, "the chain's clock past the export limit")
            meter_key = ed25519_private_key(load_keypair(Path(rows["seller meter key"])))
            reading = Reading.for_market(
                market,
                home.last_counter + 1,
                await cluster_time(chain),
                home.meter_exported_wh + EXPORTED_WH,
                home.meter_imported_wh,
            )
            signed = sign(reading, meter_key)
            answer = await oracle.post(
                "/api/v1/readings",
                json={
                    "message": signed.message.hex(),
                    "signature": signed.signature.hex(),
                    "meter": rows["seller meter"],
                },
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 1, answer.text

            async def attested() -> bool:
                found = await client.household(seller)
                return found.last_counter == reading.counter

            await eventually(attested, "the reading attested on chain")
            home = await client.household(seller)
            assert await client.energy_balance(home.energy_account) == EXPORTED_WH

            # One trade: the seller offers, the buyer orders, the simulator calls back, settled.
            await client.offer_create(
                payer=oracle_key,
                authority=oracle_key,
                household=home,
                wh=OFFER_WH,
                price_cents_per_kwh=2_500,
                expires_at=await cluster_time(chain) + 3_600,
            )
            order = {
                "type": "BUY",
                "amount": "1",
                "price": "30",
                "phone": rows["buyer phone"],
                "seller_phone": rows["seller phone"],
            }
            buyer = await client.household(Pubkey.from_string(rows["buyer household"]))
            buyer_before = await client.energy_balance(buyer.energy_account)
            # Placed as an integration would, with the operator's token.
            operator = {"Authorization": f"Bearer {rows['operator token']}"}
            answer = await oracle.post("/api/execute_trade", json=order, headers=operator)
            assert answer.status_code == 201, answer.text
            trade = answer.json()
            assert trade["wh"] == OFFER_WH

            async def called_back() -> list[dict[str, Any]]:
                records = (await sim.get("/simulator/callbacks", params={"kind": "stk"})).json()
                return [
                    r
                    for r in records
                    if r["reference"] == trade["checkout_request_id"]
                    and r["outcome"] == "delivered"
                ]

            await eventually(called_back, "the simulator's STK callback delivered")

            async def final() -> dict[str, Any] | None:
                payment: dict[str, Any] = (
                    await oracle.get(f"/api/v1/payments/{trade['trade_id']}", headers=operator)
                ).json()
                return payment if payment["final"] else None

            payment = await eventually(final, "the trade finished", within_secs=90)
            assert payment is not None
            assert payment["state"] == "payout_confirmed", payment
            assert "settled" in [h["state"] for h in payment["history"]]
            assert payment["mpesa_receipt"]
            # The energy went to the buyer who paid, all of it, and nowhere else.
            assert await client.energy_balance(buyer.energy_account) == buyer_before + OFFER_WH
            assert await client.energy_balance(home.energy_account) == EXPORTED_WH - OFFER_WH

            # The buyer signs in with the code the SMS simulator took, and sees its trade.
            phone = rows["buyer phone"]
            asked = await oracle.post("/api/v1/auth/code", json={"phone": phone})
            assert asked.status_code == 202, asked.text

            async def texted() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = (await sms.get(f"/messages?to=+{phone}")).json()
                return found

            code = re.search(r"[0-9]{6}", (await eventually(texted, "the code"))[-1]["message"])
            assert code is not None
            signed_in = await oracle.post(
                "/api/v1/auth/session", json={"phone": phone, "code": code.group(0)}
            )
            assert signed_in.json() == {"role": "household", "household": rows["buyer household"]}
            mine = await oracle.get(f"/api/v1/payments/{trade['trade_id']}")
            assert mine.json()["state"] == "payout_confirmed", mine.text
    finally:
        await chain.close()

    # Ctrl-C stops it and everything it started.
    children = psutil.Process(stack.process.pid).children(recursive=True)
    assert len(children) >= 4, children
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    assert not Path(rows["directory"].split(" (")[0]).exists()
