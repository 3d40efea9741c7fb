"""Every test's fixtures, from the harness modules, and the suites' own options."""

import pytest

pytest_plugins = [
    "tests.harness.chain",
    "tests.harness.broker",
    "tests.harness.oracle",
    "tests.harness.daraja_sim",
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
