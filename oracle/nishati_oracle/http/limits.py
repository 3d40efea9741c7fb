"""Request bodies capped by kind of route: a router takes ``route_class=capped(cap)``, ``cap``
picking its kind's setting, and a body over the cap is a 413 BodyTooLarge, told before reading
when ``Content-Length`` says so, else as soon as the cap is passed (the rest is never read). A
route that reads no body needs no cap: the server reads nothing the app does not ask for.

Starlette's own limit (``max_body_size``) answers a declared-too-large body in plain text
whatever the app answers; this one raises, so the answer is in the one error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from nishati_client.digits import ascii_digits
from nishati_oracle.core.settings import HttpSettings
from nishati_oracle.http.deps import services_of


class CappedRequest(Request):
    """A request whose :meth:`body` refuses to grow past ``max_bytes``."""

    def __init__(self, request: Request, max_bytes: int) -> None:
        super().__init__(request.scope, request.receive)
        self.max_bytes = max_bytes
        self._capped: bytes | None = None

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the body is over this route's {self.max_bytes:,} bytes")

    async def body(self) -> bytes:
        if self._capped is None:
            declared = self.headers.get("content-length", "")
            if ascii_digits(declared) and int(declared) > self.max_bytes:
                raise self._too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            self._capped = b"".join(chunks)
        return self._capped


def capped(cap: Callable[[HttpSettings], int]) -> type[APIRoute]:
    """A route class whose requests' bodies are capped at ``cap`` of the app's HTTP settings."""

    class CappedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def capped_handler(request: Request) -> Response:
                limit = cap(services_of(request).settings.http)
                return await handler(CappedRequest(request, limit))

            return capped_handler

    return CappedRoute
