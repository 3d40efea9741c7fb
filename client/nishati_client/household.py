"""Typed Household and MeterRecord accounts."""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey

from nishati_client.codec import decoded_fields
from nishati_client.readings import LastReading


@dataclass(frozen=True)
class Household:
    """A decoded Household account; energy in Wh. ``installer`` vouched for the current meter;
    ``meter_since`` (chain time of its registration) is the earliest a reading may be dated;
    ``last_attested_at`` (chain time of its last attestation, or its registration) starts the
    time over which the next attestation may mint at most the market's ``max_export_watts``;
    ``open_trades`` counts the pending trades it is the buyer of."""

    address: Pubkey
    market: Pubkey
    owner: Pubkey
    meter: Pubkey
    installer: Pubkey
    phone_commitment: bytes
    energy_account: Pubkey
    last_counter: int
    last_timestamp: int
    meter_since: int
    last_attested_at: int
    meter_exported_wh: int
    meter_imported_wh: int
    total_exported_wh: int
    total_imported_wh: int
    redeemed_wh: int
    next_offer_id: int
    open_trades: int
    bump: int
    energy_bump: int
    custodial: bool
    has_baseline: bool

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> Household:
        return cls(address=address, **decoded_fields(cls, decoded))

    @property
    def last_reading(self) -> LastReading | None:
        """The current meter's last accepted reading; ``None`` before its baseline."""
        if not self.has_baseline:
            return None
        return LastReading(
            counter=self.last_counter,
            timestamp=self.last_timestamp,
            exported_wh=self.meter_exported_wh,
            imported_wh=self.meter_imported_wh,
        )


@dataclass(frozen=True)
class MeterRecord:
    """A decoded MeterRecord: the one household a meter key belongs to."""

    address: Pubkey
    household: Pubkey
    bump: int
    retired: bool

    @classmethod
    def from_decoded(cls, address: Pubkey, decoded: object) -> MeterRecord:
        return cls(address=address, **decoded_fields(cls, decoded))
