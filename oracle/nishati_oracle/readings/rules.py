"""The program's minting rules, as the oracle checks them before the chain does: one home for
the pipeline (before it answers "stored") and the batcher (before it sends).

Each rule counts in the chain's time (the Clock sysvar, :class:`~.clock.ChainClock`), never in
the meter's timestamps, which the meter signs and may set as it likes:

- a reading dated before its meter was registered (``meter_since``) is refused
  (``ReadingBeforeMeterRegistered``);
- the Wh a reading mints may not exceed the market's ``max_export_watts`` over the chain time
  since the household's last attestation (``ExportAboveMeterLimit``; the allowance as the
  client computes it, :func:`nishati_client.readings.export_allowance_wh`); an attestation sets
  ``last_attested_at`` to its own time, so a second reading of one meter in one transaction
  may mint nothing. Coming in, a reading is given ``readings.export_wait_secs`` of chain time
  more (an honest meter's next reading often arrives in the chain second of its last
  attestation); the batcher holds it until the chain allows it;
- the market mints at most ``daily_mint_cap_wh`` a chain day (``now`` div 86,400), counted
  from zero when the day turns (``MintCeilingReached``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nishati_client.household import Household
from nishati_client.market import Market
from nishati_client.readings import export_allowance_wh, export_secs

SECS_PER_DAY = 86_400


@dataclass(frozen=True)
class MeterOnChain:
    """What the chain holds of a meter's household, as far as the oracle knows: where its
    export limit counts from. ``attested_at`` is exact when read from the chain, and an upper
    bound after the oracle's own attestation (the cluster time read once it was confirmed),
    so the oracle never counts more chain time than the program does."""

    meter_since: int
    attested_at: int
    # The last attested reading's counter and export; None before the meter's baseline.
    counter: int | None
    exported_wh: int

    @classmethod
    def of(cls, household: Household) -> MeterOnChain:
        return cls(
            meter_since=household.meter_since,
            attested_at=household.last_attested_at,
            counter=household.last_counter if household.has_baseline else None,
            exported_wh=household.meter_exported_wh if household.has_baseline else 0,
        )

    def minted(self, exported_wh: int) -> int:
        """The Wh a reading of this cumulative export mints (none for the baseline)."""
        return 0 if self.counter is None else max(0, exported_wh - self.exported_wh)

    def newer(self, other: MeterOnChain) -> MeterOnChain:
        """The later of two views of one meter: the further attestation; of two views of the
        same one, the later time (the oracle's upper bound is never lowered by a chain read
        that answered from before it)."""
        mine, theirs = _rank(self), _rank(other)
        if mine != theirs:
            return self if mine > theirs else other
        return self if self.attested_at >= other.attested_at else other


def _rank(view: MeterOnChain) -> int:
    return -1 if view.counter is None else view.counter


@dataclass(frozen=True)
class MarketLimits:
    """The market's minting limits and the day's count, as last read."""

    max_export_watts: int
    daily_mint_cap_wh: int
    mint_day: int
    minted_today_wh: int
    paused: bool

    @classmethod
    def of(cls, market: Market) -> MarketLimits:
        return cls(
            max_export_watts=market.config.max_export_watts,
            daily_mint_cap_wh=market.config.daily_mint_cap_wh,
            mint_day=market.mint_day,
            minted_today_wh=market.minted_today_wh,
            paused=market.paused,
        )

    def room(self, now: int) -> int:
        """The Wh the market may still mint on ``now``'s chain day."""
        minted = self.minted_today_wh if self.mint_day == mint_day(now) else 0
        return max(0, self.daily_mint_cap_wh - minted)


def mint_day(now: int) -> int:
    """The chain day of a time (``div_euclid``, as the program counts it)."""
    return now // SECS_PER_DAY


def next_day(now: int) -> int:
    """When the chain day after ``now``'s starts: the daily count restarts then."""
    return (mint_day(now) + 1) * SECS_PER_DAY


def within_export_limit(minted_wh: int, max_export_watts: int, since: int, now: int) -> bool:
    """Whether ``minted_wh`` keeps to ``max_export_watts`` over the chain time from ``since``
    to ``now`` (a baseline mints nothing and always passes)."""
    return minted_wh <= export_allowance_wh(max_export_watts, now - since)


def export_allowed_at(minted_wh: int, max_export_watts: int, since: int) -> int:
    """The first chain time at which ``minted_wh`` keeps to the export limit."""
    return since + export_secs(minted_wh, max_export_watts)
