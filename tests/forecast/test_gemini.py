"""The Gemini advisor through the real ``google-genai`` SDK, against a local stub of Gemini's REST
endpoint (``POST /v1beta/models/{model}:generateContent``, answering in its documented JSON
shape): a good answer is given, and a rule-breaking, malformed, late or refused one is replaced
by the rule-based advice, saying why."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.advice import (
    Action,
    Advice,
    AdviceInput,
    AdvisorName,
    FallbackReason,
    SellAdvice,
    rule_advice,
)
from nishati_oracle.forecast.gemini import GeminiAdvisor
from tests.forecast.households import MORNING, STEP, short_evening, sunny_day

MODEL = "gemini-test-flash"
KEY = "test-gemini-key"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeGemini:
    """What the stub answers next: a status, the text of the first candidate's first part (or
    a raw body), a delay; and every request it received."""

    status: int = 200
    text: str = ""
    raw: bytes | None = None
    delay_secs: float = 0.0
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


def candidate_body(text: str) -> dict[str, Any]:
    """A generateContent answer as the Gemini API documents it."""
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 120},
        "modelVersion": MODEL,
    }


def error_body(status: int) -> dict[str, Any]:
    names = {403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
    return {"error": {"code": status, "message": f"stub {status}", "status": names[status]}}


@pytest.fixture
def gemini() -> Iterator[tuple[str, FakeGemini]]:
    fake = FakeGemini()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            fake.received.append(
                Received(
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    json.loads(self.rfile.read(length)),
                )
            )
            if fake.delay_secs:
                fake.released.wait(fake.delay_secs)
            if fake.raw is not None:
                payload = fake.raw
            elif fake.status == 200:
                payload = json.dumps(candidate_body(fake.text)).encode()
            else:
                payload = json.dumps(error_body(fake.status)).encode()
            try:
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


async def advise(url: str, inputs: AdviceInput, **settings: Any) -> Advice:
    values: dict[str, Any] = {
        "gemini_api_key": SecretStr(KEY),
        "gemini_model": MODEL,
        "gemini_url": url,
        "gemini_timeout_secs": 5.0,
    }
    advisor = GeminiAdvisor(ForecastSettings(**(values | settings)))
    try:
        return await advisor.advise(inputs)
    finally:
        await advisor.close()


def answer(**sell: int) -> str:
    """Gemini's suggestion for the sunny day: a sale, with these numbers."""
    return json.dumps(
        {
            "action": "sell",
            "sell": {"offer_wh": 6_000, "price_cents_per_kwh": 2_450, "until": MORNING + 28 * STEP}
            | sell,
            "explanation_en": "Offer 6.0 kWh at KES 24.50/kWh until 16:00 today.",
            "explanation_sw": "Weka ofa ya kWh 6.0 kwa KES 24.50 kwa kila kWh hadi saa 16:00 leo.",
        }
    )


async def test_a_good_answer_is_given_and_the_request_is_geminis(
    gemini: tuple[str, FakeGemini],
) -> None:
    url, fake = gemini
    fake.text = answer()
    inputs = sunny_day()
    advice = await advise(url, inputs)
    assert advice.advisor is AdvisorName.gemini
    assert advice.fallback_reason is None
    assert advice.sell == SellAdvice(
        offer_wh=6_000, price_cents_per_kwh=2_450, until=MORNING + 28 * STEP
    )
    assert advice.explanation_sw.startswith("Weka ofa ya kWh 6.0")
    [request] = fake.received
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert set(schema["properties"]) == {
        "action",
        "sell",
        "buy",
        "explanation_en",
        "explanation_sw",
    }
    assert schema["properties"]["action"]["enum"] == ["sell", "buy", "hold"]
    assert "p10" in request.body["systemInstruction"]["parts"][0]["text"]
    # The case, compactly: each step [end, expected, p10, p90], the rules' own answer beside.
    case = json.loads(request.body["contents"][0]["parts"][0]["text"])
    assert case["balance_wh"] == 1_000
    assert case["price_bounds"] == [1_000, 5_000]
    assert case["steps"][0] == [MORNING + STEP, 350, 300, 400]
    assert len(case["steps"]) == 192
    assert [offer["offer"] for offer in case["offers"]] == ["OfferA", "OfferB"]
    assert case["rules_advice"] == {
        "action": "sell",
        "sell": {"offer_wh": 7_000, "price_cents_per_kwh": 2_390, "until": MORNING + 28 * STEP},
    }


async def test_a_good_purchase_is_given(gemini: tuple[str, FakeGemini]) -> None:
    url, fake = gemini
    inputs = short_evening()
    rules = rule_advice(inputs)
    assert rules.buy is not None
    # Gemini buys only the cheaper kilowatt-hour: allowed, and given.
    fake.text = json.dumps(
        {
            "action": "buy",
            "buy": rules.buy.model_dump()
            | {"purchases": [rules.buy.purchases[0].model_dump()], "total_cost_cents": 2_400},
            "explanation_en": "Buy 1.0 kWh tonight.",
            "explanation_sw": "Nunua kWh 1.0 usiku huu.",
        }
    )
    advice = await advise(url, inputs)
    assert (advice.advisor, advice.action) == (AdvisorName.gemini, Action.buy)
    assert advice.buy is not None
    assert advice.buy.covered_wh == 1_000
    assert advice.buy.total_cost_cents == 2_400


@pytest.mark.parametrize(
    "sell",
    [{"offer_wh": 9_400}, {"price_cents_per_kwh": 6_000}, {"until": MORNING + 49 * 3_600}],
    ids=["more-than-spare", "above-the-bounds", "beyond-the-horizon"],
)
async def test_an_answer_breaking_the_rules_is_replaced(
    gemini: tuple[str, FakeGemini], sell: dict[str, int]
) -> None:
    url, fake = gemini
    fake.text = answer(**sell)
    inputs = sunny_day()
    advice = await advise(url, inputs)
    assert advice == rule_advice(inputs, FallbackReason.rules_broken)
    assert advice.sell is not None
    assert advice.sell.offer_wh == 7_000


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "sell", "sell": {"offer_wh": 6000',
        "Offer 6 kWh at KES 24.50.",
        json.dumps({"action": "sell", "explanation_en": "e", "explanation_sw": "s"}),
        json.dumps({"action": "burn", "explanation_en": "e", "explanation_sw": "s"}),
    ],
    ids=["cut-short", "prose", "sell-without-numbers", "unknown-action"],
)
async def test_a_malformed_answer_is_replaced(gemini: tuple[str, FakeGemini], text: str) -> None:
    url, fake = gemini
    fake.text = text
    advice = await advise(url, sunny_day())
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.malformed)
    assert advice.action is Action.sell


@pytest.mark.parametrize(
    "raw",
    [json.dumps({"promptFeedback": {"blockReason": "OTHER"}}).encode(), b"<html>busy</html>"],
    ids=["no-candidates", "not-json"],
)
async def test_a_body_without_an_answer_is_malformed(
    gemini: tuple[str, FakeGemini], raw: bytes
) -> None:
    url, fake = gemini
    fake.raw = raw
    advice = await advise(url, sunny_day())
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.malformed)


async def test_a_late_answer_is_replaced_in_time(gemini: tuple[str, FakeGemini]) -> None:
    url, fake = gemini
    fake.text = answer()
    fake.delay_secs = 10.0
    started = time.monotonic()
    advice = await advise(url, sunny_day(), gemini_timeout_secs=0.3)
    elapsed = time.monotonic() - started
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.timeout)
    assert elapsed < 3.0, f"the fallback took {elapsed:.1f} s"
    assert len(fake.received) == 1


@pytest.mark.parametrize("status", [500, 429, 403])
async def test_an_error_status_is_replaced_without_retrying(
    gemini: tuple[str, FakeGemini], status: int
) -> None:
    url, fake = gemini
    fake.status = status
    started = time.monotonic()
    advice = await advise(url, short_evening())
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.error)
    assert advice.action is Action.buy
    assert len(fake.received) == 1
    assert time.monotonic() - started < 3.0


async def test_an_unreachable_gemini_is_an_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    advice = await advise(f"http://127.0.0.1:{port}", sunny_day())
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.error)


async def test_without_a_key_gemini_is_never_asked(gemini: tuple[str, FakeGemini]) -> None:
    url, fake = gemini
    fake.text = answer()
    inputs = sunny_day()
    advice = await advise(url, inputs, gemini_api_key=None)
    assert advice == rule_advice(inputs, FallbackReason.no_key)
    assert fake.received == []
