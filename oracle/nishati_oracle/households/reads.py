"""The queries behind a household's own pages, on the readings' and trades' tables.

A meter sends cumulative totals; what it measured over an interval is the difference between
two consecutive readings of the same meter, export and import each on its own (never netted).
A household may have had more than one meter (a replaced one): each meter's readings are taken
apart, and a meter's first reading ever is its baseline, the start of its first interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.daraja.credentials import NAIROBI
from nishati_oracle.storage.schema import meters, readings, trade_history, trades
from nishati_oracle.trading.ledger import TradeState

# Trades whose buyer's money stays with the market (not refused, not given back).
SPENT_STATES = frozenset(
    {
        TradeState.paid,
        TradeState.settled,
        TradeState.payout_sent,
        TradeState.payout_confirmed,
        TradeState.payout_failed,
        TradeState.payout_unknown,
    }
)
# Trades whose seller is owed a payout not yet confirmed.
OWED_STATES = frozenset(
    {
        TradeState.settled,
        TradeState.payout_sent,
        TradeState.payout_failed,
        TradeState.payout_unknown,
    }
)


@dataclass(frozen=True)
class Interval:
    """What one meter measured between two of its readings (Unix seconds, Wh)."""

    meter: str
    start: int
    end: int
    exported_wh: int
    imported_wh: int


@dataclass(frozen=True)
class Day:
    """A household's intervals ending within one day of Nairobi time, oldest first."""

    day: date
    start: int
    end: int
    meters: list[str]
    intervals: list[Interval]

    @property
    def exported_wh(self) -> int:
        return sum(i.exported_wh for i in self.intervals)

    @property
    def imported_wh(self) -> int:
        return sum(i.imported_wh for i in self.intervals)


@dataclass(frozen=True)
class Money:
    """A household's trades summed, by what became of them; KES cents, Wh."""

    spent_cents: int
    bought_wh: int
    earned_cents: int
    owed_cents: int
    sold_wh: int


@dataclass(frozen=True)
class SolarDay:
    """Where the energy a household exported in one day of Nairobi time went (Wh): sold to
    neighbours (its trades as seller settled that day) or to the grid (the rest, never
    negative). What its panels made and the home used itself never passes the meter, which
    sits at the grid connection."""

    day: date
    exported_wh: int
    sold_wh: int
    sold_trades: int

    @property
    def to_grid_wh(self) -> int:
        return max(0, self.exported_wh - self.sold_wh)


@dataclass(frozen=True)
class TradeLine:
    """One trade as its buyer or its seller sees it."""

    trade_id: str
    role: str  # buyer or seller
    state: TradeState
    offer: str
    wh: int
    price_cents_per_kwh: int
    total_cents: int
    fee_cents: int
    payout_kes: int
    mpesa_receipt: str | None
    payout_receipt: str | None
    refund_method: str | None
    refund_receipt: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class MeterHealth:
    """One of a household's meters: its last reading, and how many of its readings wait for
    the chain or were refused by it."""

    meter: str
    last_counter: int | None
    last_timestamp: int | None
    last_exported_wh: int | None
    last_imported_wh: int | None
    attested_counter: int | None
    unattested: int
    refused: int


def day_bounds(day: date) -> tuple[int, int]:
    """The Unix seconds a day of Nairobi time starts and ends at."""
    start = datetime(day.year, day.month, day.day, tzinfo=NAIROBI)
    return int(start.timestamp()), int((start + timedelta(days=1)).timestamp())


def intervals_of(meter: str, ordered: Sequence[tuple[int, int, int]]) -> list[Interval]:
    """The intervals between consecutive readings ``(timestamp, exported, imported)`` of one
    meter, in counter order."""
    return [Interval(meter, a[0], b[0], b[1] - a[1], b[2] - a[2]) for a, b in pairwise(ordered)]


class HouseholdReads:
    """The household pages' queries on the oracle's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def meters_of(self, household: str) -> list[str]:
        query = select(meters.c.meter).where(meters.c.household == household)
        async with self.engine.connect() as conn:
            return sorted(row.meter for row in await conn.execute(query))

    async def day(self, household: str, day: date) -> Day:
        """The intervals of each of the household's meters that end within ``day``; the
        first starts at the meter's last reading before the day (if it has one).

        A meter's timestamps never fall as its counter rises (``check_progress``), so
        (timestamp, counter) is counter order, and both queries are ranges of
        ``ix_readings_meter_timestamp``: the day's rows and one before, whatever the history."""
        start, end = day_bounds(day)
        found = await self.meters_of(household)
        intervals: list[Interval] = []
        columns = (readings.c.timestamp, readings.c.exported_wh, readings.c.imported_wh)
        async with self.engine.connect() as conn:
            for meter in found:
                before = (
                    select(*columns)
                    .where(and_(readings.c.meter == meter, readings.c.timestamp < start))
                    .order_by(readings.c.timestamp.desc(), readings.c.counter.desc())
                    .limit(1)
                )
                within = (
                    select(*columns)
                    .where(
                        and_(
                            readings.c.meter == meter,
                            readings.c.timestamp >= start,
                            readings.c.timestamp < end,
                        )
                    )
                    .order_by(readings.c.timestamp, readings.c.counter)
                )
                rows = [(r[0], r[1], r[2]) for r in await conn.execute(before)]
                rows += [(r[0], r[1], r[2]) for r in await conn.execute(within)]
                intervals += intervals_of(meter, rows)
        intervals.sort(key=lambda i: (i.end, i.meter))
        return Day(day, start, end, found, intervals)

    async def solar(self, household: str, day: date) -> SolarDay:
        """The day's export and the energy of the household's sales settled within it (a
        trade's first ``settled`` in its history: settled on chain, whatever became of its
        payout after)."""
        start, end = day_bounds(day)
        exported = (await self.day(household, day)).exported_wh
        # The household's sales opened before the day ended (``ix_trades_seller``), each
        # with when it was first settled (``trade_history``'s index on the trade).
        sales = select(trades.c.id).where(
            and_(trades.c.seller == household, trades.c.created_at < end)
        )
        settled = (
            select(trade_history.c.trade_id, func.min(trade_history.c.at).label("at"))
            .where(
                and_(
                    trade_history.c.trade_id.in_(sales),
                    trade_history.c.state == TradeState.settled.value,
                )
            )
            .group_by(trade_history.c.trade_id)
            .subquery()
        )
        sold = (
            select(func.coalesce(func.sum(trades.c.wh), 0), func.count())
            .select_from(trades.join(settled, settled.c.trade_id == trades.c.id))
            .where(and_(settled.c.at >= start, settled.c.at < end))
        )
        async with self.engine.connect() as conn:
            sold_wh, count = (int(v) for v in (await conn.execute(sold)).one())
        return SolarDay(day, exported, sold_wh, count)

    async def money(self, household: str) -> Money:
        spent = [s.value for s in SPENT_STATES]
        owed = [s.value for s in OWED_STATES]
        bought = select(
            func.coalesce(func.sum(trades.c.total_cents), 0),
            func.coalesce(func.sum(trades.c.wh), 0),
        ).where(and_(trades.c.buyer == household, trades.c.state.in_(spent)))
        sold = select(
            func.coalesce(
                func.sum(trades.c.payout_kes).filter(
                    trades.c.state == TradeState.payout_confirmed.value
                ),
                0,
            ),
            func.coalesce(func.sum(trades.c.payout_kes).filter(trades.c.state.in_(owed)), 0),
            func.coalesce(func.sum(trades.c.wh), 0),
        ).where(and_(trades.c.seller == household, trades.c.state.in_(spent)))
        async with self.engine.connect() as conn:
            spent_cents, bought_wh = (int(v) for v in (await conn.execute(bought)).one())
            earned_kes, owed_kes, sold_wh = (int(v) for v in (await conn.execute(sold)).one())
        return Money(spent_cents, bought_wh, earned_kes * 100, owed_kes * 100, sold_wh)

    async def trades_of(
        self, household: str, limit: int, before: float | None = None
    ) -> list[TradeLine]:
        """The household's trades as buyer or seller, newest first (those created before
        ``before``, if given)."""
        where = or_(trades.c.buyer == household, trades.c.seller == household)
        if before is not None:
            where = and_(where, trades.c.created_at < before)
        query = select(trades).where(where).order_by(trades.c.created_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        return [
            TradeLine(
                trade_id=r.id,
                role="buyer" if r.buyer == household else "seller",
                state=TradeState(r.state),
                offer=r.offer,
                wh=r.wh,
                price_cents_per_kwh=r.price_cents_per_kwh,
                total_cents=r.total_cents,
                fee_cents=r.fee_cents,
                payout_kes=r.payout_kes,
                mpesa_receipt=r.mpesa_receipt,
                payout_receipt=r.payout_receipt,
                refund_method=r.refund_method,
                refund_receipt=r.refund_receipt,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    async def meter_health(self, household: str) -> list[MeterHealth]:
        counts = (
            select(
                readings.c.meter,
                func.count().filter(readings.c.attested_at.is_(None)).label("unattested"),
                func.count()
                .filter(
                    and_(
                        readings.c.attested_at.is_not(None),
                        readings.c.attest_signature.is_(None),
                        readings.c.refused.is_not(None),
                    )
                )
                .label("refused"),
            )
            .where(
                readings.c.meter.in_(select(meters.c.meter).where(meters.c.household == household))
            )
            .group_by(readings.c.meter)
            .subquery()
        )
        query = (
            select(meters, counts.c.unattested, counts.c.refused)
            .outerjoin(counts, counts.c.meter == meters.c.meter)
            .where(meters.c.household == household)
            .order_by(meters.c.meter)
        )
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        return [
            MeterHealth(
                meter=r.meter,
                last_counter=r.last_counter if r.has_last else None,
                last_timestamp=r.last_timestamp if r.has_last else None,
                last_exported_wh=r.last_exported_wh if r.has_last else None,
                last_imported_wh=r.last_imported_wh if r.has_last else None,
                attested_counter=r.attested_counter,
                unattested=int(r.unattested or 0),
                refused=int(r.refused or 0),
            )
            for r in rows
        ]
