"""Test-only helpers on top of :mod:`nishati_dev.sandbox`: state snapshots, refusals, and the
world the attack suites start from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiProgramError
from nishati_client.market import MarketConfig
from nishati_client.program import NishatiProgram
from nishati_client.trading import Offer, Trade
from nishati_dev.sandbox import (
    FAST_EXPORT,
    MAX_PRICE,
    MIN_PRICE,
    PAYMENT_DEADLINE_SECS,
    T0,
    Harness,
    Member,
    Meter,
    OpenMarket,
    config_for,
    config_with,
    digest,
    fund,
    lamports,
    open_market,
    set_time,
)

__all__ = [
    "FAST_EXPORT",
    "MAX_PRICE",
    "MIN_PRICE",
    "PAYMENT_DEADLINE_SECS",
    "T0",
    "Harness",
    "Member",
    "Meter",
    "OpenMarket",
    "Snapshot",
    "World",
    "config_for",
    "config_with",
    "digest",
    "fund",
    "lamports",
    "open_market",
    "refused",
    "set_time",
    "snapshot",
    "world_in",
]

Snapshot = dict[Pubkey, tuple[int, Pubkey, bytes] | None]


async def snapshot(h: Harness, addresses: Iterable[Pubkey]) -> Snapshot:
    """Lamports, owner and data of each account (``None`` if it does not exist)."""
    state: Snapshot = {}
    for address in addresses:
        account = await h.chain.account(address)
        state[address] = (
            None if account is None else (account.lamports, account.owner, bytes(account.data))
        )
    return state


async def refused(
    h: Harness, error: str, watched: Iterable[Pubkey], action: Callable[[], Awaitable[object]]
) -> NishatiProgramError:
    """Runs ``action``, expecting program error ``error`` and no change to ``watched``."""
    watched = list(watched)
    before = await snapshot(h, watched)
    with pytest.raises(NishatiProgramError) as failure:
        await action()
    assert failure.value.name == error, failure.value.logs
    assert await snapshot(h, watched) == before
    return failure.value


SELLER_WH = 5_000
OFFER_WH = 3_000
TRADE_WH = 1_000
PRICE = 2_000


@dataclass
class World:
    """A market with a seller holding energy, an offer, a custodial buyer's pending trade, and
    a stranger who may act for none of them."""

    h: Harness
    market: OpenMarket
    seller: Member
    buyer: Member
    offer: Offer
    trade: Trade
    stranger: Keypair

    @property
    def program(self) -> NishatiProgram:
        return self.h.client.program

    @property
    def accounts(self) -> list[Pubkey]:
        """Every account of the world, watched for changes."""
        members = [
            address
            for m in (self.seller, self.buyer)
            for address in (
                m.address,
                m.energy_account,
                self.program.meter_record_address(self.market.address, m.meter.public_key),
            )
        ]
        market = [self.market.address, self.market.energy_mint]
        return [*market, *members, self.offer.address, self.offer.escrow, self.trade.address]

    async def expect(
        self,
        error: str,
        action: Callable[[], Awaitable[object]],
        watched: Iterable[Pubkey] = (),
    ) -> NishatiProgramError:
        """Runs ``action``, expecting ``error`` and no change to the world or ``watched``."""
        return await refused(self.h, error, [*self.accounts, *watched], action)

    async def send(self, instructions: list[Instruction], *signers: Keypair) -> None:
        await self.h.chain.send(instructions, [self.h.payer, *signers])


AnyWorld = TypeVar("AnyWorld", bound=World)


async def world_in(
    h: Harness,
    kind: type[AnyWorld],
    config: Callable[[Pubkey], MarketConfig] = config_for,
) -> AnyWorld:
    """A :class:`World` (or ``kind`` of it) on a new market with settings ``config``: the seller
    holds ``SELLER_WH``, offers ``OFFER_WH`` at ``PRICE``, and the buyer's trade holds
    ``TRADE_WH``."""
    market = await open_market(h, config=config)
    seller = await market.register()
    await market.mint(seller, SELLER_WH)
    buyer = await market.register(custodial=True)
    offer = await market.offer(seller, OFFER_WH, PRICE)
    trade = await market.open_trade(offer, buyer, TRADE_WH)
    return kind(h, market, seller, buyer, offer, trade, Keypair())
