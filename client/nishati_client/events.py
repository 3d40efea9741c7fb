"""Following the program's events live, over the RPC websocket.

:func:`watch` subscribes to the logs of every transaction that mentions the program
(``logsSubscribe``) and decodes them with :meth:`NishatiProgram.events`, the parser that reads a
sent transaction's logs. A dropped socket is reopened and the subscription renewed, with a
growing delay; events of transactions processed while it was down are not replayed (read them
with ``getSignaturesForAddress`` if they matter). Failed transactions emit nothing.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from solana.rpc.commitment import Commitment as RpcCommitment
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import LogsNotification
from solders.signature import Signature
from websockets.exceptions import WebSocketException

from nishati_client.config import Commitment
from nishati_client.program import NishatiProgram

with warnings.catch_warnings():
    # solana-py 0.36 builds its websocket client on websockets' legacy API, deprecated in 14.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from solana.rpc.websocket_api import connect

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProgramEvent:
    """One decoded event and the transaction that emitted it."""

    signature: Signature
    slot: int
    name: str
    data: Any


def websocket_url(rpc_url: str) -> str:
    """The websocket endpoint beside a JSON-RPC one, by Solana's convention: the scheme becomes
    ``ws``/``wss`` and an explicit port goes up by one (8899 → 8900)."""
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    netloc = parts.netloc
    if parts.port is not None and parts.hostname is not None:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = f"{host}:{parts.port + 1}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


async def watch(
    ws_url: str,
    program: NishatiProgram,
    commitment: Commitment = Commitment.confirmed,
    reconnect_delay_secs: float = 0.5,
    max_reconnect_delay_secs: float = 30.0,
    on_subscribed: Callable[[], None] | None = None,
) -> AsyncIterator[ProgramEvent]:
    """The program's events as transactions emitting them reach ``commitment``; runs until
    the caller stops iterating. ``on_subscribed`` is called each time the subscription is
    (re)established."""
    delay = reconnect_delay_secs
    mentions = RpcTransactionLogsFilterMentions(program.program_id)
    while True:
        try:
            async with connect(ws_url) as socket:
                await socket.logs_subscribe(mentions, commitment=RpcCommitment(commitment.value))
                await socket.recv()  # the subscription's id
                log.info("events followed", program=str(program.program_id), ws_url=ws_url)
                if on_subscribed is not None:
                    on_subscribed()
                delay = reconnect_delay_secs
                async for messages in socket:
                    for message in messages:
                        for event in _decoded(program, message):
                            yield event
        except (OSError, WebSocketException, TimeoutError) as error:
            log.warning(
                "event socket failed", ws_url=ws_url, error=str(error) or type(error).__name__
            )
        log.warning("event socket closed", ws_url=ws_url, reconnect_in_secs=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_reconnect_delay_secs)


def _decoded(program: NishatiProgram, message: object) -> list[ProgramEvent]:
    if not isinstance(message, LogsNotification):
        return []
    value = message.result.value
    if value.err is not None:
        return []
    slot = message.result.context.slot
    return [
        ProgramEvent(value.signature, slot, event.name, event.data)
        for event in program.events(value.logs)
    ]
