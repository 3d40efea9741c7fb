"""Typed access to the Market account, its settings, and the installers its admin approves."""

from __future__ import annotations

from dataclasses import dataclass, fields

from solders.pubkey import Pubkey

from nishati_client.codec import as_args, decoded_fields


@dataclass(frozen=True)
class MarketConfig:
    """A market's settings; money in KES cents, time in seconds, power in W, energy in Wh.

    ``cancel_grace_secs``: after a trade's deadline, how long only the oracle may cancel it (60
    to 86,400). ``max_export_watts``: the most power a meter may export; an attestation mints no
    more than it over the chain time since the meter's last one (1 to 1,000,000).
    ``daily_mint_cap_wh``: the most the whole market mints in a UTC day of the chain clock.
    ``max_open_trades_per_buyer``: the most pending trades one buyer household may hold.
    """

    oracle_authority: Pubkey
    fee_bps: int
    min_price_cents_per_kwh: int
    max_price_cents_per_kwh: int
    payment_deadline_secs: int
    cancel_grace_secs: int
    max_export_watts: int
    daily_mint_cap_wh: int
    max_open_trades_per_buyer: int

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
    cancel_grace_secs: int | None = None
    max_export_watts: int | None = None
    daily_mint_cap_wh: int | None = None
    max_open_trades_per_buyer: int | None = None

    def to_args(self) -> dict[str, object]:
        return as_args(self)


@dataclass(frozen=True)
class Market:
    """A decoded Market account. ``minted_today_wh`` counts what was minted in ``mint_day``
    (chain-clock Unix time // 86,400): the daily cap's count, restarted on a new day."""

    address: Pubkey
    admin: Pubkey
    market_id: int
    config: MarketConfig
    mint_day: int
    minted_today_wh: int
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
            mint_day=getattr(decoded, "mint_day"),  # noqa: B009
            minted_today_wh=getattr(decoded, "minted_today_wh"),  # noqa: B009
            paused=bool(getattr(decoded, "paused")),  # noqa: B009
            bump=getattr(decoded, "bump"),  # noqa: B009
            energy_mint=getattr(decoded, "energy_mint"),  # noqa: B009
            mint_bump=getattr(decoded, "mint_bump"),  # noqa: B009
        )


@dataclass(frozen=True)
class InstallerRecord:
    """A decoded InstallerRecord: the market admin's approval of an installer, whose signature
    vouches for the meters it registers. ``added_at`` is chain time."""

    address: Pubkey
    market: Pubkey
    installer: Pubkey
    rent_payer: Pubkey
    added_at: int
    bump: int

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> InstallerRecord:
        return cls(address=address, **decoded_fields(cls, decoded))
