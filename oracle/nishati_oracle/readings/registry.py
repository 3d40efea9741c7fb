"""Which household each meter belongs to, as the chain says, cached: the pipeline's source for
a meter it has not seen and for whether a meter it keeps state for is still registered."""

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

log = structlog.get_logger(__name__)

# How long the registry lets stale meters gather before reading their records again.
GATHER_RECHECKS_SECS = 1.0


@dataclass(frozen=True)
class MeterInfo:
    """What the chain says of a meter: its household and that meter's last accepted reading."""

    household: Pubkey
    last: LastReading | None
    last_timestamp: int


class MeterRegistry:
    """Meter key → household, from the chain's MeterRecord and Household accounts, cached.

    A meter the oracle already keeps state for is not looked up again before its readings
    are checked: :meth:`registered` answers from memory at once, and a meter not confirmed
    within ``ttl_secs`` is queued to be read again in the background, up to a hundred
    MeterRecords a request. A meter its household replaced (its record retired) is refused
    from then on."""

    def __init__(
        self,
        client: NishatiClient,
        market: Pubkey,
        ttl_secs: float,
        gather_secs: float = GATHER_RECHECKS_SECS,
    ) -> None:
        self.client = client
        self.market = market
        self.ttl_secs = ttl_secs
        self.gather_secs = gather_secs
        self._cache: dict[Pubkey, tuple[float, MeterInfo | None]] = {}
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
                    household.address, household.last_reading, household.last_timestamp
                )
                self._confirmed[meter] = now
            found[meter] = info
            self._cache[meter] = (now, info)
        return found

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
        """Stops reading stale meters again."""
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
