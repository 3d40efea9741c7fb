"""The README's demo command prints the market and the day it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.rpc
def test_demo_runs_a_market_day() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nishati_oracle.demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Market 1" in out
    assert "fee               1.50 % (150 bps)" in out
    assert "price bounds      KES 10.00 to KES 60.00 per kWh" in out
    assert "payment deadline  900 s" in out
    assert "paused            no" in out
    assert "minted 3.200 kWh" in out
    assert "Wanjiru offers 2.500 kWh at KES 25.00/kWh" in out
    # 1.5 kWh at KES 25/kWh is KES 37.50, charged as KES 38.
    assert "Otieno takes 1.500 kWh: KES 38.00" in out
    assert "balances: Wanjiru 0.700 kWh, Otieno 1.500 kWh, still offered 1.000 kWh" in out
    # Six simulated homes report a late morning over MQTT; the oracle attests every reading.
    assert "6 meters published sent 150, broker acked 150, rejected 0" in out
    homes = [line for line in out.splitlines() if line.startswith("  home with")]
    assert len(homes) == 6
    for home in homes:
        assert "25 readings, counter 25 on chain" in home
        minted_kwh = float(home.rsplit("minted ", 1)[1].split()[0])
        assert minted_kwh > 0
