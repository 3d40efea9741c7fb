"""The batcher: attests each meter's latest reading on chain when the policy says it is time.

Readings are cumulative, so one attested reading covers all energy since the last: the
batcher attests a meter's newest stored reading once its unattested export reaches a
threshold, or its oldest unattested reading reaches a maximum age, or someone asks (a
household about to sell). As many readings as fit go into each transaction, one per meter.
A reading the chain would refuse now (ahead of its clock, above the export limit over the
chain time since the last attestation, past the day's mint cap) is held back until it can
pass; one the chain refuses anyway is kept with the program's error (:class:`Attester`).

Compact transactions: the batcher keeps the market's address lookup tables
(:class:`MarketTables`), and sends v0 transactions naming each account a table holds by one
byte instead of 32. At the end of a round it adds the households it saw that no table holds
yet, so their next attestation is compact (an account in no table is still named in full).
Readings are packed table by table, so a transaction looks up one table where it can.

One attester per market: only the replica holding the market's attester lease attests
(:mod:`~nishati_oracle.readings.lease`), and each of its writes carries the lease's fencing
token, so one deposed while it worked writes nothing more.

Exactly once: a reading is marked attested only after the chain confirms it. If a send fails or
its confirmation is lost, the batcher asks the chain (the household's last counter) which
readings landed before trying again, and the program's counter check refuses any replay anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    AddressLookupTableAccount,
)
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import (
    PACKET_DATA_SIZE,
    SendPolicy,
    cluster_slot,
    cluster_time,
    fits_in_packet,
)
from nishati_client.errors import AccountNotFound, NishatiClientError, NishatiProgramError
from nishati_client.lookup import (
    LookupTable,
    attest_accounts,
    create_lookup_table,
    extend_lookup_table,
    fetch_lookup_table,
    recent_slots,
)
from nishati_client.program import NishatiClient
from nishati_client.readings import MAX_CLOCK_SKEW_SECS, SignedReading
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.clock import ChainClock
from nishati_oracle.readings.lease import AttesterLease, Fence, LeaseLost
from nishati_oracle.readings.registry import MeterRegistry
from nishati_oracle.readings.rules import (
    MarketLimits,
    MeterOnChain,
    export_allowed_at,
    mint_day,
    next_day,
    within_export_limit,
)
from nishati_oracle.readings.store import Due, Store

log = structlog.get_logger(__name__)

# Meters looked at per round; the rest wait for the next round.
ROUND_LIMIT = 512
# Why readings the chain will never take were closed when their meter was replaced first.
METER_REPLACED = "MeterReplaced"
# The program's refusals of a reading itself: the chain will never take it (nor, since
# readings are cumulative, any unattested reading before it). Any other refusal is tried
# again after REFUSED_RETRY_SECS.
FINAL_REFUSALS = frozenset(
    {
        "InvalidReadingLength",
        "InvalidReadingMagic",
        "UnsupportedReadingVersion",
        "ReadingForAnotherMarket",
        "InvalidSignature",
        "MeterMismatch",
        "ReadingReplayed",
        "ReadingOutOfOrder",
        "MeterWentBackwards",
        "ReadingBeforeMeterRegistered",
    }
)
REFUSED_RETRY_SECS = 60.0
# What a round's checks may hold a reading back for (the held gauge shows each, even at 0).
HOLD_REASONS = ("ReadingFromTheFuture", "ExportAboveMeterLimit", "MintCeilingReached")


class MarketTables:
    """The market's address lookup tables, as the chain holds them: each starts with the
    accounts every attestation names, then holds households' (:mod:`nishati_client.lookup`).

    Write-ahead: a table's address is stored before the transaction creating it is sent, so a
    crash never loses track of one. A stored table the chain does not have is created again at
    its slot while that slot is recent; once it is not, nothing can create that table any more
    and it is forgotten.

    Made afresh each time the replica takes the attester lease (``fence``), since another may
    have added tables meanwhile; it sends nothing once the lease is no longer held here.
    """

    def __init__(
        self,
        store: Store,
        client: NishatiClient,
        oracle: Keypair,
        market: Pubkey,
        policy: SendPolicy,
        lease: AttesterLease,
        fence: Fence,
    ) -> None:
        self.store = store
        self.lease = lease
        self.fence = fence
        self.client = client
        self.oracle = oracle
        self.market = market
        self.policy = policy
        self.log = log.bind(market=str(market))
        self.tables: dict[Pubkey, LookupTable] = {}
        # Each account a table holds, and that table.
        self._holder: dict[Pubkey, Pubkey] = {}
        # The slot of every stored table, and of those not seen on chain yet.
        self._slots: dict[Pubkey, int] | None = None
        self._unsettled: dict[Pubkey, int] = {}
        self._fixed = attest_accounts(client.program, market)
        self._per_household = len(self._accounts([Pubkey.default()]))

    def rank(self, household: Pubkey) -> int:
        """The position of the table holding ``household``'s accounts; after all if none."""
        holder = self._holder.get(household)
        return len(self.tables) if holder is None else list(self.tables).index(holder)

    def lookups(self, households: Iterable[Pubkey], slot: int) -> list[AddressLookupTableAccount]:
        """What a transaction crediting ``households`` in ``slot`` looks up: each table holding
        one of them, or else the first (for the market's accounts)."""
        held = dict.fromkeys(self._holder[h] for h in households if h in self._holder)
        chosen = list(held) or list(self.tables)[:1]
        return [self.tables[address].usable(slot) for address in chosen]

    async def settle(self) -> None:
        """Reads the stored tables from the chain (once; then only those it did not have)."""
        if self._slots is None:
            stored = await self.store.lookup_tables(str(self.market))
            self._slots = {Pubkey.from_string(a): slot for a, slot in stored.items()}
            self._unsettled = dict(self._slots)
        if not self._unsettled:
            return
        # SlotHashes first: a slot it no longer holds cannot create a table after this read.
        recent = await recent_slots(self.client.chain)
        for address, slot in list(self._unsettled.items()):
            if await self._read(address):
                continue
            if slot in recent:
                self.log.info("creating lookup table again", table=str(address), slot=slot)
                await self._send(*self._creation(slot, []))
            else:
                self.log.warning("lookup table never created, forgetting it", table=str(address))
                await self.store.forget_lookup_table(self.fence, str(address))
                del self._unsettled[address], self._slots[address]

    async def add(self, households: Iterable[Pubkey]) -> None:
        """Puts the accounts of ``households`` no table holds yet into a table of the oracle's
        with room, or a new one, as many to a transaction as fit."""
        pending = [h for h in dict.fromkeys(households) if h not in self._holder]
        while pending:
            table = next(
                (
                    t
                    for t in self.tables.values()
                    if t.authority == self.oracle.pubkey() and t.room >= self._per_household
                ),
                None,
            )
            if table is None:
                count = await self._new_table(pending)
                if count is None:
                    return
            else:
                count = await self._grow(table, pending)
            pending = pending[count:]

    async def _new_table(self, households: Sequence[Pubkey]) -> int | None:
        """Creates a table holding the market's accounts and as many of ``households``' as
        fit; how many, or ``None`` if it could not (no recent slot is free to create one at,
        or the chain does not show it yet)."""
        assert self._slots is not None
        taken = set(self._slots.values())
        slot = next((s for s in await recent_slots(self.client.chain) if s not in taken), None)
        if slot is None:
            self.log.warning(
                "no recent slot free for a new lookup table, households wait",
                households=len(households),
            )
            return None
        room = LOOKUP_TABLE_MAX_ADDRESSES - len(self._fixed)
        count = self._fitting(households, room, lambda some: self._creation(slot, some)[1])
        address, instructions = self._creation(slot, households[:count])
        await self.store.record_lookup_table(self.fence, str(address), slot)
        self._slots[address] = self._unsettled[address] = slot
        await self._send(address, instructions)
        return count if address in self.tables else None

    def _accounts(self, households: Sequence[Pubkey]) -> list[Pubkey]:
        """The accounts of ``households`` an attestation names, without the market's."""
        return attest_accounts(self.client.program, self.market, households)[len(self._fixed) :]

    def _creation(
        self, slot: int, households: Sequence[Pubkey]
    ) -> tuple[Pubkey, list[Instruction]]:
        oracle = self.oracle.pubkey()
        create, address = create_lookup_table(authority=oracle, payer=oracle, recent_slot=slot)
        held = [*self._fixed, *self._accounts(households)]
        extend = extend_lookup_table(table=address, authority=oracle, payer=oracle, addresses=held)
        return address, [create, extend]

    async def _grow(self, table: LookupTable, households: Sequence[Pubkey]) -> int:
        """Adds as many of ``households`` to ``table`` as one transaction fits; how many."""
        oracle = self.oracle.pubkey()

        def extend(some: Sequence[Pubkey]) -> list[Instruction]:
            accounts = self._accounts(some)
            return [
                extend_lookup_table(
                    table=table.address, authority=oracle, payer=oracle, addresses=accounts
                )
            ]

        count = self._fitting(households, table.room, extend)
        await self._send(table.address, extend(households[:count]))
        return count

    def _fitting(
        self,
        households: Sequence[Pubkey],
        room: int,
        instructions: Callable[[Sequence[Pubkey]], list[Instruction]],
    ) -> int:
        """How many of ``households`` one transaction of ``instructions`` adds, within the
        table's ``room`` (in addresses) and the packet."""
        # Each address takes 32 bytes of the packet at least.
        most = PACKET_DATA_SIZE // (32 * self._per_household)
        count = min(len(households), room // self._per_household, most)
        while count and not fits_in_packet(
            instructions(households[:count]), [self.oracle], self.policy
        ):
            count -= 1
        return count

    async def _send(self, address: Pubkey, instructions: Sequence[Instruction]) -> None:
        """Sends a transaction growing the table at ``address``, then reads the table back,
        also after a failure: it may have landed."""
        if not self.lease.held:
            raise LeaseLost(self.fence.market, self.fence.token)
        try:
            await self.client.chain.send(instructions, [self.oracle])
        finally:
            await self._read(address)

    async def _read(self, address: Pubkey) -> bool:
        """Takes in the table at ``address`` as the chain has it; whether it is there."""
        table = await fetch_lookup_table(self.client.chain, address)
        if table is None:
            return False
        self._unsettled.pop(address, None)
        self.tables[address] = table
        self._holder |= dict.fromkeys(table.addresses, address)
        return True


@dataclass(frozen=True)
class Hold:
    """Why the batcher holds a meter's latest reading back: the program's error it would meet
    if sent now, and the chain time it may pass at (None: when the market changes, or after a
    wait)."""

    reason: str
    until: int | None
    detail: str


class Attester:
    """Attests the due meters each round (see the module docstring), each meter's latest
    reading only: readings are cumulative, and a second reading of a meter in one attestation
    would have no chain time to mint in (:mod:`~nishati_oracle.readings.rules`).

    Before sending, each reading is checked against the chain's clock (read for the round),
    the market's limits and the day's count (read for the round) and its household's last
    attestation; one the chain would refuse now is held back (``holds``, by meter) until it
    can pass, never sent to fail. A reading the chain refuses anyway is kept with the program's
    error: refused for good if it broke a rule of the reading itself (then it, and every
    unattested reading before it, is closed), otherwise noted and tried again after a wait.
    Both are counted by reason (``nishati_attest_refused``).

    A round runs only while this replica holds the market's attester lease (``lease``), which
    :meth:`run` keeps; a round that finds it lost stops where it is."""

    def __init__(
        self,
        settings: OracleSettings,
        store: Store,
        client: NishatiClient,
        oracle: Keypair,
        market: Pubkey,
        policy: SendPolicy,
        metrics: Metrics,
        registry: MeterRegistry,
        chain_clock: ChainClock,
        lease: AttesterLease,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.oracle = oracle
        self.market = market
        self.policy = policy
        self.metrics = metrics
        self.registry = registry
        self.chain_clock = chain_clock
        self.clock = clock
        self.log = log.bind(market=str(market))
        self.lease = lease
        # The lease's fence as of the last round, and the tables kept under it.
        self._fence: Fence | None = None
        self.tables: MarketTables | None = None
        self._wake = asyncio.Event()
        # Meter → why its latest reading is held back, as of the last round.
        self.holds: dict[str, Hold] = {}
        # Meter → when (the oracle's clock) a reading the chain refused may be sent again.
        self._retry_at: dict[str, float] = {}
        self._ceiling: tuple[int, int] | None = None

    async def request(self, meter: Pubkey) -> None:
        """Attest this meter at the next round whatever the policy (a household selling): asked
        through the database, of the attester on whichever replica holds the lease (within
        ``attest_interval_secs``)."""
        await self.store.request_attest(str(meter), self.clock())

    async def run(self, stop: asyncio.Event) -> None:
        """Keeps the attester lease (or waits for it) and attests while it holds it, until
        ``stop`` is set; then releases it."""
        await asyncio.gather(self.lease.keep(stop, self._wake.set), self._rounds(stop))

    async def _rounds(self, stop: asyncio.Event) -> None:
        """A round every interval (and at once when the lease is just taken) until ``stop`` is
        set; a failing round is logged and retried next time."""
        while not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(
                waits,
                timeout=self.settings.readings.attest_interval_secs,
                return_when="FIRST_COMPLETED",
            )
            for w in waits:
                w.cancel()
            self._wake.clear()
            if stop.is_set():
                return
            try:
                await self.run_once()
            except LeaseLost as e:
                self.log.warning(
                    "attester deposed mid-round, its writes refused", token=e.token, error=str(e)
                )
            except Exception:
                self.log.exception("attestation round failed, retrying next round")

    async def run_once(self) -> int:
        """One round: attests every meter that is due and the chain would take now, then adds
        the households seen to the lookup tables; returns how many readings landed. Nothing
        while another replica holds the attester lease; :class:`LeaseLost` if it is taken
        over meanwhile."""
        fence = self.lease.fence
        if fence is None or not self.lease.held:
            self.holds = {}
            return 0
        if fence != self._fence or self.tables is None:
            self._take_over(fence)
        assert self.tables is not None
        tables = self.tables
        await self._upkeep("reading the lookup tables", tables.settle())
        now = self.clock()
        forced = await self.store.take_attest_requests(fence)
        due = await self.store.due(
            self.settings.readings.attest_threshold_wh,
            now - self.settings.readings.attest_max_age_secs,
            ROUND_LIMIT,
            forced,
        )
        attested = 0
        if due:
            try:
                sendable = await self.screen(due)
            except NishatiClientError as e:
                self.log.warning("chain unreachable, attesting next round", error=str(e))
                return 0
            slot = await cluster_slot(self.client.chain) if sendable and tables.tables else 0
            for group in self.pack(sendable, slot):
                attested += await self._attest(group, slot)
            households = [Pubkey.from_string(d.household) for d in due]
            await self._upkeep("adding households to lookup tables", tables.add(households))
        else:
            self.holds = {}
        self._observe_holds()
        self.metrics.queue_depth.set(await self.store.unattested_count())
        return attested

    def _take_over(self, fence: Fence) -> None:
        """This replica's first round under a lease it took: what another attester may have
        changed since is read afresh (tables), what it kept of its own forgotten."""
        self._fence = fence
        self.tables = MarketTables(
            self.store, self.client, self.oracle, self.market, self.policy, self.lease, fence
        )
        self.holds = {}
        self._retry_at = {}
        self.log.info("attesting under the lease", token=fence.token)

    def _fenced(self) -> tuple[Fence, MarketTables]:
        """The fence and tables of the round under way (a round sets them first)."""
        assert self._fence is not None
        assert self.tables is not None
        return self._fence, self.tables

    async def screen(self, due: Sequence[Due]) -> list[Due]:
        """The due readings the chain would take now, the day's room shared in order (oldest
        first); the others are held back (``holds``), or closed if it never could."""
        chain_now = await self.chain_clock.fresh()
        limits = await self.registry.limits.fresh()
        meters = [Pubkey.from_string(d.meter) for d in due]
        views = await self.registry.on_chain_many(meters)
        room = limits.room(chain_now)
        now = self.clock()
        holds: dict[str, Hold] = {}
        sendable: list[Due] = []
        for item, meter in zip(due, meters, strict=True):
            if now < self._retry_at.get(item.meter, 0.0):
                holds[item.meter] = self.holds.get(
                    item.meter, Hold("Refused", None, "the chain refused it; tried again later")
                )
                continue
            view = views.get(meter)
            if view is not None and item.reading.timestamp < view.meter_since:
                # The pipeline refuses these; one stored before a change of the rules is closed.
                await self._final(item, "ReadingBeforeMeterRegistered", "before sending")
                continue
            minted = 0 if view is None else view.minted(item.reading.exported_wh)
            hold = self._hold(item, view, limits, chain_now, minted, room)
            if hold is not None:
                holds[item.meter] = hold
                continue
            room -= minted
            sendable.append(item)
        self.holds = holds
        self._log_ceiling(limits, chain_now, holds)
        return sendable

    def _hold(
        self,
        item: Due,
        view: MeterOnChain | None,
        limits: MarketLimits,
        chain_now: int,
        minted: int,
        room: int,
    ) -> Hold | None:
        """Why the chain would refuse the reading now, if it would (a meter the registry has no
        household for is sent: its refusal tells the batcher what became of it)."""
        reading = item.reading
        if reading.timestamp > chain_now + MAX_CLOCK_SKEW_SECS:
            return Hold(
                "ReadingFromTheFuture",
                reading.timestamp - MAX_CLOCK_SKEW_SECS,
                f"dated {reading.timestamp - chain_now} s ahead of the chain's clock",
            )
        if view is None:
            return None
        watts = limits.max_export_watts
        if not within_export_limit(minted, watts, view.attested_at, chain_now):
            return Hold(
                "ExportAboveMeterLimit",
                export_allowed_at(minted, watts, view.attested_at),
                f"{minted:,} Wh needs more chain time at {watts:,} W",
            )
        if minted > room:
            return Hold(
                "MintCeilingReached",
                next_day(chain_now),
                f"{minted:,} Wh; the market may mint {room:,} Wh more today "
                f"(cap {limits.daily_mint_cap_wh:,} Wh)",
            )
        return None

    def _log_ceiling(self, limits: MarketLimits, chain_now: int, holds: dict[str, Hold]) -> None:
        """Says once a day (and once a cap) that the daily ceiling holds readings back."""
        held = sum(1 for h in holds.values() if h.reason == "MintCeilingReached")
        if not held:
            return
        ceiling = (mint_day(chain_now), limits.daily_mint_cap_wh)
        if ceiling != self._ceiling:
            self._ceiling = ceiling
            self.log.warning(
                "daily mint cap reached, readings wait for the next day or a higher cap",
                meters=held,
                cap_wh=limits.daily_mint_cap_wh,
                room_wh=limits.room(chain_now),
                next_day=next_day(chain_now),
            )

    def _observe_holds(self) -> None:
        counts: dict[str, int] = {}
        for hold in self.holds.values():
            counts[hold.reason] = counts.get(hold.reason, 0) + 1
        for reason in {*HOLD_REASONS, *counts}:
            self.metrics.attest_held.labels(reason).set(counts.get(reason, 0))

    async def _upkeep(self, what: str, work: Awaitable[None]) -> None:
        """Lookup-table upkeep that failed is tried again next round; attestations go on."""
        try:
            await work
        except NishatiClientError as e:
            self.log.warning(
                "lookup table upkeep failed, trying again next round", step=what, error=str(e)
            )

    def pack(self, due: Sequence[Due], slot: int) -> Iterator[list[Due]]:
        """Groups readings greedily into as few transactions as fit the packet size in
        ``slot``, table by table: those whose households one table holds go together.

        Each group is handed out as soon as it is full: sizing a candidate transaction takes
        about 0.4 ms, so packing a whole round at once held the event loop (and every reading
        and callback waiting on it) for some 200 ms."""
        _, tables = self._fenced()
        group: list[Due] = []
        for item in sorted(due, key=lambda d: tables.rank(Pubkey.from_string(d.household))):
            if group and not self._fits([*group, item], slot):
                yield group
                group = []
            group.append(item)
        if group:
            yield group

    def _lookups(self, group: Sequence[Due], slot: int) -> list[AddressLookupTableAccount]:
        _, tables = self._fenced()
        return tables.lookups((Pubkey.from_string(d.household) for d in group), slot)

    def _fits(self, group: Sequence[Due], slot: int) -> bool:
        ixs = self.client.program.attest_readings(
            oracle=self.oracle.pubkey(), market=self.market, readings=_signed(group)
        )
        return fits_in_packet(ixs, [self.oracle], self.policy, self._lookups(group, slot))

    async def _attest(self, group: Sequence[Due], slot: int) -> int:
        fence, _ = self._fenced()
        if not self.lease.held:
            raise LeaseLost(fence.market, fence.token)
        started = time.perf_counter()
        try:
            outcome = await self.client.meter_attest(
                payer=self.oracle,
                oracle=self.oracle,
                market=self.market,
                readings=_signed(group),
                lookup_tables=self._lookups(group, slot),
            )
        except NishatiClientError as e:
            self.metrics.attest_batches.labels("failed").inc()
            self.log.warning("attestation failed", readings=len(group), error=str(e))
            return await self._reconcile(group, slot, e)
        self.metrics.attest_seconds.observe(time.perf_counter() - started)
        self.metrics.attest_batches.labels("confirmed").inc()
        await self.store.mark_attested(
            fence, [d.reading for d in group], str(outcome.signature), self.clock()
        )
        await self._attested_at(group)
        self.metrics.attested.inc(len(group))
        return len(group)

    async def _attested_at(self, group: Sequence[Due]) -> None:
        """Tells the registry where each household's export limit now counts from: the
        cluster's time read after the confirmation (an upper bound of the attestation's own);
        if it cannot be read, the households are read again when next needed."""
        try:
            at: int | None = await cluster_time(self.client.chain)
        except NishatiClientError:
            at = None
        if at is not None:
            # Readings coming in are checked no earlier than this attestation.
            self.chain_clock.observe(at)
        for d in group:
            meter = Pubkey.from_string(d.meter)
            self._retry_at.pop(d.meter, None)
            self.holds.pop(d.meter, None)
            known = self.registry.on_chain(meter)
            if at is None or known is None:
                self.registry.forget(meter)
                continue
            self.registry.learn(
                meter,
                MeterOnChain(known.meter_since, at, d.reading.counter, d.reading.exported_wh),
            )

    async def _reconcile(self, group: Sequence[Due], slot: int, error: NishatiClientError) -> int:
        """After a failure, asks the chain which readings it holds and records those; the rest
        are retried at once one per transaction, so one bad reading holds up no other. A lone
        reading the chain refused is kept with the program's error (:meth:`_refused`)."""
        fence, _ = self._fenced()
        landed = 0
        for due in group:
            try:
                household = await self.client.household(Pubkey.from_string(due.household))
            except AccountNotFound:
                continue
            reading = due.reading
            meter = Pubkey.from_string(due.meter)
            if str(household.meter) != due.meter:
                await self._final(due, METER_REPLACED, "its household has another meter now")
                continue
            self.registry.learn(meter, MeterOnChain.of(household))
            if household.has_baseline and household.last_counter >= reading.counter:
                await self.store.mark_attested(fence, [reading], "reconciled", self.clock())
                self._retry_at.pop(due.meter, None)
                landed += 1
                self.metrics.attested.inc()
            elif len(group) > 1:
                landed += await self._attest([due], slot)
            else:
                await self._refused(due, error)
        return landed

    async def _refused(self, due: Due, error: NishatiClientError) -> None:
        """A reading the chain refused on its own: closed for good if it broke a rule of the
        reading, else noted and sent again after a wait (the round's checks hold it back
        meanwhile if they see why). A failure that is not the program's (the chain out of
        reach) is tried again next round."""
        if not isinstance(error, NishatiProgramError):
            return
        reason = error.name
        if reason in FINAL_REFUSALS:
            await self._final(due, reason, "refused on chain")
            return
        self.metrics.attest_refused.labels(reason).inc()
        fence, _ = self._fenced()
        await self.store.note_refused(fence, due.meter, due.reading.counter, reason)
        self._retry_at[due.meter] = self.clock() + REFUSED_RETRY_SECS
        self.holds[due.meter] = Hold(reason, None, "refused on chain; tried again later")
        self.log.warning(
            "chain refused a reading for now, trying it again later",
            meter=due.meter,
            household=due.household,
            counter=due.reading.counter,
            reason=reason,
            retry_secs=REFUSED_RETRY_SECS,
        )

    async def _final(self, due: Due, reason: str, why: str) -> None:
        """Closes the meter's unattested readings up to this one: the chain will never take
        them. Kept, refused for ``reason``, counted and logged."""
        self.metrics.attest_refused.labels(reason).inc()
        up_to = None if reason == METER_REPLACED else due.reading.counter
        fence, _ = self._fenced()
        await self.store.close_readings(fence, due.meter, reason, self.clock(), up_to)
        self._retry_at.pop(due.meter, None)
        self.holds.pop(due.meter, None)
        self.log.error(
            "reading refused for good, closed",
            meter=due.meter,
            household=due.household,
            counter=due.reading.counter,
            reason=reason,
            why=why,
        )


def _signed(group: Sequence[Due]) -> list[tuple[SignedReading, Pubkey]]:
    return [
        (
            SignedReading(d.reading.message, d.reading.signature, Pubkey.from_string(d.meter)),
            Pubkey.from_string(d.household),
        )
        for d in group
    ]
