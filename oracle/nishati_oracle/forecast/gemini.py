"""Advice written by Gemini (``google-genai``, structured output into ``advice.Suggestion``),
held to the rule-based advisor's rules.

Gemini is sent the household's forecast compactly (each step as ``[end, expected, p10, p90]``),
its balance, the market's price bounds, the offers near it, and the rule-based suggestion as a
baseline; it answers in ``Suggestion``'s JSON schema. Its answer is given only when it parses and
``advice.check`` finds nothing wrong with its numbers. Otherwise the rule-based advice is given,
saying why: ``rules_broken``, ``timeout`` (no answer within ``gemini_timeout_secs``),
``malformed`` (not JSON, or not the schema), ``error`` (an error status, an unreachable
service), or ``no_key`` (no Gemini key set: Gemini is never asked). The SDK does not retry: a
retried request would only come back after the advice is due. It sends through the oracle's own
``httpx`` client, and asks the Gemini API's ``v1beta`` version (where its structured output is
documented) whatever ``GOOGLE_GENAI_API_VERSION`` says.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import structlog
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.advice import (
    Advice,
    AdviceInput,
    AdvisorName,
    FallbackReason,
    Suggestion,
    check,
    rule_suggestion,
)

log = structlog.get_logger(__name__)

API_VERSION = "v1beta"

SYSTEM_INSTRUCTION = """\
You advise a household in Nishati, a market where Kenyan homes with rooftop solar sell spare
energy to their neighbours. Energy is in Wh, money in KES cents, prices in KES cents per kWh,
times in Unix seconds. Each forecast step is [end, expected_wh, p10_wh, p90_wh]: the home's
surplus (production minus consumption) in the 15 minutes ending at `end`; negative is a deficit.

Answer with one suggestion:
- "sell": offer_wh, price_cents_per_kwh and until (when the offer ends).
- "buy": a shortage (shortage_start, shortage_end, shortage_wh) and purchases from the listed
  offers, cheapest first, each with its cost_cents, and total_cost_cents.
- "hold": nothing to do.

Rules your numbers must keep (they are checked; an answer breaking one is thrown away):
- Read the pessimistic path: balance_wh plus the running sum of p10_wh, step by step.
- offer_wh is at most the path's level at `until`, and at most any level after it.
- price_cents_per_kwh lies within price_bounds.
- until, shortage_start and shortage_end lie between now and horizon_end.
- shortage_wh is at most how far the path falls below zero.
- Purchases name only the listed offers, at their price, at most their wh, at most the shortage
  in all; cost_cents = ceil(wh * price_cents_per_kwh / 100000) * 100 (whole shillings);
  total_cost_cents is the sum of cost_cents.
rules_advice is what the rule-based advisor says; keep it unless you see a better answer within
the rules.

explanation_en: two or three short plain English sentences for the household. explanation_sw:
the same in plain Kenyan Swahili, short sentences. Give amounts in kWh with one decimal, money in
KES, times in East Africa Time (UTC+3)."""


def prompt(inputs: AdviceInput, baseline: Suggestion) -> str:
    """The household's case as compact JSON."""
    case = {
        "now": inputs.now,
        "horizon_end": inputs.horizon_end,
        "balance_wh": inputs.balance_wh,
        "price_bounds": [
            inputs.price_bounds.min_cents_per_kwh,
            inputs.price_bounds.max_cents_per_kwh,
        ],
        "steps": [
            [band.end, band.expected_wh, band.p10_wh, band.p90_wh]
            for band in inputs.bands
            if inputs.now < band.end <= inputs.horizon_end
        ],
        "offers": [
            {
                "offer": offer.address,
                "wh": offer.wh_available,
                "price_cents_per_kwh": offer.price_cents_per_kwh,
            }
            for offer in inputs.competitors()
        ],
        "own_open_offers_wh": [offer.wh_available for offer in inputs.own_offers],
        "rules_advice": baseline.model_dump(
            mode="json", exclude={"explanation_en", "explanation_sw"}, exclude_none=True
        ),
    }
    return json.dumps(case, separators=(",", ":"))


class GeminiAdvisor:
    """Advice from Gemini when a key is set, checked; the rule-based advice otherwise."""

    def __init__(self, settings: ForecastSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient()
        self._client: genai.Client | None = None
        if settings.gemini_api_key is not None:
            self._client = genai.Client(
                vertexai=False,
                api_key=settings.gemini_api_key.get_secret_value(),
                http_options=types.HttpOptions(
                    base_url=settings.gemini_url,
                    api_version=API_VERSION,
                    timeout=round(settings.gemini_timeout_secs * 1_000),
                    retry_options=types.HttpRetryOptions(attempts=1),
                    httpx_async_client=self.http,
                ),
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
        await self.http.aclose()

    async def advise(self, inputs: AdviceInput) -> Advice:
        baseline = rule_suggestion(inputs)
        if self._client is None:
            return Advice.of(baseline, inputs, AdvisorName.rules, FallbackReason.no_key)
        bound = log.bind(household=inputs.household, model=self.settings.gemini_model)
        suggestion = await self._ask(self._client, inputs, baseline, bound)
        if isinstance(suggestion, FallbackReason):
            return Advice.of(baseline, inputs, AdvisorName.rules, suggestion)
        violations = check(suggestion, inputs)
        if violations:
            bound.warning(
                "gemini_advice_broke_rules",
                rules=[violation.rule.value for violation in violations],
                details=[violation.detail for violation in violations],
            )
            return Advice.of(baseline, inputs, AdvisorName.rules, FallbackReason.rules_broken)
        return Advice.of(suggestion, inputs, AdvisorName.gemini)

    async def _ask(
        self,
        client: genai.Client,
        inputs: AdviceInput,
        baseline: Suggestion,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> Suggestion | FallbackReason:
        """Gemini's suggestion, or why there is none."""
        config = types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            response_mime_type="application/json",
            response_schema=Suggestion,
        )
        try:
            async with asyncio.timeout(self.settings.gemini_timeout_secs):
                response = await client.aio.models.generate_content(
                    model=self.settings.gemini_model,
                    contents=prompt(inputs, baseline),
                    config=config,
                )
        except (TimeoutError, httpx.TimeoutException):
            bound.warning("gemini_timeout", timeout_secs=self.settings.gemini_timeout_secs)
            return FallbackReason.timeout
        except errors.APIError as error:
            bound.warning("gemini_refused", status=error.code, reason=error.status)
            return FallbackReason.error
        except httpx.HTTPError as error:
            bound.warning("gemini_unreachable", error=type(error).__name__)
            return FallbackReason.error
        except ValueError as error:
            bound.warning("gemini_unreadable", error=type(error).__name__)
            return FallbackReason.malformed
        try:
            return Suggestion.model_validate_json(response.text or "")
        except ValidationError as error:
            bound.warning("gemini_malformed", errors=error.error_count())
            return FallbackReason.malformed
