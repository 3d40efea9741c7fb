"""The ``nishati`` command where no cluster is needed: what it refuses before connecting, and
how it prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.cli.output import details, utc
from nishati_client.keys import write_keypair
from tests.client.support import OTHER_DIGITS, Cli, written_in

SALT = "5a17" * 8


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working directory without a ``.env``, a meter key in it, and an RPC URL nothing
    answers."""
    monkeypatch.chdir(tmp_path)
    for name in ("NISHATI_KEYPAIR", "NISHATI_PROGRAM_ID", "NISHATI_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NISHATI_RPC_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NISHATI_PHONE_SALT", SALT)
    write_keypair(tmp_path / "meter.json", Keypair())


@pytest.mark.parametrize("script", OTHER_DIGITS)
def test_a_phone_in_other_digits_is_refused_before_connecting(cli: Cli, script: str) -> None:
    meter, phone = str(Pubkey.new_unique()), written_in(script, "0712345678")
    message = cli.fails("household", "register", "1", "--phone", phone, "--meter", meter)
    assert message == (
        "not a Kenyan mobile number: use the digits 0-9, as 07XXXXXXXX, 01XXXXXXXX, "
        "+2547XXXXXXXX or 2547XXXXXXXX"
    )


def sign(*options: str) -> tuple[str, ...]:
    return ("reading", "sign", "--meter-keypair", "meter.json", "--exported-wh", "0", *options)


@pytest.mark.parametrize("script", OTHER_DIGITS)
@pytest.mark.parametrize("market_id", ["3", "13"])
def test_a_market_id_in_other_digits_is_refused(cli: Cli, script: str, market_id: str) -> None:
    market = market_id[:-1] + written_in(script, market_id[-1])
    message = cli.fails(*sign("--market", market, "--counter", "1"))
    assert message == f"market id {market!r} is not written in the digits 0-9"


@pytest.mark.parametrize("script", OTHER_DIGITS)
def test_an_amount_in_other_digits_is_a_usage_error(cli: Cli, script: str) -> None:
    message = cli.fails(*sign("--market", "1", "--counter", written_in(script, "12")), code=2)
    assert message.startswith("Invalid value for '--counter': Input should be a valid integer")


def test_unix_times_print_as_iso_utc_dates() -> None:
    assert utc(1_796_276_400) == "2026-12-03T05:40:00Z"
    assert utc(0) == "1970-01-01T00:00:00Z"  # LiteSVM's clock starts there
    assert utc(2**63 - 1) == str(2**63 - 1)  # beyond any calendar: the number itself
    event = {"offer": "Offer1", "wh": 2_000, "expires_at": 1_796_276_400, "created_at": 0}
    assert details(event) == (
        "offer=Offer1, wh=2000, expires_at=2026-12-03T05:40:00Z, created_at=1970-01-01T00:00:00Z"
    )
