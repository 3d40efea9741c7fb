"""The web app (``web/``, built by ``scripts/build-web.sh``) served as static files under ``/``.

Vite names every asset under ``assets/`` by its content's hash, so those are cached for a year
and never asked again (``immutable``); ``index.html``, the service worker and the manifest
change under the same name, so they are asked again each time (``no-cache``). A path that names
no file is a route of the app's own: it gets ``index.html`` (the app routes in the browser).
Paths of the oracle's own (the API, ``/metrics``, ``/docs``, the probes) never do: an unknown
one stays a 404 in the one error shape. Each file the build compressed (``<name>.gz`` beside
it) is sent compressed to a browser that takes gzip.

A signed-in household's dashboard comes with its first answers: ``index.html`` for ``/`` carries
the answers of the calls the dashboard makes first (``/api/v1/auth/me``, the day, where its
solar went, the balance, the forecast, the advice) in a ``<script type="application/json"
id="nishati-preload">``, each asked of the app itself with the request's own cookies (so each
route's own authorization decides), and the app takes each once instead of asking. On a slow
phone connection every round trip costs seconds: the dashboard is drawn after one. That page is
the household's own, so it is ``private`` and varies by ``Cookie``.

The app is served beneath the routes: it answers only what no route matched (the router's
``default``), so it costs the API nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import mimetypes
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nishati_oracle.daraja.credentials import NAIROBI
from nishati_oracle.http.first_paint import day_chart, painted

log = structlog.get_logger(__name__)

INDEX = "index.html"
ASSETS = "assets"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
PRIVATE_NO_CACHE = "private, no-cache"
# First path segments that belong to the oracle, never to the app.
ORACLE_PREFIXES = frozenset({"api", "metrics", "docs", "healthz", "readyz", "openapi.json"})
ME = "/api/v1/auth/me"
PRELOAD_ID = "nishati-preload"
# The household dashboard's own calls (web/src/pages/Dashboard.tsx), as it spells them; the
# day first.
DASHBOARD_CALLS = ("day?date={today}", "solar?date={today}", "balance", "forecast", "advice")


def dashboard_calls(household: str, now: datetime) -> list[str]:
    """The paths the dashboard of ``household`` asks first, for its day in Nairobi at ``now``."""
    today = now.astimezone(NAIROBI).date().isoformat()
    return [
        f"/api/v1/households/{household}/" + call.format(today=today) for call in DASHBOARD_CALLS
    ]


def preload_script(answers: dict[str, dict[str, object]]) -> bytes:
    """The answers as a JSON script element; ``<`` escaped, so no answer can end the element."""
    text = json.dumps({"answers": answers}, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{PRELOAD_ID}">{text}</script>'.encode()


@dataclass(frozen=True)
class FirstAnswers:
    """The dashboard's first answers by path (status and body), and the day's body."""

    answers: dict[str, dict[str, object]]
    day: dict[str, object]


class WebApp:
    """What no route matched: a file of the build, ``index.html`` for an app route, else
    ``not_found`` (the router's own 404)."""

    def __init__(self, directory: Path, not_found: ASGIApp, app: ASGIApp) -> None:
        self.directory = directory.resolve()
        self.not_found = not_found
        self.app = app

    def file_for(self, path: str) -> Path | None:
        """The build's file at ``path`` (within the build, never outside it), ``index.html``
        for a path of the app's own, or None for one of the oracle's or a missing asset."""
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] in ORACLE_PREFIXES:
            return None
        candidate = (self.directory / "/".join(parts)).resolve()
        if candidate.is_relative_to(self.directory) and candidate.is_file():
            return candidate
        if parts and parts[0] == ASSETS:
            return None
        index = self.directory / INDEX
        return index if index.is_file() else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            found = self.file_for(scope["path"])
        if found is None:
            await self.not_found(scope, receive, send)
            return
        relative = found.relative_to(self.directory)
        if scope["path"] == "/" and _cookie(scope) is not None:
            answers = await self.first_answers(scope)
            if answers is not None:
                await self.personal_index(scope, found, answers)(scope, receive, send)
                return
        headers = {
            "Cache-Control": IMMUTABLE if relative.parts[0] == ASSETS else NO_CACHE,
            "Vary": "Accept-Encoding",
        }
        media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        compressed = found.with_name(found.name + ".gz")
        if _takes_gzip(scope) and compressed.is_file():
            headers["Content-Encoding"] = "gzip"
            found = compressed
        response = FileResponse(found, media_type=media_type, headers=headers)
        await response(scope, receive, send)

    async def first_answers(self, scope: Scope) -> FirstAnswers | None:
        """What the dashboard would ask first, asked with this request's cookies: None for a
        caller who is not a signed-in household."""
        cookie = _cookie(scope)
        assert cookie is not None
        transport = httpx.ASGITransport(app=self.app, client=scope.get("client") or ("", 0))
        headers = {"Cookie": cookie, "Accept": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url="http://oracle") as client:
            me = await client.get(ME, headers=headers)
            if me.status_code != 200 or me.json().get("role") != "household":
                return None
            paths = dashboard_calls(me.json()["household"], datetime.now(NAIROBI))
            got = await asyncio.gather(*(client.get(path, headers=headers) for path in paths))
        answers: dict[str, dict[str, object]] = {ME: {"status": 200, "body": me.json()}}
        for path, answer in zip(paths, got, strict=True):
            # A failure of the oracle's own is asked again by the app, not kept for it.
            if answer.status_code < 500 and _is_json(answer):
                answers[path] = {"status": answer.status_code, "body": answer.json()}
        day = got[0].json() if got[0].status_code == 200 and _is_json(got[0]) else {}
        return FirstAnswers(answers, day)

    def personal_index(self, scope: Scope, index: Path, first: FirstAnswers) -> Response:
        html = index.read_bytes().replace(b"</head>", preload_script(first.answers) + b"</head>", 1)
        html = painted(html, day_chart(first.day), self.directory)
        headers = {"Cache-Control": PRIVATE_NO_CACHE, "Vary": "Accept-Encoding, Cookie"}
        if _takes_gzip(scope):
            html = gzip.compress(html, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(html, media_type="text/html", headers=headers)


def _is_json(answer: httpx.Response) -> bool:
    content_type: str = answer.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _cookie(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"cookie":
            return str(value.decode("latin-1"))
    return None


def _takes_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value.lower()
    return False


def install(app: FastAPI, directory: Path) -> None:
    """Serves the build in ``directory`` beneath ``app``'s routes; a missing build is logged
    (the API serves without it)."""
    if not (directory / INDEX).is_file():
        log.warning(
            "web app not built: serving the API only",
            web_dir=str(directory),
            build="scripts/build-web.sh",
        )
    mimetypes.add_type("application/manifest+json", ".webmanifest")
    app.router.default = WebApp(directory, app.router.default, app)
