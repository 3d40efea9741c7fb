"""A market with its people on a chain: admin, oracle, households and their meters.

The demo, the benchmarks and the program tests all build on it, so each reads as the story it
tells. Works the same on LiteSVM (in-process) and on a JSON-RPC validator.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.clock import Clock
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from nishati_client.chain import Chain, LiteSvmChain, TxOutcome, cluster_time
from nishati_client.household import Household
from nishati_client.market import MarketConfig
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient
from nishati_client.readings import Reading, SignedReading, meter_public_key, sign
from nishati_client.trading import Offer, Trade


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


@dataclass
class Member:
    """A registered household and who signs for it (its owner, or the oracle if custodial)."""

    address: Pubkey
    owner: Pubkey
    authority: Keypair
    meter: Meter
    energy_account: Pubkey


@dataclass
class OpenMarket:
    """A market initialised on the harness's chain."""

    h: Harness
    address: Pubkey
    admin: Keypair
    oracle: Keypair

    @property
    def energy_mint(self) -> Pubkey:
        return self.h.client.program.energy_mint(self.address)

    async def now(self) -> int:
        return await cluster_time(self.h.chain)

    async def register(
        self,
        *,
        custodial: bool = False,
        meter: Meter | None = None,
        phone_commitment: bytes | None = None,
    ) -> Member:
        """A household with a wallet (registering itself) or a custodial one (by the oracle);
        its phone commitment a random stand-in unless given."""
        owner = Keypair()
        authority = self.oracle if custodial else owner
        meter = meter or Meter(self.address)
        created = await self.h.client.household_register(
            payer=self.h.payer,
            authority=authority,
            market=self.address,
            owner=owner.pubkey(),
            meter=meter.public_key,
            phone_commitment=phone_commitment
            or digest(f"salt|+2547{secrets.randbelow(10**8):08d}"),
        )
        return Member(
            created.address,
            owner.pubkey(),
            authority,
            meter,
            self.h.client.program.energy_account(created.address),
        )

    async def attest(self, *pairs: tuple[Member, SignedReading]) -> TxOutcome:
        return await self.h.client.meter_attest(
            payer=self.h.payer,
            oracle=self.oracle,
            market=self.address,
            readings=[(signed, member.address) for member, signed in pairs],
        )

    async def mint(self, member: Member, wh: int) -> None:
        """Gives a fresh household ``wh`` energy: a baseline reading, then ``wh`` exported."""
        now = await self.now()
        await self.attest((member, member.meter.read(now)))
        await self.attest((member, member.meter.read(now, exported_wh=wh)))

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

    async def balance(self, member: Member) -> int:
        return await self.h.client.energy_balance(member.energy_account)


def config_for(oracle: Pubkey) -> MarketConfig:
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=MIN_PRICE,
        max_price_cents_per_kwh=MAX_PRICE,
        payment_deadline_secs=PAYMENT_DEADLINE_SECS,
    )


async def open_market(
    h: Harness,
    market_id: int | None = None,
    config: Callable[[Pubkey], MarketConfig] = config_for,
) -> OpenMarket:
    """A new market (a random id unless given) with a fresh admin and oracle, its settings
    from ``config(oracle)``; LiteSVM's clock is first moved to ``T0``."""
    if h.litesvm is not None and h.litesvm.svm.get_clock().unix_timestamp < T0:
        set_time(h, T0)
    admin, oracle = Keypair(), Keypair()
    market_id = secrets.randbits(64) if market_id is None else market_id
    await h.client.market_initialize(
        payer=h.payer, admin=admin, market_id=market_id, config=config(oracle.pubkey())
    )
    return OpenMarket(h, market_address(h.client.program.program_id, market_id)[0], admin, oracle)


def set_time(h: Harness, unix_timestamp: int) -> None:
    """Moves LiteSVM's clock (the JSON-RPC validator keeps its own)."""
    assert h.litesvm is not None
    clock = h.litesvm.svm.get_clock()
    h.litesvm.svm.set_clock(
        Clock(
            clock.slot,
            clock.epoch_start_timestamp,
            clock.epoch,
            clock.leader_schedule_epoch,
            unix_timestamp,
        )
    )


async def fund(h: Harness, address: Pubkey, lamports: int) -> None:
    """Sends lamports from the harness payer, on either chain."""
    params = TransferParams(from_pubkey=h.payer.pubkey(), to_pubkey=address, lamports=lamports)
    await h.chain.send([transfer(params)], [h.payer])


async def lamports(h: Harness, address: Pubkey) -> int:
    account = await h.chain.account(address)
    return 0 if account is None else account.lamports
