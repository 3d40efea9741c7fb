"""Advice for one household, as the routes and auto-sell ask for it: its latest outlook's bands,
its energy balance on chain, the market's price bounds and the open offers, given to the
advisor (Gemini's, checked against the rules, or the rules alone: ``forecast.gemini``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiClientError
from nishati_client.program import NishatiClient
from nishati_oracle.forecast.advice import Advice, AdviceInput, OpenOffer, PriceBounds
from nishati_oracle.forecast.gemini import GeminiAdvisor
from nishati_oracle.forecast.sources import Forecasts

log = structlog.get_logger(__name__)

# How long the market's open offers, listed once, serve every household's advice.
OFFERS_CACHE_SECS = 30.0


class HouseholdAdvisor:
    """Assembles each household's advice input and asks the advisor."""

    def __init__(
        self,
        forecasts: Forecasts,
        advisor: GeminiAdvisor,
        client: NishatiClient,
        market: Pubkey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.forecasts = forecasts
        self.advisor = advisor
        self.client = client
        self.market = market
        self.clock = clock
        self._offers: tuple[OpenOffer, ...] = ()
        self._offers_at = -OFFERS_CACHE_SECS

    async def open_offers(self) -> tuple[OpenOffer, ...]:
        """The market's offers that still hold energy and stand, listed at most every
        :data:`OFFERS_CACHE_SECS`; none on a chain that cannot list accounts (LiteSVM)."""
        now = self.clock()
        if now - self._offers_at < OFFERS_CACHE_SECS:
            return self._offers
        try:
            listed = await self.client.offers(self.market)
        except NishatiClientError as error:
            log.warning("open offers not listed", error=str(error))
            listed = []
        self._offers = tuple(
            OpenOffer(
                address=str(offer.address),
                seller=str(offer.seller),
                wh_available=offer.unreserved_wh,
                price_cents_per_kwh=offer.price_cents_per_kwh,
            )
            for offer in listed
            if not offer.cancelled and offer.unreserved_wh > 0 and offer.expires_at > now
        )
        self._offers_at = now
        return self._offers

    async def advise(self, household: str, returning_wh: int = 0) -> Advice | None:
        """The household's advice, ``None`` before its first forecast. ``returning_wh``: energy
        an offer about to be withdrawn will give back, counted as held."""
        outlook = await self.forecasts.outlook(household)
        if outlook is None:
            return None
        account = self.client.program.energy_account(Pubkey.from_string(household))
        balance = await self.client.energy_balance(account)
        config = (await self.client.market(self.market)).config
        offers = await self.open_offers()
        inputs = AdviceInput(
            household=household,
            now=int(self.clock()),
            bands=outlook.bands(),
            balance_wh=balance + returning_wh,
            price_bounds=PriceBounds.of(config),
            offers=offers,
            own_offers=tuple(offer for offer in offers if offer.seller == household),
        )
        return await self.advisor.advise(inputs)
