"""The ``nishati`` command where no cluster is needed: what it refuses before connecting, and
how it prints."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
import typer
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from typer._click.core import Command  # typer's own click, not re-exported
from typer.core import TyperGroup

from nishati_client.cli import app
from nishati_client.cli.output import details, utc
from nishati_client.idl import IDL_PROGRAM_ID
from nishati_client.keys import ed25519_private_key, load_keypair, write_keypair
from nishati_client.pda import household_address, market_address
from nishati_client.registration import sign_registration, verify_meter_proof
from tests.client.support import OTHER_DIGITS, Cli, written_in

SALT = "5a17" * 8
PROGRAM_ID = Pubkey.from_string(IDL_PROGRAM_ID)


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
    write_keypair(tmp_path / "installer.json", Keypair())
    write_keypair(tmp_path / "owner.json", Keypair())


@pytest.mark.parametrize("script", OTHER_DIGITS)
def test_a_phone_in_other_digits_is_refused_before_connecting(cli: Cli, script: str) -> None:
    meter, phone = str(Pubkey.new_unique()), written_in(script, "0712345678")
    message = cli.fails(
        "household", "register", "1", "--phone", phone, "--meter", meter,
        "--installer-keypair", "installer.json",
    )  # fmt: skip
    assert message == (
        "not a Kenyan mobile number: use the digits 0-9, as 07XXXXXXXX, 01XXXXXXXX, "
        "+2547XXXXXXXX or 2547XXXXXXXX"
    )


def register(*options: str) -> tuple[str, ...]:
    return (
        "--keypair", "owner.json", "household", "register", "1", "--phone", "0712345678",
        "--installer-keypair", "installer.json", *options,
    )  # fmt: skip


def test_a_meter_proves_its_key_for_one_household(cli: Cli) -> None:
    """``meter prove`` signs what the firmware will: the registration to the owner's household."""
    owner = load_keypair(Path("owner.json")).pubkey()
    proved = cli.json(
        "meter", "prove", "--market", "1", "--meter-keypair", "meter.json", "--owner", str(owner),
        "--out", "proof.hex",
    )  # fmt: skip
    market = market_address(PROGRAM_ID, 1)[0]
    household = household_address(PROGRAM_ID, market, owner)[0]
    assert (proved["market"], proved["household"]) == (str(market), str(household))
    meter = load_keypair(Path("meter.json"))
    proof = bytes.fromhex(proved["proof"])
    assert proof == sign_registration(ed25519_private_key(meter), market, household)
    verify_meter_proof(market, household, meter.pubkey(), proof)
    assert Path("proof.hex").read_text() == proof.hex() + "\n"
    # The same proof for the household named by its address.
    again = cli.json(
        "meter", "prove", "--market", str(market), "--meter-keypair", "meter.json",
        "--household", str(household),
    )  # fmt: skip
    assert again["proof"] == proved["proof"]


def test_a_meter_proof_for_another_household_is_refused_before_connecting(cli: Cli) -> None:
    meter = load_keypair(Path("meter.json"))
    elsewhere = sign_registration(
        ed25519_private_key(meter), Pubkey.new_unique(), Pubkey.new_unique()
    )
    message = cli.fails(*register("--meter", "meter.json", "--meter-proof", elsewhere.hex()))
    assert message.startswith(f"the proof is not meter {meter.pubkey()}'s signature")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ((), "name the meter: --meter KEY, or --meter-keypair PATH for a test meter"),
        (("--meter", "meter.json"), "the meter must prove it holds its key: --meter-proof"),
        (("--meter", "meter.json", "--meter-proof", "abcd"), "--meter-proof is 2 bytes, not a"),
        (("--meter", "meter.json", "--meter-proof", "xyz"), "--meter-proof is neither a signature"),
        (
            ("--meter", str(Pubkey.new_unique()), "--meter-keypair", "meter.json"),
            "is not --meter-keypair's key",
        ),
    ],
    ids=["no-meter", "no-proof", "short-proof", "not-hex", "two-meters"],
)
def test_a_registration_without_a_good_meter_proof_is_refused_before_connecting(
    cli: Cli, options: tuple[str, ...], problem: str
) -> None:
    assert problem in cli.fails(*register(*options))


def test_a_good_meter_proof_goes_on_to_the_cluster(cli: Cli) -> None:
    """From a test meter's keypair, or from a file of the signature's 64 bytes (here no
    cluster answers)."""
    message = cli.fails(*register("--meter-keypair", "meter.json"))
    assert message.startswith("no Solana JSON-RPC answers at http://127.0.0.1:9 (")
    meter = load_keypair(Path("meter.json"))
    market = market_address(PROGRAM_ID, 1)[0]
    household = household_address(PROGRAM_ID, market, load_keypair(Path("owner.json")).pubkey())
    Path("proof.bin").write_bytes(
        sign_registration(ed25519_private_key(meter), market, household[0])
    )
    message = cli.fails(*register("--meter", "meter.json", "--meter-proof", "proof.bin"))
    assert message.startswith("no Solana JSON-RPC answers at http://127.0.0.1:9 (")


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


@pytest.mark.parametrize(
    "amount", ["0", "0.0", "-1", "1.0000000001", "1e3", "two", written_in("arabic-indic", "2")]
)
def test_an_amount_of_sol_that_is_not_one(cli: Cli, amount: str) -> None:
    message = cli.fails("wallet", "fund", str(Pubkey.new_unique()), "--sol", amount, code=2)
    assert message == (
        f"Invalid value for '--sol': {amount!r} is not an amount of SOL above 0 "
        "(e.g. 2 or 0.5, at most 9 decimals)"
    )


def test_a_wallet_that_is_neither_a_key_nor_a_file(cli: Cli) -> None:
    message = cli.fails("wallet", "fund", "nobody")
    assert message == "wallet 'nobody' is neither a public key nor a keypair file"


def test_funding_where_no_rpc_answers(cli: Cli) -> None:
    message = cli.fails("wallet", "fund", str(Pubkey.new_unique()))
    assert message.startswith("no Solana JSON-RPC answers at http://127.0.0.1:9 (")


class Mainnet(BaseHTTPRequestHandler):
    """A JSON-RPC node without a faucet: it answers getBalance, and refuses requestAirdrop as
    ``refusal`` says (a JSON-RPC error, or an HTTP status)."""

    refusal: ClassVar[dict[str, Any] | int]

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if request["method"] == "getBalance":
            reply["result"] = {"context": {"slot": 1}, "value": 0}
        elif isinstance(self.refusal, int):
            self.send_error(self.refusal)
            return
        else:
            reply["error"] = self.refusal
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.parametrize(
    ("refusal", "reason", "why"),
    [
        (
            {"code": -32601, "message": "Method not found"},
            "Method not found",
            "gives no SOL (requestAirdrop: ",
        ),
        (403, "HTTP 403 Forbidden", "gives no SOL (requestAirdrop: "),
        (429, "HTTP 429 Too Many Requests", "gave no SOL this time (requestAirdrop: "),
    ],
)
def test_a_cluster_that_refuses_an_airdrop(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    refusal: dict[str, Any] | int,
    reason: str,
    why: str,
) -> None:
    handler = type("Refusing", (Mainnet,), {"refusal": refusal})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("NISHATI_RPC_URL", url)
        message = cli.fails("wallet", "fund", str(Pubkey.new_unique()), "--sol", "2")
        server.shutdown()
    assert message.startswith(f"{url} {why}")
    assert reason in message
    if refusal == 429:
        assert message.endswith("): faucets limit how often")
    else:
        assert message.endswith("): only local and test clusters have a faucet")


def commands(group: TyperGroup, path: str = "nishati") -> list[tuple[str, Command]]:
    """Every command and group under ``group``, by its command line."""
    found: list[tuple[str, Command]] = [(path, group)]
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            found += commands(command, f"{path} {name}")
        else:
            found.append((f"{path} {name}", command))
    return found


def test_every_command_and_option_says_what_it_is() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    listed = commands(root)
    assert len(listed) > 25
    for line, command in listed:
        assert command.help, f"{line} has no help"
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), f"{line} {param.name} has no help"


@pytest.mark.parametrize(
    "group", ["", "market", "installer", "household", "meter", "offer", "trade", "wallet"]
)
def test_help_prints_and_exits_cleanly(cli: Cli, group: str) -> None:
    code, out, err = cli(*group.split(), "--help")
    assert (code, err) == (0, "")
    assert f"Usage: nishati {group}".rstrip() in out


def test_log_lines_go_through_logging_with_their_fields(
    cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    """Not onto stdout, where the output goes; without a handler, logging writes warnings to
    stderr."""
    code, _, _ = cli("meter", "keygen", "other.json", "--json")
    assert code == 0
    structlog.get_logger("nishati_client.chain").warning("rpc retried", call="getBalance")
    structlog.get_logger("nishati_client.events").info("events followed")  # below WARNING
    assert cli.capsys.readouterr().out == ""
    [record] = caplog.records
    assert (record.name, record.levelname) == ("nishati_client.chain", "WARNING")
    assert "rpc retried" in record.getMessage()
    assert "call=getBalance" in record.getMessage()
