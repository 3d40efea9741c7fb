"""``python -m nishati_oracle`` with bad settings: one line per problem naming the variable,
exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD_SETTINGS = 2


def run_oracle(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("NISHATI_")}
    return subprocess.run(
        [sys.executable, "-m", "nishati_oracle"],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def ready(tmp_path: Path) -> dict[str, str]:
    """Settings the oracle would start with, but for what a test takes away or breaks."""
    key = tmp_path / "oracle.json"
    key.write_text("[]")
    return {
        "NISHATI_MARKET": "11111111111111111111111111111111",
        "NISHATI_ORACLE_KEYPAIR": str(key),
    }


def test_the_simulator_without_its_url_is_named(ready: dict[str, str], tmp_path: Path) -> None:
    done = run_oracle({**ready, "NISHATI_PAYMENTS": "simulator"}, tmp_path)
    assert done.returncode == BAD_SETTINGS
    lines = done.stderr.splitlines()
    assert "nishati-oracle: payments=simulator needs NISHATI_DARAJA_URL" in lines
    assert "nishati-oracle: payments=simulator needs NISHATI_DARAJA_CONSUMER_KEY" in lines
    assert all(line.startswith("nishati-oracle: ") for line in lines)
    assert "Traceback" not in done.stderr


def test_an_invalid_port_names_its_variable(ready: dict[str, str], tmp_path: Path) -> None:
    done = run_oracle({**ready, "NISHATI_HTTP_PORT": "eighty", "NISHATI_MODE": "prod"}, tmp_path)
    assert done.returncode == BAD_SETTINGS
    assert done.stderr.splitlines() == [
        "nishati-oracle: NISHATI_MODE: Input should be 'development' or 'production'",
        "nishati-oracle: NISHATI_HTTP_PORT: Input should be a valid integer, unable to parse "
        "string as an integer",
    ]
    assert "eighty" not in done.stderr


def test_missing_service_settings_are_named(tmp_path: Path) -> None:
    done = run_oracle({}, tmp_path)
    assert done.returncode == BAD_SETTINGS
    assert done.stderr.splitlines() == [
        "nishati-oracle: NISHATI_MARKET is not set",
        "nishati-oracle: NISHATI_ORACLE_KEYPAIR is not set",
    ]
