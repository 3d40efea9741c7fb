"""The README's demo command runs a whole market day and prints what happened."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


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
    # Phone numbers appear only masked.
    assert "0712345600" not in out
    assert "254712345600" not in out + result.stderr
