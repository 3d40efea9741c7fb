"""The README's demo command prints the initialised market."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.rpc
def test_demo_prints_the_initialised_market() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nishati_oracle.demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "market_initialize confirmed" in out
    assert "Market 1" in out
    assert "fee               1.50 % (150 bps)" in out
    assert "price bounds      KES 10.00 to KES 60.00 per kWh" in out
    assert "payment deadline  900 s" in out
    assert "paused            no" in out
