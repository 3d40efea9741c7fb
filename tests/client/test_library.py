"""The client's helpers around the instruction wrappers: key files, readings files, JSON forms,
account listing, the websocket URL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import MAX_ACCOUNTS_PER_REQUEST, RpcChain
from nishati_client.codec import plain
from nishati_client.errors import AccountTypeMismatch, NishatiClientError
from nishati_client.events import websocket_url
from nishati_client.keys import KeyFileError, ed25519_private_key, load_keypair, write_keypair
from nishati_client.program import ACCOUNT_DISCRIMINATORS, NishatiClient, field_offset
from nishati_client.readings import (
    Reading,
    ReadingsFileError,
    dump_readings,
    load_readings,
    meter_public_key,
    sign,
    verify_signature,
)
from nishati_dev.sandbox import FAST_EXPORT, Harness, fund, open_market


def test_a_keypair_file_round_trips_in_the_solana_cli_format(tmp_path: Path) -> None:
    keypair = Keypair()
    path = tmp_path / "id.json"
    write_keypair(path, keypair)
    assert json.loads(path.read_text()) == list(bytes(keypair))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keypair(path) == keypair
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(path, Keypair())
    replacement = Keypair()
    write_keypair(path, replacement, overwrite=True)
    assert load_keypair(path) == replacement


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("", "not a Solana keypair file"),
        ("[1, 2, 3]", "not a Solana keypair file"),
        (json.dumps([300] * 64), "not a Solana keypair file"),
        ('{"secret": 1}', "not a Solana keypair file"),
        (json.dumps([7] * 64), "does not match"),
    ],
)
def test_a_bad_keypair_file_is_refused(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "id.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyFileError, match=problem):
        load_keypair(path)


def test_a_meter_keypair_signs_readings_under_its_public_key() -> None:
    keypair = Keypair()
    key = ed25519_private_key(keypair)
    assert meter_public_key(key) == keypair.pubkey()
    signed = sign(Reading.for_market(Pubkey.new_unique(), 1, 1_790_000_000, 10, 0), key)
    verify_signature(signed)
    assert signed.meter == keypair.pubkey()


def test_a_readings_file_round_trips() -> None:
    key = ed25519_private_key(Keypair())
    market = Pubkey.new_unique()
    readings = [
        sign(Reading.for_market(market, n, 1_790_000_000 + n, 100 * n, n), key) for n in (1, 2)
    ]
    assert load_readings(dump_readings(readings)) == readings


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "readings": []}',
        '{"version": 1}',
        '{"version": 1, "readings": [{"meter": "x", "message": "00", "signature": "00"}]}',
    ],
)
def test_a_bad_readings_file_is_refused(text: str) -> None:
    with pytest.raises(ReadingsFileError):
        load_readings(text)


def test_field_offsets_come_from_the_idl() -> None:
    assert field_offset("Household", "market") == 8
    assert field_offset("Household", "owner") == 40
    assert field_offset("Offer", "seller") == 40
    assert field_offset("Trade", "offer") == 40
    assert field_offset("Trade", "buyer") == 72
    assert field_offset("InstallerRecord", "market") == 8
    with pytest.raises(KeyError):
        field_offset("Trade", "colour")


async def test_field_offsets_match_stored_accounts(litesvm: Harness) -> None:
    market = await open_market(litesvm)
    member = await market.register()
    account = await litesvm.chain.account(member.address)
    assert account is not None
    data = bytes(account.data)
    assert data[:8] == ACCOUNT_DISCRIMINATORS["Household"]
    owner_at = field_offset("Household", "owner")
    assert data[owner_at : owner_at + 32] == bytes(member.owner)


async def test_plain_gives_json_with_integers_keys_and_hex(litesvm: Harness) -> None:
    market = await open_market(litesvm)
    member = await market.register()
    household = await litesvm.client.household(member.address)
    data = plain(household)
    assert json.loads(json.dumps(data)) == data
    assert data["address"] == str(member.address)
    assert data["total_exported_wh"] == 0
    assert isinstance(data["custodial"], bool)
    assert data["phone_commitment"] == household.phone_commitment.hex()
    assert plain(await litesvm.client.market(market.address))["config"]["fee_bps"] == 150


async def test_listing_needs_a_json_rpc_chain(litesvm: Harness) -> None:
    with pytest.raises(NishatiClientError, match="getProgramAccounts"):
        await litesvm.client.households(Pubkey.new_unique())


@pytest.mark.rpc
async def test_listing_over_json_rpc(rpc_url: str, rpc_payer: Keypair, program_id: Pubkey) -> None:
    chain = RpcChain(rpc_url, program_id)
    try:
        h = Harness(chain, rpc_payer, NishatiClient(chain, program_id), None)
        market, other = await open_market(h, config=FAST_EXPORT), await open_market(h)
        seller, buyer = await market.register(), await market.register(custodial=True)
        await other.register()
        await market.mint(seller, 1_000)
        first = await market.offer(seller, 400)
        second = await market.offer(seller, 300)
        trade = await market.open_trade(first, buyer, 100)
        await fund(h, market.oracle.pubkey(), 10**8)

        assert {m.address for m in await h.client.markets()} >= {market.address, other.address}
        households = await h.client.households(market.address)
        assert {x.address for x in households} == {seller.address, buyer.address}
        assert {o.address for o in await h.client.offers(market.address)} == {
            first.address,
            second.address,
        }
        assert await h.client.offers(market.address, seller=buyer.address) == []
        assert [t.address for t in await h.client.trades(market.address)] == [trade.address]
        assert await h.client.trades(market.address, offer=second.address) == []
        assert [t.wh for t in await h.client.trades(market.address, buyer=buyer.address)] == [100]
        assert await h.client.trades(other.address) == []
        [installer] = await h.client.installers(market.address)
        assert installer.installer == market.installer.pubkey()
    finally:
        await chain.close()


async def test_many_accounts_are_read_together_in_the_order_asked(harness: Harness) -> None:
    market = await open_market(harness)
    first, second = await market.register(), await market.register()
    program = harness.client.program
    records = [
        program.meter_record_address(market.address, m.meter.public_key) for m in (first, second)
    ]
    # More than one getMultipleAccounts request may name: the answers keep the order asked.
    asked = [
        records[0],
        *(Pubkey.new_unique() for _ in range(MAX_ACCOUNTS_PER_REQUEST)),
        records[1],
    ]
    found = await harness.client.meter_records(asked)
    assert len(found) == len(asked)
    assert [r.household for r in found if r is not None] == [first.address, second.address]
    assert found[0] is not None
    assert found[-1] is not None
    assert found[1:-1] == [None] * MAX_ACCOUNTS_PER_REQUEST
    with pytest.raises(AccountTypeMismatch):
        await harness.client.meter_records([first.address])


@pytest.mark.parametrize(
    ("rpc", "ws"),
    [
        ("http://127.0.0.1:8899", "ws://127.0.0.1:8900"),
        ("https://api.devnet.solana.com", "wss://api.devnet.solana.com"),
        ("http://localhost:8899/", "ws://localhost:8900/"),
        ("http://[::1]:8899", "ws://[::1]:8900"),
    ],
)
def test_the_websocket_url_beside_an_rpc_url(rpc: str, ws: str) -> None:
    assert websocket_url(rpc) == ws
