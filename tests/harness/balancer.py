"""A round-robin HTTP forwarder in front of oracle replicas, as a load balancer would stand:
each request goes to the next replica in turn, or to the one after if that one refuses the
connection (it is down). One request per connection (``Connection: close`` both ways), so a
replica killed mid-request costs that request only: its client gets a 502 and sends again.

It serves from the event loop it is started on; the test's blocking waits must run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from nishati_dev.processes import HOST

MAX_HEAD_BYTES = 64 * 1024
UPSTREAM_TIMEOUT_SECS = 30.0
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class Balancer:
    """Forwards to ``ports`` (replicas on ``HOST``) in turn; :attr:`served` counts the requests
    each answered, :attr:`failed` those no replica answered."""

    ports: Sequence[int]
    served: dict[int, int] = field(default_factory=dict)
    failed: int = 0
    _turns: itertools.cycle[int] = field(init=False)
    _server: asyncio.Server | None = None

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(len(self.ports)))

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if request is not None:
                writer.write(await self._forward(request))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
        """The request with ``Connection: close`` in place of any connection header."""
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD_BYTES:
            return None
        lines = head[:-4].split(b"\r\n")
        kept = [lines[0]]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            if lowered not in (b"connection", b"keep-alive"):
                kept.append(line)
        kept.append(b"Connection: close")
        body = await reader.readexactly(length) if length else b""
        return b"\r\n".join(kept) + b"\r\n\r\n" + body

    async def _forward(self, request: bytes) -> bytes:
        """The first answer of a replica that takes the connection, in turn; a 502 if none
        does, or if the one that took it dies before answering."""
        for _ in range(len(self.ports)):
            port = self.ports[next(self._turns)]
            try:
                upstream_reader, upstream = await asyncio.open_connection(HOST, port)
            except OSError:
                continue
            try:
                upstream.write(request)
                await upstream.drain()
                answer = await asyncio.wait_for(upstream_reader.read(), UPSTREAM_TIMEOUT_SECS)
            except (OSError, TimeoutError):
                answer = b""
            finally:
                upstream.close()
                with contextlib.suppress(OSError):
                    await upstream.wait_closed()
            if not answer.startswith(b"HTTP/"):
                break
            self.served[port] = self.served.get(port, 0) + 1
            return answer
        self.failed += 1
        return BAD_GATEWAY


@asynccontextmanager
async def balancer(ports: Sequence[int]) -> AsyncIterator[Balancer]:
    """A started balancer in front of ``ports``, closed afterwards."""
    found = Balancer(ports)
    await found.start()
    try:
        yield found
    finally:
        await found.close()
