"""The web app's build served under /: hashed assets cached for good, index.html asked again,
the app's routes answered with index.html, the oracle's own paths never."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import structlog

from nishati_dev.sandbox import Harness
from nishati_oracle.accounts.sessions import SESSION_COOKIE, Holder
from nishati_oracle.core.settings import HttpSettings
from nishati_oracle.daraja.credentials import NAIROBI
from nishati_oracle.http.first_paint import day_chart, painted
from nishati_oracle.http.webapp import (
    IMMUTABLE,
    ME,
    NO_CACHE,
    PRELOAD_ID,
    PRIVATE_NO_CACHE,
    dashboard_calls,
    preload_script,
)
from tests.harness.oracle import OracleWorld, start_world

INDEX = (
    b'<!doctype html><head><title>Nishati</title><script src="/assets/index-abc123.js"></script>'
    b"</head><body></body>"
)
SCRIPT = b"console.log('nishati');" * 50


def build(directory: Path) -> Path:
    """A build as scripts/build-web.sh leaves it: index.html, hashed assets (compressed
    beside them), the files of public/."""
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_bytes(INDEX)
    (directory / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (directory / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (directory / "manifest.webmanifest").write_text('{"name": "Nishati"}')
    (directory / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    return directory


@pytest.fixture
async def served(litesvm: Harness, tmp_path: Path) -> AsyncIterator[OracleWorld]:
    started = await start_world(
        litesvm,
        f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}",
        tmp_path,
        http=HttpSettings(web_dir=build(tmp_path / "dist")),
    )
    async with started.app.router.lifespan_context(started.app), started.http:
        yield started


async def test_index_and_the_app_routes_are_index_html_asked_again(served: OracleWorld) -> None:
    for path in ("/", "/market", "/history/some-trade", "/index.html"):
        answer = await served.http.get(path)
        assert answer.status_code == 200, path
        assert answer.content == INDEX
        assert answer.headers["cache-control"] == NO_CACHE
        assert answer.headers["content-type"].startswith("text/html")


async def test_a_hashed_asset_is_cached_for_good_and_sent_gzipped(served: OracleWorld) -> None:
    plain = await served.http.get(
        "/assets/index-abc123.js", headers={"Accept-Encoding": "identity"}
    )
    assert plain.status_code == 200
    assert plain.content == SCRIPT
    assert plain.headers["cache-control"] == IMMUTABLE
    assert "content-encoding" not in plain.headers
    zipped = await served.http.get("/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(SCRIPT)
    assert zipped.content == SCRIPT  # httpx takes the encoding off
    assert zipped.headers["content-type"].startswith(("text/javascript", "application/javascript"))


async def test_the_worker_and_manifest_are_asked_again(served: OracleWorld) -> None:
    worker = await served.http.get("/sw.js")
    assert worker.headers["cache-control"] == NO_CACHE
    manifest = await served.http.get("/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")


async def test_a_missing_asset_is_a_404_not_the_app(served: OracleWorld) -> None:
    answer = await served.http.get("/assets/index-gone.js")
    assert answer.status_code == 404
    assert answer.json()["reason"] == "NotFound"


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api", "/metrics/x", "/docs/nothing", "/healthz/x", "/readyz/x"]
)
async def test_the_oracles_own_paths_never_fall_back_to_the_app(
    served: OracleWorld, path: str
) -> None:
    answer = await served.http.get(path)
    assert answer.status_code == 404
    assert answer.json()["reason"] == "NotFound"


async def test_the_oracles_routes_still_answer_beside_the_app(served: OracleWorld) -> None:
    assert (await served.http.get("/healthz")).json() == {"status": "ok"}
    assert (await served.http.get("/metrics")).headers["content-type"].startswith("text/plain")
    assert "swagger-ui" in (await served.http.get("/docs")).text
    # A change to an app route is no page: the app's routes are read only.
    assert (await served.http.post("/market")).status_code == 404


async def test_nothing_outside_the_build_is_served(served: OracleWorld, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not for the web")
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
        answer = await served.http.get(path)
        assert b"not for the web" not in answer.content, path


async def test_a_missing_build_is_logged_and_the_api_serves(
    litesvm: Harness, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        started = await start_world(
            litesvm,
            f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}",
            tmp_path,
            http=HttpSettings(web_dir=tmp_path / "no-build"),
        )
    assert any(e["event"] == "web app not built: serving the API only" for e in logs)
    async with started.app.router.lifespan_context(started.app), started.http:
        assert (await started.http.get("/")).status_code == 404
        assert (await started.http.get("/healthz")).status_code == 200


PRELOAD = re.compile(
    rb'<script type="application/json" id="' + PRELOAD_ID.encode() + rb'">(.*?)</script>'
)


def preloaded(page: bytes) -> dict[str, object] | None:
    found = PRELOAD.search(page)
    return None if found is None else dict(json.loads(found.group(1)))


async def test_a_households_dashboard_comes_with_its_first_answers(served: OracleWorld) -> None:
    member = await served.member()
    session = await served.services.accounts.sessions.open(Holder.household, str(member.address))
    cookies = {"Cookie": f"{SESSION_COOKIE}={session.id}"}
    page = await served.http.get("/", headers=cookies)
    assert page.status_code == 200
    assert page.headers["cache-control"] == PRIVATE_NO_CACHE
    assert "Cookie" in page.headers["vary"]
    found = preloaded(page.content)
    assert found is not None, page.text
    answers = found["answers"]
    assert isinstance(answers, dict)
    calls = dashboard_calls(str(member.address), datetime.now(NAIROBI))
    assert set(answers) <= {ME, *calls}
    assert answers[ME] == {
        "status": 200,
        "body": (await served.http.get(ME, headers=cookies)).json(),
    }
    # Each answer is what the route itself says to this household.
    for path in calls:
        asked = await served.http.get(path, headers=cookies)
        if asked.status_code < 500:
            assert answers[path] == {"status": asked.status_code, "body": asked.json()}, path
    day = answers[calls[0]]
    assert day["status"] == 200
    assert day["body"]["intervals"] == []
    # The page is the household's own only at the dashboard; the rest is the plain build.
    assert (await served.http.get("/market", headers=cookies)).content == INDEX


async def test_nobody_a_stale_session_and_an_operator_get_the_plain_page(
    served: OracleWorld,
) -> None:
    operator = await served.services.accounts.sessions.open(Holder.operator, "ops")
    for cookie in ("", f"{SESSION_COOKIE}=no-such-session", f"{SESSION_COOKIE}={operator.id}"):
        cookies = {"Cookie": cookie} if cookie else {}
        page = await served.http.get("/", headers=cookies)
        assert page.content == INDEX, cookies
        assert page.headers["cache-control"] == NO_CACHE


def test_no_answer_can_end_the_script_it_rides_in() -> None:
    hostile = {"/x": {"status": 200, "body": "</script><script>alert(1)</script>"}}
    script = preload_script(hostile)
    assert script.count(b"</script>") == 1
    assert preloaded(script) == {"answers": hostile}


def test_the_first_paint_steps_each_interval_and_inlines_the_stylesheet(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "index-1.css").write_text("main{margin:0}")
    page = (
        b'<head><link rel="stylesheet" crossorigin href="/assets/index-1.css"></head>'
        b'<body><div id="root"></div></body>'
    )
    day = {
        "start": 0,
        "end": 960,
        "intervals": [
            {"meter": "m", "start": 0, "end": 480, "exported_wh": 100, "imported_wh": 0},
            {"meter": "m", "start": 480, "end": 960, "exported_wh": 0, "imported_wh": 50},
        ],
    }
    drawn = painted(page, day_chart(day), tmp_path)
    assert b"<style>main{margin:0}</style>" in drawn
    assert b"<link" not in drawn
    # The highest interval reaches the top (less a margin of 8), each step its own area.
    assert b'class="export" d="M0 240V8H480V240ZM480 240V240H960V240Z"' in drawn
    assert b'class="import" d="M0 240V240H480V240ZM480 240V124H960V240Z"' in drawn
    assert drawn.count(b'data-testid="day-chart"') == 1


def test_a_day_without_intervals_has_no_first_paint(tmp_path: Path) -> None:
    assert day_chart({"start": 0, "end": 960, "intervals": []}) is None
    assert day_chart({"intervals": [{"start": "0"}]}) is None
    page = b'<div id="root"></div>'
    assert painted(page, None, tmp_path) == page
