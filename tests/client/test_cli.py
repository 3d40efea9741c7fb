"""The ``nishati`` command against the local JSON-RPC validator.

The scenario runs the installed console script as a user would, one process per step; the other
commands and the bad-input cases call :func:`nishati_client.cli.main` in-process (the ``cli``
fixture: the same code, without a Python start-up per case).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from nishati_client.chain import RpcChain, cluster_time
from nishati_client.keys import write_keypair
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient
from nishati_client.readings import export_secs
from nishati_dev.localnet import LocalValidator
from nishati_dev.paths import INSTALLER_KEYPAIR
from nishati_dev.settings import LocalChainSettings
from tests.client.support import Cli
from tests.harness.chain import PAYER_LAMPORTS, Localnet

pytestmark = pytest.mark.rpc


@pytest.fixture(scope="module")
def rpc_payer() -> Keypair:
    return Keypair()


@pytest.fixture(scope="module")
def localnet(settings: LocalChainSettings, rpc_payer: Keypair) -> Iterator[Localnet]:
    """A validator of this module's own. Surfpool (1.5, embedded) stops answering after some
    400 transactions (measured: 394 to 441 transfers in a row), and these tests send about 150;
    the session's validator keeps its budget for the other suites."""
    with LocalValidator(settings, {str(rpc_payer.pubkey()): PAYER_LAMPORTS}) as validator:
        yield Localnet(validator.rpc_url, validator.ws_url)


NISHATI = Path(sys.executable).parent / "nishati"
SALT = "5a17" * 8
LAMPORTS = 2 * 10**9
# The program's highest export limit, so a meter's energy takes seconds of chain time to mint.
MAX_EXPORT_WATTS = 100_000_000
INSTALLER = str(INSTALLER_KEYPAIR)


@dataclass
class Operator:
    """Keypair files in a working directory, and the environment the command reads."""

    directory: Path
    env: dict[str, str]
    program_id: Pubkey

    def keypair(self, name: str) -> tuple[Path, Keypair]:
        keypair = Keypair()
        path = self.directory / f"{name}.json"
        write_keypair(path, keypair)
        return path, keypair

    def run(
        self, *args: str | Path, keypair: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The console script in a process of its own."""
        signer = ["--keypair", str(keypair)] if keypair else []
        return subprocess.run(
            [str(NISHATI), *signer, *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.directory,
            timeout=120,
            check=False,
        )

    def json(self, *args: str | Path, keypair: Path | None = None) -> Any:
        result = self.run(*args, "--json", keypair=keypair)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def operator(
    localnet: Localnet, tmp_path: Path, program_id: Pubkey, monkeypatch: pytest.MonkeyPatch
) -> Operator:
    env = {
        "PATH": os.environ.get("PATH", ""),
        # The code under test, when it is not the installed one.
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HOME": str(tmp_path),
        "NISHATI_RPC_URL": localnet.rpc_url,
        "NISHATI_WS_URL": localnet.ws_url,
        "NISHATI_PHONE_SALT": SALT,
        "NISHATI_PROGRAM_ID": str(program_id),
    }
    for name, value in env.items():
        if name.startswith("NISHATI_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("NISHATI_KEYPAIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return Operator(tmp_path, env, program_id)


async def funded(
    rpc_url: str, payer: Keypair, program_id: Pubkey, *to: Pubkey, lamports: int = LAMPORTS
) -> None:
    chain = RpcChain(rpc_url, program_id)
    try:
        for address in to:
            params = TransferParams(
                from_pubkey=payer.pubkey(), to_pubkey=address, lamports=lamports
            )
            await chain.send([transfer(params)], [payer])
    finally:
        await chain.close()


async def chain_now(rpc_url: str, program_id: Pubkey) -> int:
    chain = RpcChain(rpc_url, program_id)
    try:
        return await cluster_time(chain)
    finally:
        await chain.close()


async def exportable(rpc_url: str, program_id: Pubkey, household: str, wh: int) -> None:
    """Waits until the chain's clock lets ``household``'s meter mint ``wh`` more."""
    chain = RpcChain(rpc_url, program_id)
    try:
        home = await NishatiClient(chain, program_id).household(Pubkey.from_string(household))
        due = home.last_attested_at + export_secs(wh, MAX_EXPORT_WATTS)
        while await cluster_time(chain) < due:  # noqa: ASYNC110 - the validator's clock
            await asyncio.sleep(0.5)
    finally:
        await chain.close()


@dataclass
class Watcher:
    process: subprocess.Popen[str]

    def events(self) -> list[dict[str, Any]]:
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def watcher(operator: Operator) -> Iterator[Watcher]:
    """``nishati events watch`` in the background, subscribed before the test goes on."""
    process = subprocess.Popen(
        [str(NISHATI), "events", "watch", "--count", "10", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=operator.env,
        cwd=operator.directory,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("following "), line
        yield Watcher(process)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


async def test_a_market_day_through_the_cli(
    operator: Operator, watcher: Watcher, localnet: Localnet, rpc_payer: Keypair
) -> None:
    admin_file, admin = operator.keypair("operator")
    seller_file, seller = operator.keypair("seller")
    await funded(localnet.rpc_url, rpc_payer, operator.program_id, admin.pubkey(), seller.pubkey())
    seller_meter = operator.json("meter", "keygen", "seller-meter.json")["meter"]
    buyer_meter = operator.json("meter", "keygen", "buyer-meter.json")["meter"]
    buyer_owner_file, buyer_owner = operator.keypair("buyer-owner")

    # The market, with the signer as its admin and oracle, approving the test installer.
    market_id = secrets.randbits(63)
    created = operator.json(
        "market", "init", "--market-id", str(market_id),
        "--max-export-watts", str(MAX_EXPORT_WATTS), keypair=admin_file,
    )  # fmt: skip
    market = created["market"]["address"]
    assert market == str(market_address(operator.program_id, market_id)[0])
    assert created["market"]["admin"] == str(admin.pubkey())
    assert created["market"]["config"] == {
        "oracle_authority": str(admin.pubkey()),
        "fee_bps": 150,
        "min_price_cents_per_kwh": 1_000,
        "max_price_cents_per_kwh": 6_000,
        "payment_deadline_secs": 900,
        "cancel_grace_secs": 600,
        "max_export_watts": MAX_EXPORT_WATTS,
        "daily_mint_cap_wh": 10_000_000,
        "max_open_trades_per_buyer": 8,
    }
    assert created["energy_supply_wh"] == 0
    approved = operator.json("installer", "add", market, INSTALLER, keypair=admin_file)
    assert approved["installer"]["market"] == market

    # Two households, their meters vouched for by the installer and proving their keys: the
    # seller registers its own; the oracle a custodial one for the buyer, whose owner key
    # signs too. The seller's meter signed its proof beforehand, as the firmware will.
    proof = operator.json(
        "meter", "prove", "--market", market, "--meter-keypair", "seller-meter.json",
        "--owner", seller_file, "--out", "seller-proof.hex",
    )["proof"]  # fmt: skip
    registered = operator.json(
        "household", "register", market, "--phone", "0712 345 678",
        "--meter", seller_meter, "--meter-proof", "seller-proof.hex",
        "--installer-keypair", INSTALLER, keypair=seller_file,
    )  # fmt: skip
    assert len(bytes.fromhex(proof)) == 64
    seller_household = registered["household"]["address"]
    assert registered["household"]["owner"] == str(seller.pubkey())
    assert registered["household"]["meter"] == seller_meter
    assert registered["household"]["installer"] == approved["installer"]["installer"]
    assert registered["household"]["custodial"] is False
    assert registered["phone"] == "2547****5678"
    commitment = hashlib.sha256(bytes.fromhex(SALT) + b"254712345678").hexdigest()
    assert registered["household"]["phone_commitment"] == commitment
    registered = operator.json(
        "household", "register", market, "--phone", "+254110000222",
        "--meter-keypair", "buyer-meter.json", "--owner-keypair", buyer_owner_file,
        "--installer-keypair", INSTALLER, keypair=admin_file,
    )  # fmt: skip
    buyer_household = registered["household"]["address"]
    assert registered["household"]["owner"] == str(buyer_owner.pubkey())
    assert registered["household"]["meter"] == buyer_meter
    assert registered["household"]["custodial"] is True

    # Meters sign, dated by the chain's clock; the oracle attests. The seller's baseline and
    # the buyer's share a transaction; the seller's next reading mints what its meter could
    # export in the chain time since.
    now = str(await chain_now(localnet.rpc_url, operator.program_id))
    for meter, counter, exported in [
        ("seller-meter.json", "1", "10000"),
        ("buyer-meter.json", "1", "0"),
    ]:
        signed = operator.json(
            "reading", "sign", "--market", market, "--meter-keypair", meter,
            "--counter", counter, "--exported-wh", exported, "--timestamp", now,
        )  # fmt: skip
    assert signed["readings"] == 2
    attested = operator.json("attest", "readings.json", "--market", market, keypair=admin_file)
    assert [t["readings"] for t in attested["transactions"]] == [2]
    assert [(a["household"], a["minted_wh"]) for a in attested["attested"]] == [
        (seller_household, 0),
        (buyer_household, 0),
    ]
    await exportable(localnet.rpc_url, operator.program_id, seller_household, 2_500)
    operator.json(
        "reading", "sign", "--market", market, "--meter-keypair", "seller-meter.json",
        "--counter", "2", "--exported-wh", "12500", "--out", "later.json",
        "--timestamp", str(await chain_now(localnet.rpc_url, operator.program_id)),
    )  # fmt: skip
    attested = operator.json("attest", "later.json", "--market", market, keypair=admin_file)
    assert attested["minted_wh"] == 2_500
    assert [(a["household"], a["minted_wh"]) for a in attested["attested"]] == [
        (seller_household, 2_500)
    ]

    # The seller offers 2,000 Wh; the oracle opens a trade for its buyer and settles it.
    offer = operator.json(
        "offer", "create", seller_household, "--wh", "2000", "--price-cents", "2500",
        keypair=seller_file,
    )["offer"]  # fmt: skip
    assert (offer["unreserved_wh"], offer["price_cents_per_kwh"]) == (2_000, 2_500)
    trade = operator.json(
        "trade", "open", offer["address"], "--buyer", buyer_household, "--wh", "1234",
        "--payment-ref", "ws_CO_26112026101500", keypair=admin_file,
    )["trade"]  # fmt: skip
    assert (trade["wh"], trade["total_cents"]) == (1_234, 3_100)
    reference = hashlib.sha256(b"ws_CO_26112026101500").hexdigest()
    assert trade["payment_ref_hash"] == reference
    settled = operator.json(
        "trade", "settle", trade["address"], "--receipt", "SGR7X2K9QP",
        "--buyer", buyer_household, "--wh", "1234", "--total-cents", "3100", keypair=admin_file,
    )  # fmt: skip
    assert (settled["wh"], settled["total_cents"], settled["buyer_energy_wh"]) == (1234, 3100, 1234)

    # The buyer's balance.
    shown = operator.json("household", "show", buyer_household)
    assert shown["energy_wh"] == 1_234
    assert shown["household"]["address"] == buyer_household

    # What the watcher saw, in order.
    events = watcher.events()
    assert [e["name"] for e in events] == [
        "MarketInitialized",
        "InstallerAdded",
        "HouseholdRegistered",
        "HouseholdRegistered",
        "MeterAttested",
        "MeterAttested",
        "MeterAttested",
        "OfferCreated",
        "TradeOpened",
        "TradeSettled",
    ]
    assert events[-1]["data"]["wh"] == 1_234
    assert events[-1]["data"]["receipt_hash"] == hashlib.sha256(b"SGR7X2K9QP").hexdigest()
    assert all(e["data"]["market"] == market for e in events if "market" in e["data"])


@dataclass
class World:
    """A market made through the CLI, a seller with 1,000 Wh on offer and a custodial buyer."""

    admin_file: Path
    seller_file: Path
    market: str
    seller: str
    buyer: str
    offer: str


@pytest.fixture
def world(operator: Operator, cli: Cli, localnet: Localnet, rpc_payer: Keypair) -> World:
    """Sync, as are the tests that run the command in-process: it runs its own event loop."""
    admin_file, admin = operator.keypair("admin")
    seller_file, seller = operator.keypair("seller")
    asyncio.run(
        funded(localnet.rpc_url, rpc_payer, operator.program_id, admin.pubkey(), seller.pubkey())
    )
    market_id = str(secrets.randbits(63))
    market = cli.json(
        "-k", admin_file, "market", "init", "--market-id", market_id,
        "--max-export-watts", str(MAX_EXPORT_WATTS),
    )["market"]  # fmt: skip
    cli.json("-k", admin_file, "installer", "add", market_id, INSTALLER)
    cli("meter", "keygen", "s.json")
    cli("meter", "keygen", "b.json")
    operator.keypair("buyer-owner")
    seller_hh = cli.json(
        "-k", seller_file, "household", "register", market_id, "--phone", "0700000001",
        "--meter-keypair", "s.json", "--installer-keypair", INSTALLER,
    )["household"]["address"]  # fmt: skip
    buyer_hh = cli.json(
        "-k", admin_file, "household", "register", market_id, "--phone", "0700000002",
        "--meter-keypair", "b.json", "--owner-keypair", "buyer-owner.json",
        "--installer-keypair", INSTALLER,
    )["household"]["address"]  # fmt: skip
    for counter, wh, readings in (("1", "0", "baseline.json"), ("2", "1000", "readings.json")):
        if counter == "2":
            asyncio.run(exportable(localnet.rpc_url, operator.program_id, seller_hh, 1_000))
        now = str(asyncio.run(chain_now(localnet.rpc_url, operator.program_id)))
        cli(
            "reading", "sign", "--market", market_id, "--meter-keypair", "s.json",
            "--counter", counter, "--exported-wh", wh, "--timestamp", now, "--out", readings,
        )  # fmt: skip
        attest = ("-k", admin_file, "attest", readings, "--market", market_id)
        assert cli.json(*attest)["minted_wh"] == int(wh)
    offer = cli.json(
        "-k", seller_file, "offer", "create", seller_hh, "--wh", "1000", "--price-cents", "2000"
    )["offer"]["address"]
    return World(admin_file, seller_file, market["address"], seller_hh, buyer_hh, offer)


def test_updating_pausing_and_resuming_a_market(cli: Cli, world: World) -> None:
    admin = ("-k", world.admin_file, "market")
    updated = cli.json(
        *admin, "update", world.market, "--fee-bps", "200", "--max-price-cents", "5000"
    )
    assert updated["market"]["config"]["fee_bps"] == 200
    assert updated["market"]["config"]["max_price_cents_per_kwh"] == 5_000
    assert updated["market"]["config"]["min_price_cents_per_kwh"] == 1_000
    assert cli.json(*admin, "pause", world.market)["market"]["paused"] is True
    assert cli.json("market", "show", world.market)["market"]["paused"] is True
    assert cli.json(*admin, "resume", world.market)["market"]["paused"] is False
    assert cli.fails(*admin, "update", world.market, code=1) == (
        "nothing to update: name at least one setting"
    )
    assert cli.json("market", "show", world.market)["energy_supply_wh"] == 1_000


def test_listing_households_offers_and_trades(cli: Cli, world: World) -> None:
    households = cli.json("household", "list", world.market)["households"]
    assert {h["address"] for h in households} == {world.seller, world.buyer}
    offers = cli.json("offer", "list", world.market)["offers"]
    assert [(o["address"], o["unreserved_wh"]) for o in offers] == [(world.offer, 1_000)]
    assert cli.json("trade", "list", world.market)["trades"] == []
    trade = cli.json(
        "-k", world.admin_file, "trade", "open", world.offer, "--buyer", world.buyer,
        "--wh", "250", "--payment-ref", "ws_CO_1",
    )["trade"]  # fmt: skip
    assert cli.json("trade", "show", trade["address"])["trade"] == trade
    for filters in ([], ["--buyer", world.buyer], ["--offer", world.offer]):
        listed = cli.json("trade", "list", world.market, *filters)["trades"]
        assert [t["address"] for t in listed] == [trade["address"]]
    assert cli.json("trade", "list", world.market, "--buyer", world.seller)["trades"] == []


def test_changing_a_meter_cancelling_a_trade_and_an_offer(cli: Cli, world: World) -> None:
    new_meter = cli.json("meter", "keygen", "new.json")["meter"]
    changed = cli.json(
        "-k", world.seller_file, "household", "set-meter", world.seller,
        "--meter-keypair", "new.json", "--installer-keypair", INSTALLER,
    )  # fmt: skip
    assert changed["household"]["meter"] == new_meter
    assert changed["household"]["has_baseline"] is False

    trade = cli.json(
        "-k", world.admin_file, "trade", "open", world.offer, "--buyer", world.buyer,
        "--wh", "300", "--payment-ref", "unpaid",
    )["trade"]["address"]  # fmt: skip
    cancelled = cli.json("-k", world.admin_file, "trade", "cancel", trade)
    assert cancelled["returned_wh"] == 300
    assert cli.json("trade", "list", world.market)["trades"] == []

    withdrawn = cli.json("-k", world.seller_file, "offer", "cancel", world.offer)
    assert (withdrawn["returned_wh"], withdrawn["closed"]) == (1_000, True)
    assert cli.json("household", "show", world.seller)["energy_wh"] == 1_000
    assert cli.json("offer", "list", world.market, "--seller", world.seller)["offers"] == []


def test_human_output_is_a_table(cli: Cli, world: World) -> None:
    code, out, _ = cli("household", "show", world.buyer)
    assert code == 0
    assert "Household" in out
    assert "custodial" in out
    assert "0 Wh" in out


def test_people_read_times_as_dates_and_scripts_as_unix_seconds(
    cli: Cli, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a table as wide as its addresses: no cell folds
    [offer] = cli.json("offer", "list", world.market)["offers"]
    assert isinstance(offer["expires_at"], int)
    expires = datetime.fromtimestamp(offer["expires_at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = cli("offer", "list", world.market)
    assert code == 0
    assert expires in out
    assert str(offer["expires_at"]) not in out


def test_funding_a_wallet_on_the_local_chain(
    cli: Cli, operator: Operator, localnet: Localnet
) -> None:
    path, keypair = operator.keypair("wallet")
    funded = cli.json("wallet", "fund", path, "--sol", "2")
    assert (funded["wallet"], funded["lamports"]) == (str(keypair.pubkey()), 2 * 10**9)
    assert funded["balance_lamports"] == 2 * 10**9
    created = cli.json("-k", path, "market", "init", "--market-id", str(secrets.randbits(63)))
    assert created["market"]["admin"] == str(keypair.pubkey())  # it paid for the market

    address = str(Pubkey.new_unique())
    assert cli.json("wallet", "fund", address, "--sol", "0.5")["balance_lamports"] == 5 * 10**8
    code, out, _ = cli("wallet", "fund", address, "--sol", "0.25")
    assert code == 0
    assert " ".join(out.split()) == f"{address} funded with 0.25 SOL: it holds 0.75 SOL"


# Bad input: one line on stderr, a non-zero exit, never a traceback.


def test_a_missing_key_file(cli: Cli, operator: Operator) -> None:
    message = cli.fails("--keypair", "nowhere.json", "market", "pause", "1")
    assert message == "keypair file nowhere.json does not exist"


@pytest.mark.parametrize("content", ["", "[1, 2, 3]", '{"key": "abc"}', "[" + "999," * 63 + "999]"])
def test_a_malformed_key_file(cli: Cli, operator: Operator, content: str) -> None:
    (operator.directory / "bad.json").write_text(content)
    message = cli.fails("--keypair", "bad.json", "market", "pause", "1")
    assert message == "bad.json is not a Solana keypair file (a JSON array of 64 bytes)"


def test_no_key_file_at_all(cli: Cli, operator: Operator) -> None:
    message = cli.fails("market", "pause", "1")
    assert message == "no keypair: pass --keypair PATH or set NISHATI_KEYPAIR"


def test_an_rpc_url_that_does_not_answer(cli: Cli, operator: Operator) -> None:
    message = cli.fails("--url", "http://127.0.0.1:9", "market", "show", "1")
    assert message.startswith("no Solana JSON-RPC answers at http://127.0.0.1:9 (")


def test_the_console_script_reports_in_one_line_too(operator: Operator) -> None:
    result = operator.run("--url", "http://127.0.0.1:9", "household", "list", "1")
    assert result.returncode == 1
    assert result.stderr.startswith("nishati: error: no Solana JSON-RPC answers at")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_the_wrong_cluster(cli: Cli, operator: Operator) -> None:
    elsewhere = Pubkey.new_unique()
    message = cli.fails("--program-id", str(elsewhere), "market", "show", "1")
    assert message.startswith(f"program {elsewhere} is not deployed at ")
    assert "wrong cluster" in message


def test_a_signer_without_sol(cli: Cli, operator: Operator) -> None:
    path, keypair = operator.keypair("empty")
    message = cli.fails("-k", path, "market", "init", "--market-id", "7")
    assert message == (
        f"{keypair.pubkey()} has 0 lamports: too little SOL for this transaction's fees and rent"
    )


def test_a_signer_with_fees_but_not_rent(
    cli: Cli, operator: Operator, localnet: Localnet, rpc_payer: Keypair
) -> None:
    path, keypair = operator.keypair("poor")
    asyncio.run(
        funded(
            localnet.rpc_url, rpc_payer, operator.program_id, keypair.pubkey(), lamports=1_000_000
        )
    )
    message = cli.fails("-k", path, "market", "init", "--market-id", str(secrets.randbits(63)))
    assert message.startswith("too little SOL for this transaction's fees and rent")


def test_unknown_accounts(cli: Cli, world: World) -> None:
    stranger = Pubkey.new_unique()
    assert cli.fails("household", "show", str(stranger)) == f"no household at {stranger}"
    assert cli.fails("-k", world.seller_file, "offer", "cancel", str(stranger)) == (
        f"no offer at {stranger}"
    )
    assert cli.fails("trade", "show", world.offer) == f"{world.offer} is not a Nishati open trade"
    unused = market_address(Pubkey.from_string(os.environ["NISHATI_PROGRAM_ID"]), 3)[0]
    assert cli.fails("market", "show", "3") == f"no market at {unused}"
    assert cli.fails("household", "show", "not-a-key", code=2) == (
        "Invalid value for 'household': 'not-a-key' is not a base58 public key"
    )


def test_invalid_amounts(cli: Cli, world: World) -> None:
    seller = ("-k", world.seller_file, "offer", "create", world.seller)
    assert cli.fails(*seller, "--wh", "0", "--price-cents", "2000", code=2) == (
        "Invalid value for '--wh': Input should be greater than or equal to 1"
    )
    not_a_number = cli.fails(*seller, "--wh", "abc", "--price-cents", "2000", code=2)
    assert not_a_number.startswith("Invalid value for '--wh': Input should be a valid integer")
    fraction = cli.fails(*seller, "--wh", "10", "--price-cents", "12.5", code=2)
    assert fraction.startswith("Invalid value for '--price-cents': Input should be a valid integer")
    # Amounts only the program can judge come back as its named errors.
    assert cli.fails(*seller, "--wh", "10", "--price-cents", "99999").startswith(
        "the program refused: PriceOutOfBounds (6"
    )
    assert cli.fails(*seller, "--wh", "5000", "--price-cents", "2000").startswith(
        "the program refused: InsufficientEnergy"
    )
    taking_too_much = cli.fails(
        "-k", world.admin_file, "trade", "open", world.offer, "--buyer", world.buyer,
        "--wh", "1001", "--payment-ref", "x",
    )  # fmt: skip
    assert taking_too_much.startswith("the program refused: NotEnoughOfferedEnergy")


def test_bad_phone_numbers_and_salt(
    cli: Cli, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = (
        "-k", world.admin_file, "household", "register", world.market,
        "--meter-keypair", "b.json", "--installer-keypair", INSTALLER,
    )  # fmt: skip
    assert cli.fails(*register, "--phone", "12345").startswith("not a Kenyan mobile number")
    monkeypatch.delenv("NISHATI_PHONE_SALT")
    assert cli.fails(*register, "--phone", "0712345678") == (
        "NISHATI_PHONE_SALT is not set (hex, at least 16 bytes)"
    )


def test_a_tampered_readings_file(cli: Cli, world: World) -> None:
    document = json.loads(Path("readings.json").read_text())
    signature = bytearray.fromhex(document["readings"][0]["signature"])
    signature[0] ^= 1
    document["readings"][0]["signature"] = signature.hex()
    Path("tampered.json").write_text(json.dumps(document))
    attest = ("-k", world.admin_file, "attest", "--market", world.market)
    assert cli.fails(*attest, "tampered.json").startswith("reading is not signed by")
    assert cli.fails(*attest, "absent.json") == "readings file absent.json does not exist"
    elsewhere = ("-k", world.admin_file, "attest", "--market", str(Pubkey.new_unique()))
    assert cli.fails(*elsewhere, "readings.json").endswith("is for another market")


def test_no_command_prints_the_help(cli: Cli) -> None:
    code, out, err = cli()
    assert code == 2
    assert "Usage: nishati" in out + err
