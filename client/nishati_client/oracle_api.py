"""The oracle's HTTP API for a household's owner or installer: its PV system, forecast, skill,
advice and auto-sell, every request signed (:mod:`nishati_client.signing`) with the caller's
keypair. Answers are the oracle's JSON (integers: Wh, KES cents, Unix seconds); a refusal is
an :class:`OracleRefused` carrying the oracle's ``reason`` and ``detail``."""

from __future__ import annotations

from typing import Any

import httpx
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.errors import NishatiClientError
from nishati_client.signing import SignedRequests

TIMEOUT_SECS = 30.0


class OracleRefused(NishatiClientError):
    """The oracle answered with an error: ``reason`` is its machine name (NotYourHousehold,
    InvalidPvSystem, ...), ``detail`` its text for people."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"the oracle refused ({status} {reason}): {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


class OracleUnreachable(NishatiClientError):
    """No oracle answered at the URL."""


class OracleApi:
    """The oracle at ``base_url``, as ``keypair`` signs."""

    def __init__(
        self, base_url: str, keypair: Keypair, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=SignedRequests(keypair),
            timeout=TIMEOUT_SECS,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            answer = await self._http.request(method, path, json=body)
        except httpx.TransportError as error:
            raise OracleUnreachable(f"no oracle answers at {self.base_url} ({error})") from None
        if answer.is_success:
            return answer.json()
        try:
            refusal = answer.json()
            reason, detail = str(refusal["reason"]), str(refusal["detail"])
        except (ValueError, KeyError, TypeError):
            reason, detail = answer.reason_phrase, answer.text[:200]
        raise OracleRefused(answer.status_code, reason, detail)

    @staticmethod
    def _household(household: Pubkey, route: str) -> str:
        return f"/api/v1/households/{household}/{route}"

    async def pv_system(self, household: Pubkey) -> dict[str, Any]:
        """The stored system, or the defaults (``defaults: true``)."""
        found: dict[str, Any] = await self._call("GET", self._household(household, "pv-system"))
        return found

    async def set_pv_system(self, household: Pubkey, system: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "PUT", self._household(household, "pv-system"), system
        )
        return found

    async def forecast(self, household: Pubkey) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", self._household(household, "forecast"))
        return found

    async def skill(self, household: Pubkey | None) -> dict[str, Any]:
        """One household's forecast skill, or the market's (``None``)."""
        path = (
            "/api/v1/forecast/skill" if household is None else self._household(household, "skill")
        )
        found: dict[str, Any] = await self._call("GET", path)
        return found

    async def advice(self, household: Pubkey) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", self._household(household, "advice"))
        return found

    async def auto_sell(self, household: Pubkey) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", self._household(household, "auto-sell"))
        return found

    async def set_auto_sell(
        self,
        household: Pubkey,
        floor_price_cents_per_kwh: int,
        share_percent: int,
        max_wh_per_offer: int,
    ) -> dict[str, Any]:
        body = {
            "floor_price_cents_per_kwh": floor_price_cents_per_kwh,
            "share_percent": share_percent,
            "max_wh_per_offer": max_wh_per_offer,
        }
        found: dict[str, Any] = await self._call(
            "PUT", self._household(household, "auto-sell"), body
        )
        return found

    async def stop_auto_sell(self, household: Pubkey) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("DELETE", self._household(household, "auto-sell"))
        return found

    async def auto_sell_offers(self, household: Pubkey) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call(
            "GET", self._household(household, "auto-sell/offers")
        )
        return found
