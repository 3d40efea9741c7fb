"""A market with its people on a chain: admin, oracle, installer, households and their meters.

The demo, the benchmarks and the program tests all build on it, so each reads as the story it
tells. Works the same on LiteSVM (in-process) and on a JSON-RPC validator; where the story needs
chain time to pass (a meter may export only so fast), LiteSVM's clock is moved and a validator's
is waited for.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from nishati_client.chain import Chain, LiteSvmChain, TxOutcome, cluster_slot, cluster_time
from nishati_client.errors import AccountNotFound
from nishati_client.household import Household
from nishati_client.keys import load_keypair
from nishati_client.lookup import (
    LookupTable,
    create_lookup_table,
    extend_lookup_table,
    fetch_lookup_table,
    recent_slots,
)
from nishati_client.market import MarketConfig
from nishati_client.pda import household_address, market_address
from nishati_client.program import NishatiClient
from nishati_client.readings import Reading, SignedReading, export_secs, meter_public_key, sign
from nishati_client.registration import sign_registration
from nishati_client.trading import Offer, Trade
from nishati_dev.paths import INSTALLER_KEYPAIR


@dataclass
class Harness:
    """A chain with the program deployed, a funded payer, and the client on top."""

    chain: Chain
    payer: Keypair
    client: NishatiClient
    litesvm: LiteSvmChain | None


# A realistic cluster time for LiteSVM, whose clock starts at 0.
T0 = 1_790_000_000
MIN_PRICE = 1_500
MAX_PRICE = 4_000
PAYMENT_DEADLINE_SECS = 900
# The local defaults of the market-integrity settings.
CANCEL_GRACE_SECS = 600
MAX_EXPORT_WATTS = 10_000
DAILY_MINT_CAP_WH = 10_000_000
MAX_OPEN_TRADES_PER_BUYER = 8
# How often a JSON-RPC validator's clock is read while waiting for it.
CLOCK_POLL_SECS = 0.5


def local_installer() -> Keypair:
    """The installer of tests/keys/installer.json, which local markets approve."""
    return load_keypair(INSTALLER_KEYPAIR)


def digest(text: str) -> bytes:
    """A 32-byte hash standing in for what the oracle computes (payment refs, receipts)."""
    return hashlib.sha256(text.encode()).digest()


@dataclass
class Meter:
    """A meter: its key and the cumulative totals it has read so far."""

    market: Pubkey
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    counter: int = 0
    exported_wh: int = 0
    imported_wh: int = 0

    @property
    def public_key(self) -> Pubkey:
        return meter_public_key(self.key)

    def read(self, timestamp: int, exported_wh: int = 0, imported_wh: int = 0) -> SignedReading:
        """The next signed reading, after the household exported and imported these Wh more."""
        self.counter += 1
        self.exported_wh += exported_wh
        self.imported_wh += imported_wh
        reading = Reading.for_market(
            self.market, self.counter, timestamp, self.exported_wh, self.imported_wh
        )
        return sign(reading, self.key)

    def prove(self, household: Pubkey) -> bytes:
        """The meter's proof for its registration to ``household``: its signature over the
        registration message, as the firmware makes it when the meter is installed."""
        return sign_registration(self.key, self.market, household)


@dataclass
class Member:
    """A registered household and who signs for it (its owner, or the oracle if custodial);
    ``owner_keypair`` signed its registration."""

    address: Pubkey
    owner: Pubkey
    authority: Keypair
    meter: Meter
    energy_account: Pubkey
    owner_keypair: Keypair


@dataclass
class OpenMarket:
    """A market initialised on the harness's chain, with an approved installer."""

    h: Harness
    address: Pubkey
    admin: Keypair
    oracle: Keypair
    installer: Keypair

    @property
    def energy_mint(self) -> Pubkey:
        return self.h.client.program.energy_mint(self.address)

    async def now(self) -> int:
        return await cluster_time(self.h.chain)

    async def elapse(self, secs: int) -> None:
        """Lets ``secs`` of chain time pass: LiteSVM's clock is moved on; a JSON-RPC
        validator's is waited for."""
        target = await self.now() + secs
        if self.h.litesvm is not None:
            set_time(self.h, target)
            return
        while await self.now() < target:  # noqa: ASYNC110 - the validator's clock, polled
            await asyncio.sleep(CLOCK_POLL_SECS)

    async def register(
        self,
        *,
        custodial: bool = False,
        meter: Meter | None = None,
        phone_commitment: bytes | None = None,
        installer: Keypair | None = None,
    ) -> Member:
        """A household with a wallet (registering itself) or a custodial one (by the oracle,
        its fresh owner key signing too), its meter vouched for by the market's installer
        (or ``installer``) and proving its key; its phone commitment a random stand-in unless
        given."""
        owner = Keypair()
        meter = meter or Meter(self.address)
        household = household_address(
            self.h.client.program.program_id, self.address, owner.pubkey()
        )
        created = await self.h.client.household_register(
            payer=self.h.payer,
            owner=owner,
            authority=self.oracle if custodial else None,
            installer=installer or self.installer,
            market=self.address,
            meter=meter.public_key,
            meter_proof=meter.prove(household[0]),
            phone_commitment=phone_commitment
            or digest(f"salt|+2547{secrets.randbelow(10**8):08d}"),
        )
        return Member(
            created.address,
            owner.pubkey(),
            self.oracle if custodial else owner,
            meter,
            self.h.client.program.energy_account(created.address),
            owner,
        )

    async def set_meter(
        self, member: Member, meter: Meter | None = None, authority: Keypair | None = None
    ) -> TxOutcome:
        """Replaces ``member``'s meter (by its authority unless told), vouched for by the
        market's installer, the new meter proving its key; ``member.meter`` follows."""
        meter = meter or Meter(self.address)
        outcome = await self.h.client.household_set_meter(
            payer=self.h.payer,
            authority=authority or member.authority,
            installer=self.installer,
            household=await self.household(member),
            meter=meter.public_key,
            meter_proof=meter.prove(member.address),
        )
        member.meter = meter
        return outcome

    async def attest(self, *pairs: tuple[Member, SignedReading]) -> TxOutcome:
        return await self.h.client.meter_attest(
            payer=self.h.payer,
            oracle=self.oracle,
            market=self.address,
            readings=[(signed, member.address) for member, signed in pairs],
        )

    async def until_exportable(self, member: Member, wh: int) -> None:
        """Lets the chain time pass from which ``member``'s meter may export ``wh`` more: the
        market's ``max_export_watts`` over the time since its last attestation."""
        household = await self.household(member)
        market = await self.h.client.market(self.address)
        due = household.last_attested_at + export_secs(wh, market.config.max_export_watts)
        wait = due - await self.now()
        if wait > 0:
            await self.elapse(wait)

    async def mint(self, member: Member, wh: int) -> None:
        """Gives a household ``wh`` energy: a baseline reading unless it has one, then, once
        chain time allows the export, a reading of ``wh`` exported."""
        if not (await self.household(member)).has_baseline:
            await self.attest((member, member.meter.read(await self.now())))
        await self.until_exportable(member, wh)
        await self.attest((member, member.meter.read(await self.now(), exported_wh=wh)))

    async def household(self, member: Member) -> Household:
        return await self.h.client.household(member.address)

    async def offer(
        self, seller: Member, wh: int, price_cents_per_kwh: int = 2_500, expires_in: int = 3_600
    ) -> Offer:
        created = await self.h.client.offer_create(
            payer=self.h.payer,
            authority=seller.authority,
            household=await self.household(seller),
            wh=wh,
            price_cents_per_kwh=price_cents_per_kwh,
            expires_at=await self.now() + expires_in,
        )
        return await self.h.client.offer(created.address)

    async def open_trade(
        self, offer: Offer, buyer: Member, wh: int, reference: str | None = None
    ) -> Trade:
        created = await self.h.client.trade_open(
            payer=self.h.payer,
            authority=buyer.authority,
            market=self.address,
            offer=offer.address,
            buyer=buyer.address,
            wh=wh,
            payment_ref_hash=digest(reference or secrets.token_hex(8)),
        )
        return await self.h.client.trade(created.address)

    async def settle(self, trade: Trade, receipt: str = "paid") -> TxOutcome:
        """The oracle settles ``trade`` for the terms it holds (as its ledger would name them)."""
        return await self.h.client.trade_settle(
            payer=self.h.payer,
            oracle=self.oracle,
            trade=trade,
            receipt_hash=digest(receipt),
            buyer=trade.buyer,
            wh=trade.wh,
            total_cents=trade.total_cents,
        )

    async def balance(self, member: Member) -> int:
        return await self.h.client.energy_balance(member.energy_account)


def config_for(oracle: Pubkey) -> MarketConfig:
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=MIN_PRICE,
        max_price_cents_per_kwh=MAX_PRICE,
        payment_deadline_secs=PAYMENT_DEADLINE_SECS,
        cancel_grace_secs=CANCEL_GRACE_SECS,
        max_export_watts=MAX_EXPORT_WATTS,
        daily_mint_cap_wh=DAILY_MINT_CAP_WH,
        max_open_trades_per_buyer=MAX_OPEN_TRADES_PER_BUYER,
    )


def config_with(**changes: Any) -> Callable[[Pubkey], MarketConfig]:
    """:func:`config_for` with some settings changed, e.g. ``max_export_watts=100_000_000`` for a
    test on a validator, whose clock is waited for rather than moved."""

    def config(oracle: Pubkey) -> MarketConfig:
        return replace(config_for(oracle), **changes)

    return config


# The program's highest export limit, 100 MW: a JSON-RPC test mints in seconds of chain time.
FAST_EXPORT = config_with(max_export_watts=100_000_000)


async def open_market(
    h: Harness,
    market_id: int | None = None,
    config: Callable[[Pubkey], MarketConfig] = config_for,
    installer: Keypair | None = None,
) -> OpenMarket:
    """A new market (a random id unless given) with a fresh admin and oracle, its settings
    from ``config(oracle)``, approving ``installer`` (the test installer unless given);
    LiteSVM's clock is first moved to ``T0``."""
    if h.litesvm is not None and h.litesvm.svm.get_clock().unix_timestamp < T0:
        set_time(h, T0)
    admin, oracle = Keypair(), Keypair()
    installer = installer or local_installer()
    market_id = secrets.randbits(64) if market_id is None else market_id
    await h.client.market_initialize(
        payer=h.payer, admin=admin, market_id=market_id, config=config(oracle.pubkey())
    )
    address = market_address(h.client.program.program_id, market_id)[0]
    await h.client.installer_add(
        payer=h.payer, admin=admin, market=address, installer=installer.pubkey()
    )
    return OpenMarket(h, address, admin, oracle, installer)


def set_time(h: Harness, unix_timestamp: int) -> None:
    """Moves LiteSVM's clock (the JSON-RPC validator keeps its own)."""
    assert h.litesvm is not None
    h.litesvm.set_unix_time(unix_timestamp)


async def fund(h: Harness, address: Pubkey, lamports: int) -> None:
    """Sends lamports from the harness payer, on either chain."""
    params = TransferParams(from_pubkey=h.payer.pubkey(), to_pubkey=address, lamports=lamports)
    await h.chain.send([transfer(params)], [h.payer])


async def lamports(h: Harness, address: Pubkey) -> int:
    account = await h.chain.account(address)
    return 0 if account is None else account.lamports


async def new_table(h: Harness, addresses: Sequence[Pubkey]) -> LookupTable:
    """A table of the harness payer holding ``addresses``, created and extended in one
    transaction."""
    payer = h.payer.pubkey()
    create, address = create_lookup_table(
        authority=payer, payer=payer, recent_slot=(await recent_slots(h.chain))[0]
    )
    extend = extend_lookup_table(table=address, authority=payer, payer=payer, addresses=addresses)
    await h.chain.send([create, extend], [h.payer])
    table = await fetch_lookup_table(h.chain, address)
    if table is None:
        raise AccountNotFound(f"lookup table {address} is not on chain after its creation")
    return table


async def slot_after(h: Harness, table: LookupTable) -> int:
    """The first slot in which everything ``table`` holds can be looked up, once it has come."""
    while True:
        slot = await cluster_slot(h.chain)
        if slot > table.state.meta.last_extended_slot:
            return slot
        await asyncio.sleep(0.1)
