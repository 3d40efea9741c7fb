"""The oracle app on LiteSVM for the forecast routes: who may call them (owners, installers,
the operator, signed or not), its forecasts on (their weather a loopback port that refuses:
the clear-sky fallback), a home with a forecast, and a stand-in advisor whose advice a test
decides (for auto-sell's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr
from solders.keypair import Keypair

from nishati_client.signing import SignedRequests
from nishati_dev.sandbox import Member
from nishati_oracle.core.settings import ForecastSettings, PaymentSettings
from nishati_oracle.forecast.advice import Action, Advice, AdvisorName, SellAdvice
from tests.harness.oracle import OracleWorld

OPERATOR_TOKEN = "test-operator-token-forecasts-0123456789"  # noqa: S105 (a test value)
ORACLE_SETTINGS: dict[str, Any] = {
    "payments": PaymentSettings(operator_token=SecretStr(OPERATOR_TOKEN)),
    # Rounds only when a test asks for one.
    "forecast": ForecastSettings(enabled=True, round_secs=86_400),
}


def as_operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def signed(keypair: Keypair, clock: Callable[[], float] = time.time) -> SignedRequests:
    return SignedRequests(keypair, clock)


async def call(
    world: OracleWorld,
    method: str,
    path: str,
    by: Keypair | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The route as ``by`` signs it (nobody's when ``None``)."""
    auth = None if by is None else signed(by)
    return await world.http.request(method, path, json=body, auth=auth, headers=headers)


async def forecast_for(world: OracleWorld, home: Member) -> None:
    """A reading from the home's meter (so the forecasts know it), then a round."""
    # The oracle's view of the chain's clock, which the test may have moved on (a mint).
    now = await world.services.pipeline.chain_clock.fresh()
    answer = await world.post(home.meter.read(now))
    assert answer.status_code == 200, answer.text
    service = world.services.forecast
    assert service is not None
    await service.round()


@dataclass
class StandInAdvisor:
    """Advises every household to sell what ``sell`` says (to hold when ``None``), and records
    what it was asked."""

    sell: SellAdvice | None = None
    asked: list[tuple[str, int]] = field(default_factory=list)

    async def advise(self, household: str, returning_wh: int = 0) -> Advice:
        self.asked.append((household, returning_wh))
        return Advice(
            action=Action.hold if self.sell is None else Action.sell,
            sell=self.sell,
            explanation_en="Sell your midday surplus.",
            explanation_sw="Uza ziada yako ya mchana.",
            household=household,
            made_at=int(time.time()),
            advisor=AdvisorName.rules,
        )
