"""Auto-sell: the oracle keeps one offer open for a custodial household's forecast surplus,
within the limits the household set (a floor price, a share of the surplus, a most per offer).

Only a custodial household can opt in: the oracle is its authority on chain and signs its
offers; a household with its own wallet signs its own (``nishati offer create``), and the
oracle holds no key that could. Each round, for each household opted in, the advisor's sale
(how much, at what price, until when) is cut to the limits and to the energy the household
holds; an open automatic offer that still fits (its price, its energy within the tolerance,
its end) is kept, one that does not is cancelled and replaced. Every automatic offer is
recorded with why it was made (the forecast surplus, the share, the balance, the prices) and,
once closed, why it was closed. Stopping cancels the open one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, ConfigDict, Field
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_client.chain import cluster_time
from nishati_client.errors import AccountNotFound, NishatiClientError
from nishati_client.household import Household
from nishati_client.market import MarketConfig
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.advice import Advice
from nishati_oracle.forecast.sources import Advisor
from nishati_oracle.storage.schema import WHY_CHARS, auto_sell, auto_sell_offers

log = structlog.get_logger(__name__)

# An offer ending sooner than this is not worth making (or keeping): a buyer needs time.
MIN_OFFER_SECS = 900
# The most automatic offers one answer lists, newest first.
OFFERS_LISTED = 100


class AutoSellLimits(BaseModel):
    """What a household lets the oracle do for it."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    floor_price_cents_per_kwh: int = Field(
        gt=0, description="Never sell below this, KES cents per kWh (within the market's bounds)"
    )
    share_percent: int = Field(
        ge=0, le=100, description="Offer at most this share of the forecast surplus, percent"
    )
    max_wh_per_offer: int = Field(gt=0, description="Offer at most this much at once, Wh")


class AutoSellState(AutoSellLimits):
    household: str
    set_by: str = Field(description="Who set them: operator, owner:<key> or installer:<key>")
    updated_at: float


class AutoOffer(BaseModel):
    """An automatic offer, and why it was made and closed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    household: str
    offer: str = Field(description="The offer's account")
    wh: int
    price_cents_per_kwh: int
    expires_at: int = Field(description="Chain time")
    forecast_surplus_wh: int
    balance_wh: int
    advisor: str
    why: str
    signature: str = Field(description="The transaction that created it")
    created_at: float
    closed_at: float | None
    closed_why: str | None


class AutoSellStore:
    """The opted-in households' limits and their automatic offers."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def limits(self, household: str) -> AutoSellState | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(auto_sell).where(auto_sell.c.household == household))
            ).first()
        return None if row is None else AutoSellState.model_validate(row._mapping)

    async def opted_in(self) -> list[AutoSellState]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(auto_sell).order_by(auto_sell.c.household))).all()
        return [AutoSellState.model_validate(row._mapping) for row in rows]

    async def set_limits(
        self, household: str, limits: AutoSellLimits, set_by: str, now: float
    ) -> AutoSellState:
        values = {"household": household, **limits.model_dump(), "set_by": set_by}
        values["updated_at"] = now
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(auto_sell).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[auto_sell.c.household],
            set_={name: statement.excluded[name] for name in values if name != "household"},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)
        return AutoSellState.model_validate(values)

    async def stop(self, household: str) -> bool:
        """Opts the household out; whether it was in."""
        async with self.engine.begin() as conn:
            done = await conn.execute(delete(auto_sell).where(auto_sell.c.household == household))
        return bool(done.rowcount)

    async def open_offer(self, household: str) -> AutoOffer | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(auto_sell_offers).where(
                        auto_sell_offers.c.household == household,
                        auto_sell_offers.c.closed_at.is_(None),
                    )
                )
            ).first()
        return None if row is None else AutoOffer.model_validate(row._mapping)

    async def offers(self, household: str, limit: int = OFFERS_LISTED) -> list[AutoOffer]:
        """The household's automatic offers, newest first."""
        query = (
            select(auto_sell_offers)
            .where(auto_sell_offers.c.household == household)
            .order_by(auto_sell_offers.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AutoOffer.model_validate(row._mapping) for row in rows]

    async def made(self, made: MadeOffer, now: float) -> None:
        values = {**vars(made), "why": made.why[:WHY_CHARS], "created_at": now}
        async with self.engine.begin() as conn:
            await conn.execute(insert(auto_sell_offers).values(values))

    async def closed(self, offer_id: int, why: str, now: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(auto_sell_offers)
                .where(auto_sell_offers.c.id == offer_id)
                .values(closed_at=now, closed_why=why[:WHY_CHARS])
            )


@dataclass(frozen=True)
class MadeOffer:
    """An automatic offer as it is recorded when made."""

    household: str
    offer: str
    wh: int
    price_cents_per_kwh: int
    expires_at: int
    forecast_surplus_wh: int
    balance_wh: int
    advisor: str
    why: str
    signature: str


@dataclass(frozen=True)
class Target:
    """The offer a household's limits and the advice call for now; ``wh`` 0: none."""

    wh: int
    price_cents_per_kwh: int
    expires_at: int
    forecast_surplus_wh: int
    balance_wh: int
    advisor: str
    why: str


def target_offer(
    limits: AutoSellLimits,
    advice: Advice,
    config: MarketConfig,
    balance_wh: int,
    chain_now: int,
    min_offer_wh: int,
) -> Target:
    """What to keep on offer: the advised sale cut to the share of the surplus, the most per
    offer and the energy held, at the advised price raised to the floor, within the market's
    bounds, until the advised end; ``wh`` 0 and why when there is nothing to offer."""
    sale = advice.sell
    surplus = 0 if sale is None else sale.offer_wh
    advised_price = config.min_price_cents_per_kwh if sale is None else sale.price_cents_per_kwh
    # Never below the floor: a floor above the market's bounds (changed since) offers nothing.
    price = max(
        min(advised_price, config.max_price_cents_per_kwh),
        limits.floor_price_cents_per_kwh,
        config.min_price_cents_per_kwh,
    )
    shared = surplus * limits.share_percent // 100
    wh = min(shared, limits.max_wh_per_offer, balance_wh)
    until = chain_now if sale is None else sale.until
    why = (
        f"advisor {advice.advisor}: sell {surplus:,} Wh at {advised_price:,} c/kWh until "
        f"{until}; {limits.share_percent} % share: {shared:,} Wh; at most "
        f"{limits.max_wh_per_offer:,} Wh per offer; {balance_wh:,} Wh held; price "
        f"{price:,} c/kWh (floor {limits.floor_price_cents_per_kwh:,}, market "
        f"{config.min_price_cents_per_kwh:,}-{config.max_price_cents_per_kwh:,})"
    )
    if sale is None:
        return Target(0, price, until, 0, balance_wh, advice.advisor, f"{why}: nothing to sell")
    if price > config.max_price_cents_per_kwh:
        why = f"{why}: the floor is above the market's highest price"
        return Target(0, price, until, surplus, balance_wh, advice.advisor, why)
    if until < chain_now + MIN_OFFER_SECS:
        why = f"{why}: it ends within {MIN_OFFER_SECS} s"
        return Target(0, price, until, surplus, balance_wh, advice.advisor, why)
    if wh < min_offer_wh:
        why = f"{why}: {wh:,} Wh is under the {min_offer_wh:,} Wh worth an offer"
        return Target(0, price, until, surplus, balance_wh, advice.advisor, why)
    return Target(wh, price, until, surplus, balance_wh, advice.advisor, why)


def still_fits(offer: Offer, target: Target, tolerance_percent: int, chain_now: int) -> bool:
    """Whether an open automatic offer already is what the target asks (near enough)."""
    if offer.cancelled or offer.expires_at < chain_now + MIN_OFFER_SECS:
        return False
    if offer.price_cents_per_kwh != target.price_cents_per_kwh:
        return False
    return abs(offer.unreserved_wh - target.wh) * 100 <= tolerance_percent * target.wh


class NotCustodial(Exception):
    """Auto-sell asked of a household the oracle cannot sign offers for."""


class AutoSeller:
    """Keeps each opted-in household's automatic offer in line with its forecast."""

    def __init__(
        self,
        store: AutoSellStore,
        client: NishatiClient,
        oracle: Keypair,
        market: Pubkey,
        settings: ForecastSettings,
        advisor: Callable[[], Advisor | None],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.client = client
        self.oracle = oracle
        self.market = market
        self.settings = settings
        self.advisor = advisor
        self.clock = clock
        self._wake = asyncio.Event()
        # One household's offer is changed by one of the round and the routes at a time.
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """Tends every household now (limits changed), not at the next round."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the round: limits set while it runs wake the next one.
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("auto-sell round failed")
            waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED),
                    self.settings.auto_sell_interval_secs,
                )
            for waiting in waits:
                waiting.cancel()

    async def run_once(self) -> None:
        """One round over every household opted in; one that fails is logged and left to the
        next round."""
        advisor = self.advisor()
        if advisor is None:
            return
        for opted_in in await self.store.opted_in():
            try:
                async with self._lock:
                    # Read again under the lock: the household may have stopped meanwhile.
                    limits = await self.store.limits(opted_in.household)
                    if limits is not None:
                        await self._tend(limits, advisor)
            except Exception:
                log.exception("auto-sell failed", household=opted_in.household)

    async def _tend(self, limits: AutoSellState, advisor: Advisor) -> None:
        address = Pubkey.from_string(limits.household)
        # Custody is fixed at registration, and only custodial households opt in.
        household = await self.client.household(address)
        open_row = await self.store.open_offer(limits.household)
        current = None if open_row is None else await self._offer(open_row)
        # The open offer's unreserved energy comes back when it is replaced: it counts as held.
        returning = 0 if current is None or current.cancelled else current.unreserved_wh
        advice = await advisor.advise(limits.household, returning)
        if advice is None:
            log.info("auto-sell: no forecast yet", household=limits.household)
            return
        market = await self.client.market(self.market)
        chain_now = await cluster_time(self.client.chain)
        held = await self.client.energy_balance(household.energy_account) + returning
        target = target_offer(
            limits, advice, market.config, held, chain_now, self.settings.auto_sell_min_offer_wh
        )
        if open_row is not None and current is not None:
            tolerance = self.settings.auto_sell_tolerance_percent
            if target.wh and still_fits(current, target, tolerance, chain_now):
                return
            await self._close(open_row, current, f"replaced: {target.why}")
        elif open_row is not None:
            await self.store.closed(open_row.id, "the offer is gone from the chain", self.clock())
        if target.wh == 0:
            log.info("auto-sell: nothing to offer", household=limits.household, why=target.why)
            return
        await self._make(await self.client.household(address), target)

    async def _offer(self, row: AutoOffer) -> Offer | None:
        try:
            return await self.client.offer(Pubkey.from_string(row.offer))
        except AccountNotFound:
            return None

    async def _make(self, household: Household, target: Target) -> None:
        created = await self.client.offer_create(
            payer=self.oracle,
            authority=self.oracle,
            household=household,
            wh=target.wh,
            price_cents_per_kwh=target.price_cents_per_kwh,
            expires_at=target.expires_at,
        )
        made = MadeOffer(
            household=str(household.address),
            offer=str(created.address),
            wh=target.wh,
            price_cents_per_kwh=target.price_cents_per_kwh,
            expires_at=target.expires_at,
            forecast_surplus_wh=target.forecast_surplus_wh,
            balance_wh=target.balance_wh,
            advisor=target.advisor,
            why=target.why,
            signature=str(created.outcome.signature),
        )
        await self.store.made(made, self.clock())
        self.metrics.auto_sell_offers.labels("made").inc()
        log.info(
            "auto-sell offer made",
            household=made.household,
            offer=made.offer,
            wh=made.wh,
            price_cents_per_kwh=made.price_cents_per_kwh,
        )

    async def _close(self, row: AutoOffer, offer: Offer, why: str) -> None:
        if not offer.cancelled:
            try:
                await self.client.offer_cancel(payer=self.oracle, caller=self.oracle, offer=offer)
            except NishatiClientError:
                log.exception("auto-sell offer not cancelled", offer=row.offer)
                raise
        await self.store.closed(row.id, why, self.clock())
        self.metrics.auto_sell_offers.labels("closed").inc()
        log.info("auto-sell offer closed", household=row.household, offer=row.offer, why=why)

    async def stop(self, household: Household, why: str) -> AutoOffer | None:
        """Opts the household out and cancels its open automatic offer; that offer, closed."""
        async with self._lock:
            return await self._stop(household, why)

    async def _stop(self, household: Household, why: str) -> AutoOffer | None:
        name = str(household.address)
        await self.store.stop(name)
        row = await self.store.open_offer(name)
        if row is None:
            return None
        offer = await self._offer(row)
        if offer is None:
            await self.store.closed(row.id, why, self.clock())
        else:
            await self._close(row, offer, why)
        closed = await self.store.offers(name, 1)
        return closed[0] if closed else None

    def check_custodial(self, household: Household) -> None:
        if not household.custodial:
            raise NotCustodial(
                "the household signs its own offers (it has a wallet): the oracle holds no key "
                "that could sign one for it; it sells with nishati offer create"
            )
