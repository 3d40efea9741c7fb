"""The batcher: attests each meter's latest reading on chain when the policy says it is time.

Readings are cumulative, so one attested reading covers all energy since the last: the
batcher attests a meter's newest stored reading once its unattested export reaches a
threshold, or its oldest unattested reading reaches a maximum age, or someone asks (a
household about to sell). As many readings as fit go into each transaction.

Exactly once: a reading is marked attested only after the chain confirms it. If a send fails or
its confirmation is lost, the batcher asks the chain (the household's last counter) which
readings landed before trying again, and the program's counter check refuses any replay anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import SendPolicy, fits_in_packet
from nishati_client.errors import AccountNotFound, NishatiClientError
from nishati_client.program import NishatiClient
from nishati_client.readings import SignedReading
from nishati_oracle.metrics import Metrics
from nishati_oracle.settings import OracleSettings
from nishati_oracle.store import Due, Store

log = logging.getLogger(__name__)

# Meters looked at per round; the rest wait for the next round.
ROUND_LIMIT = 512
# Marks readings the chain will never take: their meter was replaced before they landed.
SUPERSEDED = "meter-replaced"


class Attester:
    def __init__(
        self,
        settings: OracleSettings,
        store: Store,
        client: NishatiClient,
        oracle: Keypair,
        market: Pubkey,
        policy: SendPolicy,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.oracle = oracle
        self.market = market
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self._wake = asyncio.Event()
        self._forced: set[str] = set()

    def request(self, meter: Pubkey) -> None:
        """Attest this meter at the next round whatever the policy (a household selling)."""
        self._forced.add(str(meter))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """A round every interval (or when asked) until ``stop`` is set; a failing round is
        logged and retried next time."""
        while not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(
                waits, timeout=self.settings.attest_interval_secs, return_when="FIRST_COMPLETED"
            )
            for w in waits:
                w.cancel()
            self._wake.clear()
            if stop.is_set():
                return
            try:
                await self.run_once()
            except Exception:
                log.exception("attestation round failed; retrying next round")

    async def run_once(self) -> int:
        """One round: attests every meter that is due; returns how many readings landed."""
        now = self.clock()
        forced, self._forced = self._forced, set()
        due = await self.store.due(
            self.settings.attest_threshold_wh,
            now - self.settings.attest_max_age_secs,
            ROUND_LIMIT,
            forced,
        )
        attested = 0
        for group in self.pack(due):
            attested += await self._attest(group)
        self.metrics.queue_depth.set(await self.store.unattested_count())
        return attested

    def pack(self, due: Sequence[Due]) -> list[list[Due]]:
        """Groups readings greedily into as few transactions as fit the packet size."""
        groups: list[list[Due]] = []
        for item in due:
            if groups and self._fits([*groups[-1], item]):
                groups[-1].append(item)
            else:
                groups.append([item])
        return groups

    def _fits(self, group: Sequence[Due]) -> bool:
        ixs = self.client.program.attest_readings(
            oracle=self.oracle.pubkey(), market=self.market, readings=_signed(group)
        )
        return fits_in_packet(ixs, [self.oracle], self.policy)

    async def _attest(self, group: Sequence[Due]) -> int:
        started = time.perf_counter()
        try:
            outcome = await self.client.meter_attest(
                payer=self.oracle, oracle=self.oracle, market=self.market, readings=_signed(group)
            )
        except NishatiClientError as e:
            self.metrics.attest_batches.labels("failed").inc()
            log.warning("attestation of %d readings failed: %s", len(group), e)
            return await self._reconcile(group)
        self.metrics.attest_seconds.observe(time.perf_counter() - started)
        self.metrics.attest_batches.labels("confirmed").inc()
        await self.store.mark_attested(
            [d.reading for d in group], str(outcome.signature), self.clock()
        )
        self.metrics.attested.inc(len(group))
        return len(group)

    async def _reconcile(self, group: Sequence[Due]) -> int:
        """After a failure, asks the chain which readings it holds and records those; the rest
        are retried at once one per transaction, so one bad reading holds up no other (and a
        lone failure waits for the next round)."""
        landed = 0
        for due in group:
            try:
                household = await self.client.household(Pubkey.from_string(due.household))
            except AccountNotFound:
                continue
            reading = due.reading
            if str(household.meter) != due.meter:
                await self.store.close_meter(due.meter, SUPERSEDED, self.clock())
                continue
            if household.has_baseline and household.last_counter >= reading.counter:
                await self.store.mark_attested([reading], "reconciled", self.clock())
                landed += 1
            elif len(group) > 1:
                landed += await self._attest([due])
                continue
            else:
                continue
            self.metrics.attested.inc()
        return landed


def _signed(group: Sequence[Due]) -> list[tuple[SignedReading, Pubkey]]:
    return [
        (
            SignedReading(d.reading.message, d.reading.signature, Pubkey.from_string(d.meter)),
            Pubkey.from_string(d.household),
        )
        for d in group
    ]
