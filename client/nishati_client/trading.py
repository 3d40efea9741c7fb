"""Typed Offer and Trade accounts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from solders.pubkey import Pubkey

from nishati_client.codec import decoded_fields


@dataclass(frozen=True)
class Offer:
    """A decoded Offer account; energy in Wh, price in KES cents per kWh, time in Unix seconds.
    ``next_trade_index`` is the index (and address seed) of the next trade opened on it."""

    address: Pubkey
    market: Pubkey
    seller: Pubkey
    escrow: Pubkey
    rent_payer: Pubkey
    offer_id: int
    price_cents_per_kwh: int
    unreserved_wh: int
    reserved_wh: int
    expires_at: int
    created_at: int
    next_trade_index: int
    bump: int
    escrow_bump: int
    cancelled: bool

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> Offer:
        return cls(address=address, **decoded_fields(cls, decoded))


@dataclass(frozen=True)
class Trade:
    """A decoded Trade account, open until settled or cancelled; money in KES cents."""

    address: Pubkey
    market: Pubkey
    offer: Pubkey
    buyer: Pubkey
    buyer_energy_account: Pubkey
    rent_payer: Pubkey
    payment_ref_hash: bytes
    trade_index: int
    wh: int
    price_cents_per_kwh: int
    total_cents: int
    created_at: int
    deadline: int
    bump: int

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> Trade:
        return cls(address=address, **decoded_fields(cls, decoded))


def payment_reference(trade_id: str) -> bytes:
    """The 32-byte payment reference a trade is opened under (kept in the Trade account and its
    TradeOpened event): SHA-256 of the oracle's own trade id, so the chain never sees a phone or
    an M-Pesa reference."""
    return hashlib.sha256(b"nishati-trade:" + trade_id.encode()).digest()
