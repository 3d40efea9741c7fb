"""Every test's fixtures, from the harness modules, and the suites' own options."""

import os

import pytest

# Nothing leaves the machine: an oracle a test starts, in-process or as a child, asks for its
# weather at a loopback port that refuses (its forecasts fall back to clear sky); a test of the
# forecasts names its own local Open-Meteo.
os.environ.setdefault("NISHATI_FORECAST_WEATHER_URL", "http://127.0.0.1:9")

pytest_plugins = [
    "tests.harness.chain",
    "tests.harness.broker",
    "tests.harness.oracle",
    "tests.harness.daraja_sim",
    "tests.harness.cli",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nishati", "Nishati's suites")
    group.addoption(
        "--chaos-trades",
        type=int,
        default=200,
        help="trades the crash test (tests/trading/test_crashes.py) stores at least",
    )
    group.addoption(
        "--chaos-kills",
        type=int,
        default=20,
        help="oracle SIGKILLs the crash test makes at least",
    )
