"""What payouts and refunds share: requests whose outcome Daraja posts later to a result URL
(a B2C payment, a reversal, a Transaction Status query about either), and how such a result
finds the trade it answers.

A result is matched on Daraja's ids (:func:`~nishati_oracle.daraja.same_request`): its own
OriginatorConversationID and ConversationID against the request's; a Transaction Status
answer by the status query's ConversationID (kept when the query was taken) or by the ids of
the transaction it reports (``queried_ids``). A result no trade is known for is kept a while
(the reply naming its request's ConversationID may still be on its way to the ledger), then
recorded as unmatched: never looked at, nor asked about, again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import structlog

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.daraja import same_request
from nishati_oracle.trading.gateway import Delivery, Gateway, ResultNotice
from nishati_oracle.trading.ledger import Ledger, TradeRecord, TradeState
from nishati_oracle.trading.vault import PhoneVault

log = structlog.get_logger(__name__)

# A result no trade is known for is kept this long before it is recorded as unmatched.
UNMATCHED_GRACE_SECS = 120.0


def status_answer(trade: TradeRecord, notice: ResultNotice) -> bool:
    """Whether ``notice`` answers the trade's last Transaction Status query (it carries the
    query's ids; a refusal, such as "no such transaction", carries nothing else)."""
    asked = frozenset(i for i in (trade.status_conversation_id,) if i)
    return same_request(asked, notice.ids)


def answers(trade: TradeRecord, notice: ResultNotice, ours: frozenset[str]) -> bool:
    """Whether ``notice`` answers the request known by ``ours``: a result or timeout by its
    own ids; a status answer by the status query's ids or by the ids of the transaction it
    reports."""
    if status_answer(trade, notice):
        return True
    return same_request(ours, notice.queried_ids if notice.status else notice.ids)


class ResultPhase(ABC):
    """A phase of the worker whose requests Daraja answers at ``result_url``."""

    # What its requests are, for logs and the mismatch metric.
    kind = ""

    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        gateway: Gateway,
        vault: PhoneVault,
        result_url: str,
        timeout_url: str,
        clock: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.gateway = gateway
        self.vault = vault
        self.result_url = result_url
        self.timeout_url = timeout_url
        self.clock = clock
        self.metrics = metrics

    @abstractmethod
    def answered(self, trade: TradeRecord, notice: ResultNotice) -> bool:
        """Whether ``notice`` answers the trade's current request of this phase."""

    async def find(
        self, notice: ResultNotice, received_at: float, reversed_receipt: str | None = None
    ) -> TradeRecord | str | None:
        """The trade ``notice`` answers, claimed for this replica; else None while it may yet
        be matched (or another replica is acting on its trade), then ``"unmatched"``
        (logged)."""
        found = await self.ledger.by_daraja_ids(notice.ids | notice.queried_ids, reversed_receipt)
        for trade in found:
            if self.answered(trade, notice):
                return trade if await self.ledger.claim(trade.id) else None
        if self.clock() - received_at < UNMATCHED_GRACE_SECS:
            return None
        log.error(
            f"{self.kind} result matches no {self.kind}",
            ids=sorted(notice.ids),
            queried_ids=sorted(notice.queried_ids),
            result_code=str(notice.result_code),
        )
        return "unmatched"

    async def timed_out(self, trade: TradeRecord, waiting: Iterable[TradeState]) -> None:
        """A queue timeout: not a failure; the request's status is asked at once."""
        if trade.state in waiting:
            await self.ledger.update(trade.id, trade.state, next_check_at=self.clock())
            await self.ledger.note(
                trade.id, trade.state, f"{self.kind} queue timeout: asking status"
            )

    async def ask_status(self, trade: TradeRecord, originator: str) -> None:
        """Transaction Status of the request known by ``originator``; the status query's
        ConversationID is kept, so that its answer finds the trade."""
        asked = await self.gateway.status(
            originator_conversation_id=originator,
            result_url=self.result_url,
            timeout_url=self.timeout_url,
        )
        if asked.delivery is Delivery.accepted and asked.conversation_id is not None:
            await self.ledger.update(
                trade.id, trade.state, status_conversation_id=asked.conversation_id
            )

    def mismatch(self, trade: TradeRecord, what: str, receipt: str | None) -> None:
        """Daraja made what the ledger holds failed: logged and counted."""
        self.metrics.ledger_mismatches.labels(self.kind).inc()
        log.error(
            f"ledger and daraja disagree: {what}",
            trade_id=trade.id,
            market=trade.market,
            receipt=receipt,
        )
