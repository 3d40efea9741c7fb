"""The queries behind the operator's pages, on the readings' and trades' tables: the market's
meters by their last reading, the readings the chain refused by reason, the trades by state.

Each is a range of an index (migration 0014), whatever the number of readings and trades: the
meters by ``ix_meters_last_timestamp``, the refused readings by the partial
``ix_readings_refused`` (which holds only them), each state's count and latest trades by
``ix_trades_state_updated``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.storage.schema import meters, readings, trades
from nishati_oracle.trading.ledger import TradeState


@dataclass(frozen=True)
class MeterLine:
    """One meter as the operator sees it: its household, its last accepted reading's time
    (its registration's while it has sent none) and the last counter the chain attested."""

    meter: str
    household: str
    has_reading: bool
    last_timestamp: int
    attested_counter: int | None


@dataclass(frozen=True)
class MeterSilence:
    """The market's meters: how many, how many are silent (no reading since ``silent_before``),
    and the most silent ones, most silent first."""

    total: int
    silent: int
    silent_before: int
    most_silent: list[MeterLine]


@dataclass(frozen=True)
class RefusedReadings:
    """The readings the chain refused for one reason: ``final`` for good (it never takes
    them), ``waiting`` tried again later, over ``meters`` meters."""

    reason: str
    final: int
    waiting: int
    meters: int


@dataclass(frozen=True)
class StateTrade:
    """One trade in a state's list."""

    trade_id: str
    buyer: str
    seller: str
    wh: int
    total_cents: int
    payout_kes: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TradesInState:
    state: TradeState
    trades: int
    latest: list[StateTrade]


class OperatorReads:
    """The operator pages' queries on the oracle's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def meter_silence(self, silent_before: int, limit: int) -> MeterSilence:
        silent = meters.c.last_timestamp < silent_before
        most_silent = (
            select(
                meters.c.meter,
                meters.c.household,
                meters.c.has_last,
                meters.c.last_timestamp,
                meters.c.attested_counter,
            )
            .order_by(meters.c.last_timestamp, meters.c.meter)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            total = int((await conn.execute(select(func.count()).select_from(meters))).scalar_one())
            silent_count = (await conn.execute(select(func.count()).where(silent))).scalar_one()
            rows = list(await conn.execute(most_silent))
        return MeterSilence(
            total=total,
            silent=int(silent_count),
            silent_before=silent_before,
            most_silent=[
                MeterLine(r.meter, r.household, r.has_last, r.last_timestamp, r.attested_counter)
                for r in rows
            ],
        )

    async def refused_readings(self) -> list[RefusedReadings]:
        """The chain's refusals by reason, the most readings first."""
        final = readings.c.attested_at.is_not(None)
        query = (
            select(
                readings.c.refused,
                func.count().filter(final).label("final"),
                func.count().filter(readings.c.attested_at.is_(None)).label("waiting"),
                func.count(readings.c.meter.distinct()).label("meters"),
            )
            .where(readings.c.refused.is_not(None))
            .group_by(readings.c.refused)
        )
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        found = [
            RefusedReadings(r.refused, int(r.final), int(r.waiting), int(r.meters)) for r in rows
        ]
        return sorted(found, key=lambda r: (-(r.final + r.waiting), r.reason))

    async def trades_by_state(self, latest: int) -> list[TradesInState]:
        """Each state that holds a trade, in the ledger's order of states, with how many and
        its ``latest`` most recently changed."""
        counts = select(trades.c.state, func.count()).group_by(trades.c.state)
        columns = (
            trades.c.id,
            trades.c.buyer,
            trades.c.seller,
            trades.c.wh,
            trades.c.total_cents,
            trades.c.payout_kes,
            trades.c.created_at,
            trades.c.updated_at,
        )
        found: list[TradesInState] = []
        async with self.engine.connect() as conn:
            counted = {TradeState(r[0]): int(r[1]) for r in await conn.execute(counts)}
            for state in TradeState:
                if state not in counted:
                    continue
                query = (
                    select(*columns)
                    .where(trades.c.state == state.value)
                    .order_by(trades.c.updated_at.desc())
                    .limit(latest)
                )
                lines = [
                    StateTrade(
                        trade_id=r.id,
                        buyer=r.buyer,
                        seller=r.seller,
                        wh=r.wh,
                        total_cents=r.total_cents,
                        payout_kes=r.payout_kes,
                        created_at=r.created_at,
                        updated_at=r.updated_at,
                    )
                    for r in await conn.execute(query)
                ]
                found.append(TradesInState(state, counted[state], lines))
        return found
