"""The minting rules as the oracle counts them: the export limit over chain time, the day's
room under the cap, and which view of a household's last attestation wins."""

from __future__ import annotations

from nishati_oracle.readings.rules import (
    SECS_PER_DAY,
    MarketLimits,
    MeterOnChain,
    export_allowed_at,
    mint_day,
    next_day,
    within_export_limit,
)

DAY = 20_717  # some chain day
NOON = DAY * SECS_PER_DAY + SECS_PER_DAY // 2


def test_the_export_limit_counts_chain_time_from_the_last_attestation() -> None:
    # 10 kW: 1,000 Wh takes 360 s; a baseline (0 Wh) passes at once, even a second early.
    assert within_export_limit(1_000, 10_000, since=100, now=460)
    assert not within_export_limit(1_000, 10_000, since=100, now=459)
    assert within_export_limit(0, 10_000, since=100, now=100)
    assert within_export_limit(0, 10_000, since=100, now=99)
    assert not within_export_limit(1, 10_000, since=100, now=100)
    assert export_allowed_at(1_000, 10_000, since=100) == 460
    assert export_allowed_at(1, 10_000, since=100) == 101


def test_the_days_room_restarts_when_the_chain_day_turns() -> None:
    limits = MarketLimits(
        max_export_watts=10_000,
        daily_mint_cap_wh=1_000,
        mint_day=DAY,
        minted_today_wh=700,
        paused=False,
    )
    assert limits.room(NOON) == 300
    assert limits.room(next_day(NOON)) == 1_000
    assert mint_day(next_day(NOON)) == DAY + 1
    assert mint_day(next_day(NOON) - 1) == DAY
    spent = MarketLimits(10_000, 1_000, DAY, 1_200, False)  # the cap lowered below the count
    assert spent.room(NOON) == 0


def test_a_view_of_a_later_attestation_wins_and_the_time_is_never_lowered() -> None:
    baseline = MeterOnChain(meter_since=10, attested_at=10, counter=None, exported_wh=0)
    attested = MeterOnChain(meter_since=10, attested_at=500, counter=3, exported_wh=700)
    assert baseline.minted(900) == 0
    assert attested.minted(900) == 200
    assert baseline.newer(attested) is attested
    assert attested.newer(baseline) is attested
    # The oracle's upper bound (503) against the chain's exact time read afterwards (500).
    mine = MeterOnChain(10, 503, 3, 700)
    assert mine.newer(attested) is mine
    assert attested.newer(mine) is mine
