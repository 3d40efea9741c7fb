"""Following program events over the validator's websocket, through a dropped connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from nishati_client.chain import RpcChain
from nishati_client.events import ProgramEvent, watch
from nishati_client.program import NishatiClient
from nishati_dev.sandbox import Harness, open_market
from tests.harness.chain import Localnet

pytestmark = pytest.mark.rpc

RECONNECT_DELAY_SECS = 0.05


class DroppingProxy:
    """A websocket relay to the validator whose client connections the test can cut."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.clients: list[ServerConnection] = []
        self.subscriptions = 0
        self.changed = asyncio.Condition()

    async def relay(self, client: ServerConnection) -> None:
        async with connect(self.upstream) as upstream:
            self.clients.append(client)

            async def outbound() -> None:
                async for message in client:
                    await upstream.send(message)

            async def inbound() -> None:
                first = True
                async for message in upstream:
                    await client.send(message)
                    if first:  # the reply to the subscription
                        first = False
                        async with self.changed:
                            self.subscriptions += 1
                            self.changed.notify_all()

            tasks = [asyncio.create_task(outbound()), asyncio.create_task(inbound())]
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    def drop(self) -> None:
        """Cuts every client connection without a closing handshake, as a network would."""
        for client in self.clients:
            client.transport.abort()
        self.clients.clear()

    async def subscribed(self, count: int) -> None:
        async with asyncio.timeout(15), self.changed:
            await self.changed.wait_for(lambda: self.subscriptions >= count)


async def next_event(
    events: asyncio.Queue[ProgramEvent], name: str, market: Pubkey
) -> ProgramEvent:
    async with asyncio.timeout(15):
        while True:
            event = await events.get()
            if event.name == name and event.data.market == market:
                return event


@contextlib.asynccontextmanager
async def following(
    ws_url: str, client: NishatiClient
) -> AsyncIterator[asyncio.Queue[ProgramEvent]]:
    events: asyncio.Queue[ProgramEvent] = asyncio.Queue()

    async def follow() -> None:
        async for event in watch(ws_url, client.program, reconnect_delay_secs=RECONNECT_DELAY_SECS):
            await events.put(event)

    task = asyncio.create_task(follow())
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watch_follows_events_through_a_dropped_socket(
    localnet: Localnet, rpc_payer: Keypair, program_id: Pubkey
) -> None:
    proxy = DroppingProxy(localnet.ws_url)
    chain = RpcChain(localnet.rpc_url, program_id)
    h = Harness(chain, rpc_payer, NishatiClient(chain, program_id), None)
    try:
        async with serve(proxy.relay, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            ws_url = f"ws://127.0.0.1:{port}"
            with capture_logs() as logs:
                async with following(ws_url, h.client) as events:
                    await proxy.subscribed(1)
                    market = await open_market(h)
                    initialized = await next_event(events, "MarketInitialized", market.address)
                    assert initialized.data.admin == market.admin.pubkey()
                    assert initialized.slot > 0

                    proxy.drop()
                    await proxy.subscribed(2)
                    outcome = await h.client.market_pause(
                        payer=h.payer, admin=market.admin, market=market.address
                    )
                    paused = await next_event(events, "MarketPaused", market.address)
                    assert paused.signature == outcome.signature
            # Each subscription and the drop between them, with their fields.
            followed: dict[str, object] = {"event": "events followed", "log_level": "info"}
            followed |= {"program": str(program_id), "ws_url": ws_url}
            closed: dict[str, object] = {"event": "event socket closed", "log_level": "warning"}
            closed |= {"ws_url": ws_url, "reconnect_in_secs": RECONNECT_DELAY_SECS}
            assert [e for e in logs if e["event"] != "event socket failed"] == [
                followed,
                closed,
                followed,
            ]
    finally:
        await chain.close()
