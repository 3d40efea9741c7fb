"""The README's demo command runs a whole market day and prints what happened; with --serve it
keeps the market and the web app up for the sign-ins it printed until SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no types-psutil in the venv
import pytest

from tests.harness.polling import eventually


@pytest.mark.rpc
def test_demo_runs_a_market_day() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nishati_dev.demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Printed when an assertion below fails: the whole day, not pytest's shortened repr.
    print(out)
    assert "Market 1" in out
    assert "fee               1.50 % (150 bps)" in out
    assert "price bounds      KES 10.00 to KES 60.00 per kWh" in out
    assert "payment deadline  900 s" in out
    # Six simulated homes report a late morning over MQTT; the oracle attests every reading.
    assert "6 meters published sent 150, broker acked 150, rejected 0" in out
    homes = [line for line in out.splitlines() if line.startswith("  home with")]
    assert len(homes) == 6
    for home in homes:
        assert "25 readings, counter 25 on chain" in home
        assert float(home.rsplit("minted ", 1)[1].split()[0]) > 0
    assert len(re.findall(r"^home 2547\*\*\*\*\d{4} offers ", out, re.MULTILINE)) == 3
    # Every buyer's order went through; phones pick the simulator's outcome.
    assert len(re.findall(r"STK Push ws_CO_", out)) == 8
    # Which offer a buyer meets, and so the price, follows from the energy the homes minted.
    assert re.search(r"Njeri    0\.500 kWh   KES \d+\.00  cancelled \(M-Pesa result 1032\)", out)
    assert re.search(r"Chebet   0\.600 kWh   KES \d+\.00  cancelled \(M-Pesa result 1\)", out)
    assert len(re.findall(r"paid, receipt \w{10}; seller paid KES \d+", out)) == 6
    summary = re.search(
        r"summary: 6 of 8 trades settled, 3.700 kWh delivered; buyers paid KES (\d+).00, "
        r"sellers received KES (\d+).00, market fees KES (\d+).00; 2 cancelled",
        out,
    )
    assert summary is not None, out
    paid, received, fees = (int(x) for x in summary.groups())
    assert paid == received + fees
    # Each home's forecast for the day from the local Open-Meteo's weather, beside its meter's
    # morning, and the oracle's advice: the rule-based advisor's, since the demo has no Gemini key.
    assert "Forecasts for" in out
    forecast_rows = re.findall(
        r"^│ (\d\.\d) kWp │ weather │ ([\d.]+) kWh / [\d.]+ kWh .*│ (sell|buy|hold) \((\w+)\): ",
        out,
        re.M,
    )
    assert len(forecast_rows) == 6, out
    assert {advisor for *_, advisor in forecast_rows} == {"rules"}
    for kwp, day_kwh, *_ in forecast_rows:
        # A Nairobi rooftop makes between 1 and 7 kWh per kWp on a day.
        assert float(kwp) < float(day_kwh) < 7 * float(kwp)
    # Phone numbers appear only masked.
    assert "0712345600" not in out
    assert "254712345600" not in out + result.stderr


ROOT = Path(__file__).resolve().parents[1]
WEB_INDEX = ROOT / "web" / "dist" / "index.html"
ROW = re.compile(r"^  (\S(?:.*?\S)?) {2,}(\S.*)$")
SERVE_START_SECS = 300


def _read(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``python -m nishati_dev.demo --serve`` with the web app built, once the day is over and
    it has printed its sign-ins: the process and every ``  label   value`` line it printed."""
    if not WEB_INDEX.is_file():
        subprocess.run([str(ROOT / "scripts" / "build-web.sh")], check=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "nishati_dev.demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read, args=(process, lines), daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + SERVE_START_SECS
    try:
        while not printed or not printed[-1].startswith("  its password"):
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, "\n".join(printed)
            printed.append(line)
        yield process, {m[1]: m[2] for line in printed if (m := ROW.match(line))}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)


@pytest.mark.rpc
async def test_demo_serves_the_market_after_the_day_with_the_sign_ins_it_printed(
    served: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, rows = served
    web = rows["web app"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", web), web
    phone = rows["household phone"]
    codes = rows["its sign-in code"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/messages\?to=\+2547\d{8}", codes), codes
    async with httpx.AsyncClient(base_url=web, timeout=30) as app:
        index = await app.get("/")
        assert index.status_code == 200
        assert index.text == WEB_INDEX.read_text()
        assert (await app.post("/api/v1/auth/code", json={"phone": phone})).status_code == 202

        async def texted() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await app.get(codes)).json()
            return found

        code = re.search(r"[0-9]{6}", (await eventually(texted, "the code"))[-1]["message"])
        assert code is not None
        household = await app.post(
            "/api/v1/auth/session", json={"phone": phone, "code": code.group(0)}
        )
        assert household.status_code == 200, household.text
        assert household.json()["role"] == "household"
        # The session cookie the sign-in set is kept and names the same household.
        assert (await app.get("/api/v1/auth/me")).json() == household.json()
    async with httpx.AsyncClient(base_url=web, timeout=30) as app:
        operator = await app.post(
            "/api/v1/auth/operator",
            json={"username": rows["operator"], "password": rows["its password"]},
        )
        assert operator.json() == {"role": "operator", "username": rows["operator"]}, operator.text
        wrong = await app.post(
            "/api/v1/auth/operator",
            json={"username": rows["operator"], "password": rows["its password"] + "x"},
        )
        assert wrong.status_code == 401, wrong.text

    # SIGTERM stops it and everything it started.
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 4, children
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
