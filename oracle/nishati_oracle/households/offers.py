"""A custodial household's offers, made and cancelled for it by the oracle (which signs for
custodial households, as it does for their trades), and the market's open offers it may buy
from. A household with its own wallet signs its offers itself: the oracle refuses to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import AccountLister
from nishati_client.errors import AccountNotFound, AccountTypeMismatch, TransactionFailed
from nishati_client.household import Household
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer


class OfferRefusal(StrEnum):
    NotCustodial = "NotCustodial"
    UnknownOffer = "UnknownOffer"
    ChainRefused = "ChainRefused"
    OffersUnlisted = "OffersUnlisted"


OFFER_STATUS = {
    OfferRefusal.NotCustodial: 409,
    OfferRefusal.UnknownOffer: 404,
    OfferRefusal.ChainRefused: 409,
    OfferRefusal.OffersUnlisted: 503,
}


class OfferRefused(Exception):
    """An offer the oracle will not make, cancel or list, and why."""

    def __init__(self, reason: OfferRefusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status_code(self) -> int:
        return OFFER_STATUS[self.reason]


@dataclass(frozen=True)
class OpenOffer:
    offer: str
    seller: str
    own: bool
    price_cents_per_kwh: int
    unreserved_wh: int
    expires_at: int


def is_open(offer: Offer, now: int) -> bool:
    return not offer.cancelled and offer.expires_at > now and offer.unreserved_wh > 0


class HouseholdOffers:
    """Offers on chain, for one market, signed by the oracle for custodial households."""

    def __init__(self, client: NishatiClient, market: Pubkey, oracle: Keypair) -> None:
        self.client = client
        self.market = market
        self.oracle = oracle

    async def open_offers(self, household: str, now: int) -> list[OpenOffer]:
        """The market's open offers, cheapest first; the household's own marked."""
        if not isinstance(self.client.chain, AccountLister):
            raise OfferRefused(OfferRefusal.OffersUnlisted, "listing offers needs a JSON-RPC chain")
        offers = await self.client.offers(self.market)
        found = [
            OpenOffer(
                offer=str(o.address),
                seller=str(o.seller),
                own=str(o.seller) == household,
                price_cents_per_kwh=o.price_cents_per_kwh,
                unreserved_wh=o.unreserved_wh,
                expires_at=o.expires_at,
            )
            for o in offers
            if is_open(o, now)
        ]
        return sorted(found, key=lambda o: (o.price_cents_per_kwh, o.offer))

    async def create(
        self, record: Household, wh: int, price_cents_per_kwh: int, expires_at: int
    ) -> str:
        """The household's new offer's address (``record`` as the chain holds it now)."""
        if not record.custodial:
            raise OfferRefused(OfferRefusal.NotCustodial, "this household signs its own offers")
        try:
            created = await self.client.offer_create(
                payer=self.oracle,
                authority=self.oracle,
                household=record,
                wh=wh,
                price_cents_per_kwh=price_cents_per_kwh,
                expires_at=expires_at,
            )
        except TransactionFailed as e:
            raise OfferRefused(OfferRefusal.ChainRefused, e.reason) from e
        return str(created.address)

    async def cancel(self, record: Household, offer: str) -> None:
        try:
            found = await self.client.offer(Pubkey.from_string(offer))
        except (ValueError, AccountNotFound, AccountTypeMismatch):
            raise OfferRefused(OfferRefusal.UnknownOffer, "no such offer") from None
        if found.seller != record.address:
            # Someone else's offer is no more the caller's business than one that is not.
            raise OfferRefused(OfferRefusal.UnknownOffer, "no such offer")
        if not record.custodial:
            raise OfferRefused(OfferRefusal.NotCustodial, "this household signs its own offers")
        try:
            await self.client.offer_cancel(payer=self.oracle, caller=self.oracle, offer=found)
        except TransactionFailed as e:
            raise OfferRefused(OfferRefusal.ChainRefused, e.reason) from e
