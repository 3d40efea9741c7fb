"""Rows the operator's tests store as the ledger would have them: trades in a given state."""

from __future__ import annotations

import secrets

from nishati_oracle.trading.ledger import TradeState


def trade_row(
    state: TradeState, updated_at: float, wh: int, buyer: str = "b", seller: str = "s"
) -> dict[str, object]:
    """A trade of ``wh`` at KES 25 per kWh in ``state``, last changed at ``updated_at``."""
    return {
        "id": secrets.token_hex(16),
        "state": state.value,
        "market": "m",
        "offer": "o",
        "seller": seller,
        "buyer": buyer,
        "trade_address": secrets.token_hex(8),
        "payment_ref_hash": bytes(32),
        "wh": wh,
        "price_cents_per_kwh": 2_500,
        "total_cents": wh * 25 // 10,
        "fee_cents": 0,
        "payout_kes": wh * 25 // 1_000,
        "buyer_phone": b"",
        "buyer_phone_hash": secrets.token_hex(8),
        "seller_phone": b"",
        "queries": 0,
        "next_check_at": updated_at,
        "created_at": updated_at - 60,
        "updated_at": updated_at,
    }
