"""Which household each meter belongs to, as the chain says, cached: the pipeline's source for
a meter it has not seen and for whether a meter it keeps state for is still registered; and
what the chain holds of each meter's household and of the market, which the minting rules
(:mod:`~nishati_oracle.readings.rules`) count from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiClientError
from nishati_client.program import NishatiClient
from nishati_client.readings import LastReading
from nishati_oracle.core.refresh import Refreshed
from nishati_oracle.readings.rules import MarketLimits, MeterOnChain

log = structlog.get_logger(__name__)

# How long the registry lets stale meters gather before reading their records again.
GATHER_RECHECKS_SECS = 1.0
# How soon a failed read of the market is tried again.
RETRY_MARKET_SECS = 1.0


@dataclass(frozen=True)
class MeterInfo:
    """What the chain says of a meter: its household, that meter's last accepted reading,
    and where the household's minting limits count from."""

    household: Pubkey
    last: LastReading | None
    last_timestamp: int
    chain: MeterOnChain


class MarketView(Refreshed[MarketLimits]):
    """The market's minting limits, read now and then (:class:`Refreshed`): the pipeline's
    from memory, the batcher's read again before each round that sends."""

    what = "market"

    def __init__(self, client: NishatiClient, market: Pubkey, refresh_secs: float) -> None:
        super().__init__(refresh_secs, RETRY_MARKET_SECS)
        self.client = client
        self.market = market

    async def _fetch(self) -> MarketLimits:
        return MarketLimits.of(await self.client.market(self.market))


class MeterRegistry:
    """Meter key → household, from the chain's MeterRecord and Household accounts, cached.

    A meter the oracle already keeps state for is not looked up again before its readings
    are checked: :meth:`registered` answers from memory at once, and a meter not confirmed
    within ``ttl_secs`` is queued to be read again in the background, up to a hundred
    MeterRecords a request. A meter its household replaced (its record retired) is refused
    from then on.

    It also keeps, per meter, what the chain holds of its household's last attestation
    (:class:`MeterOnChain`): from each read of the household, and from the batcher after
    each attestation it confirmed; never moved back by a read answering from before. And the
    market's limits (``market``)."""

    def __init__(
        self,
        client: NishatiClient,
        market: Pubkey,
        ttl_secs: float,
        gather_secs: float = GATHER_RECHECKS_SECS,
        market_secs: float = 30.0,
    ) -> None:
        self.client = client
        self.market = market
        self.ttl_secs = ttl_secs
        self.gather_secs = gather_secs
        self.limits = MarketView(client, market, market_secs)
        self._cache: dict[Pubkey, tuple[float, MeterInfo | None]] = {}
        self._chain: dict[Pubkey, MeterOnChain] = {}
        self._confirmed: dict[Pubkey, float] = {}
        self._retired: set[Pubkey] = set()
        # Meters to read again, in the order they were found stale (a dict: an ordered set).
        self._stale: dict[Pubkey, None] = {}
        self._rechecking: asyncio.Task[None] | None = None

    async def lookup(self, meter: Pubkey) -> MeterInfo | None:
        return (await self.lookup_many([meter]))[meter]

    async def lookup_many(self, meters: Iterable[Pubkey]) -> dict[Pubkey, MeterInfo | None]:
        """Each meter's household and last reading (``None`` for a meter not registered here);
        the ones not cached are read together: their records, then their households."""
        now = time.monotonic()
        found: dict[Pubkey, MeterInfo | None] = {}
        unread: list[Pubkey] = []
        for meter in dict.fromkeys(meters):
            cached = self._cache.get(meter)
            if cached is not None and now - cached[0] < self.ttl_secs:
                found[meter] = cached[1]
            else:
                unread.append(meter)
        if not unread:
            return found
        live = await self._live_records(unread)
        households = dict(
            zip(live, await self.client.households_at(list(live.values())), strict=True)
        )
        for meter in unread:
            household = households.get(meter)
            info = None
            if household is not None and household.meter == meter:
                info = MeterInfo(
                    household.address,
                    household.last_reading,
                    household.last_timestamp,
                    self.learn(meter, MeterOnChain.of(household)),
                )
                self._confirmed[meter] = now
            found[meter] = info
            self._cache[meter] = (now, info)
        return found

    def on_chain(self, meter: Pubkey) -> MeterOnChain | None:
        """What the chain holds of the meter's household, as far as the oracle knows; None
        until its household was read (:meth:`lookup_many`)."""
        return self._chain.get(meter)

    async def on_chain_many(self, meters: Sequence[Pubkey]) -> dict[Pubkey, MeterOnChain]:
        """:meth:`on_chain` of each meter, reading the households of those not known yet;
        a meter not registered here is left out."""
        known = {m: self._chain[m] for m in meters if m in self._chain}
        unknown = [m for m in meters if m not in known]
        if unknown:
            for meter, info in (await self.lookup_many(unknown)).items():
                if info is not None:
                    known[meter] = info.chain
        return known

    def learn(self, meter: Pubkey, view: MeterOnChain) -> MeterOnChain:
        """Takes in what the chain holds of the meter's household (a read of it, or an
        attestation the batcher confirmed); the newer view is kept. Returns it."""
        held = self._chain.get(meter)
        kept = view if held is None else held.newer(view)
        self._chain[meter] = kept
        return kept

    def forget(self, meter: Pubkey) -> None:
        """Drops what is known of the meter's household: it is read again when next needed
        (after an attestation whose time could not be read, or that the chain refused)."""
        self._chain.pop(meter, None)
        self._cache.pop(meter, None)

    def registered(self, meter: Pubkey) -> bool:
        """Whether a meter the oracle keeps state for is still registered, as far as it knows:
        its state says it was, until the chain says its record is retired or gone."""
        if meter in self._retired:
            return False
        confirmed = self._confirmed.get(meter)
        if confirmed is None or time.monotonic() - confirmed >= self.ttl_secs:
            self._stale[meter] = None
            if self._rechecking is None:
                self._rechecking = asyncio.create_task(self._recheck())
        return True

    async def close(self) -> None:
        """Stops reading stale meters and the market again."""
        await self.limits.close()
        if self._rechecking is not None:
            self._rechecking.cancel()
            await asyncio.gather(self._rechecking, return_exceptions=True)

    async def _recheck(self) -> None:
        """Reads the stale meters' records, a request per hundred, until none is left; waits
        ``gather_secs`` first, so the meters going stale meanwhile share the requests."""
        try:
            while self._stale:
                await asyncio.sleep(self.gather_secs)
                meters = list(self._stale)
                try:
                    live = await self._live_records(meters)
                except NishatiClientError as e:
                    log.warning("rereading meter records failed", meters=len(meters), error=str(e))
                    continue
                now = time.monotonic()
                for meter in meters:
                    self._stale.pop(meter, None)
                    if meter not in live:
                        self._retired.add(meter)
                        log.info(
                            "meter no longer registered, refusing its readings", meter=str(meter)
                        )
                    else:
                        self._confirmed[meter] = now
        finally:
            self._rechecking = None

    async def _live_records(self, meters: Sequence[Pubkey]) -> dict[Pubkey, Pubkey]:
        """The household of each meter whose MeterRecord exists and is not retired."""
        program = self.client.program
        addresses = [program.meter_record_address(self.market, meter) for meter in meters]
        records = await self.client.meter_records(addresses)
        return {
            meter: record.household
            for meter, record in zip(meters, records, strict=True)
            if record is not None and not record.retired
        }
