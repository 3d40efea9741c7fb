"""Every test's fixtures, from the harness modules."""

pytest_plugins = [
    "tests.harness.chain",
    "tests.harness.broker",
    "tests.harness.oracle",
    "tests.harness.daraja_sim",
]
