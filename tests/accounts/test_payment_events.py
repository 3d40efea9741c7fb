"""A trade's payment as server-sent events: its states in order through to a final one, a
heartbeat while nothing changes, the end of the stream after the final state; and the same
callers as ``GET /api/v1/payments/{trade_id}`` (another household and nobody are refused)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from nishati_oracle.trading.ledger import HistoryEntry, TradeRecord, TradeState
from nishati_oracle.trading.wiring import Trading
from tests.accounts.conftest import SignInWorld

POLL_SECS = 0.02
HEARTBEAT_SECS = 0.1


async def streamed(client: httpx.AsyncClient, path: str) -> tuple[int, str, str]:
    """Status, content type and the whole body of a stream (the in-process transport hands
    it over once the app has ended it)."""
    async with client.stream("GET", path) as answer:
        body = "".join([chunk async for chunk in answer.aiter_text()])
    return answer.status_code, answer.headers["content-type"], body


def payments(body: str) -> list[dict[str, Any]]:
    events = [block.splitlines() for block in body.split("\n\n") if block]
    return [
        json.loads(lines[-1].removeprefix("data: "))
        for lines in events
        if lines[0] == "event: payment"
    ]


class Moves:
    """Moves a trade one state at a time, each after the stream has read the one before. The
    payment worker's rounds are held meanwhile: they would settle and pay the hand-made trade
    themselves, and their reads would count as the stream's."""

    def __init__(self, trading: Trading, trade: TradeRecord, monkeypatch: pytest.MonkeyPatch):
        self.trading, self.trade = trading, trade

        async def held() -> None:
            return None

        monkeypatch.setattr(trading.worker, "run_rest", held)
        self.read: asyncio.Queue[TradeState] = asyncio.Queue()
        original = trading.ledger.with_history

        async def with_history(trade_id: str) -> tuple[TradeRecord, list[HistoryEntry]] | None:
            found = await original(trade_id)
            if found is not None and trade_id == trade.id:
                self.read.put_nowait(found[0].state)
            return found

        monkeypatch.setattr(trading.ledger, "with_history", with_history)
        monkeypatch.setattr(trading.settings.http, "events_poll_secs", POLL_SECS)
        monkeypatch.setattr(trading.settings.http, "events_heartbeat_secs", HEARTBEAT_SECS)

    async def seen(self, state: TradeState) -> None:
        while await asyncio.wait_for(self.read.get(), 5) != state:
            pass

    async def through(self, *states: TradeState, detail: str = "a test move") -> None:
        current = self.trade.state
        for state in states:
            await self.seen(current)
            assert await self.trading.ledger.move(self.trade.id, [current], state, detail)
            current = state


async def stream_while_moving(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch, states: list[TradeState], detail: str
) -> tuple[str, str, list[dict[str, Any]]]:
    trading = signin.oracle.services.trading
    assert trading is not None
    buyer, phone = await signin.household()
    seller, _ = await signin.household()
    trade = await signin.trade(buyer, seller)
    moves = Moves(trading, trade, monkeypatch)
    browser = signin.browser()
    await signin.sign_in(browser, phone)
    reading = asyncio.create_task(streamed(browser, f"/api/v1/payments/{trade.id}/events"))
    await moves.seen(trade.state)
    await asyncio.sleep(3 * HEARTBEAT_SECS)
    await moves.through(*states, detail=detail)
    status, content_type, body = await asyncio.wait_for(reading, 10)
    assert status == 200
    return content_type, body, payments(body)


async def test_the_buyer_sees_each_state_through_to_the_payout(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = [
        TradeState.paid,
        TradeState.settled,
        TradeState.payout_sent,
        TradeState.payout_confirmed,
    ]
    content_type, body, events = await stream_while_moving(signin, monkeypatch, states, "moved")
    assert content_type.startswith("text/event-stream")
    assert [e["state"] for e in events] == [TradeState.stk_sent, *states]
    assert [e["final"] for e in events] == [False] * 4 + [True]
    assert [h["state"] for h in events[-1]["history"]] == [TradeState.stk_sent, *states]
    assert ": heartbeat" in body.split("event: payment")[1]
    # Nothing after the final state's event: the stream ended there.
    assert body.endswith("\n\n")
    assert body.split("\n\n")[-2].startswith("event: payment\nid: 5\n")


async def test_a_cancelled_trade_ends_the_stream_with_its_reason(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "the buyer cancelled the STK Push"
    states = [TradeState.cancelling, TradeState.cancelled]
    _, _, events = await stream_while_moving(signin, monkeypatch, states, reason)
    assert [e["state"] for e in events] == [TradeState.stk_sent, *states]
    assert events[-1]["history"][-1] == {**events[-1]["history"][-1], "detail": reason}


async def test_another_household_and_nobody_are_refused(signin: SignInWorld) -> None:
    buyer, _ = await signin.household()
    seller, _ = await signin.household()
    _, other_phone = await signin.household()
    trade = await signin.trade(buyer, seller)
    path = f"/api/v1/payments/{trade.id}/events"
    other = signin.browser()
    await signin.sign_in(other, other_phone)
    refused = await other.get(path)
    assert (refused.status_code, refused.json()["reason"]) == (404, "UnknownTrade")
    nobody = await signin.browser().get(path)
    assert (nobody.status_code, nobody.json()["reason"]) == (401, "NotSignedIn")
