"""Typed access to the Market account and its instructions."""

from __future__ import annotations

from dataclasses import dataclass, fields

from solders.pubkey import Pubkey

from nishati_client.codec import as_args


@dataclass(frozen=True)
class MarketConfig:
    """A market's settings; money in KES cents, time in seconds."""

    oracle_authority: Pubkey
    fee_bps: int
    min_price_cents_per_kwh: int
    max_price_cents_per_kwh: int
    payment_deadline_secs: int

    def to_args(self) -> dict[str, object]:
        return as_args(self)


@dataclass(frozen=True)
class MarketUpdate:
    """Settings to change; ``None`` keeps the current value."""

    oracle_authority: Pubkey | None = None
    fee_bps: int | None = None
    min_price_cents_per_kwh: int | None = None
    max_price_cents_per_kwh: int | None = None
    payment_deadline_secs: int | None = None

    def to_args(self) -> dict[str, object]:
        return as_args(self)


@dataclass(frozen=True)
class Market:
    """A decoded Market account."""

    address: Pubkey
    admin: Pubkey
    market_id: int
    config: MarketConfig
    paused: bool
    bump: int
    energy_mint: Pubkey
    mint_bump: int

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> Market:
        config = MarketConfig(**{f.name: getattr(decoded, f.name) for f in fields(MarketConfig)})
        return cls(
            address=address,
            admin=getattr(decoded, "admin"),  # noqa: B009 - anchorpy returns untyped Containers
            market_id=getattr(decoded, "market_id"),  # noqa: B009
            config=config,
            paused=bool(getattr(decoded, "paused")),  # noqa: B009
            bump=getattr(decoded, "bump"),  # noqa: B009
            energy_mint=getattr(decoded, "energy_mint"),  # noqa: B009
            mint_bump=getattr(decoded, "mint_bump"),  # noqa: B009
        )
