"""What the forecast routes and auto-sell take from the forecast service and the advisor: two
small interfaces (:class:`Forecasts`, :class:`Advisor`), so the routes and the worker need
neither's insides."""

from __future__ import annotations

from typing import Protocol

from nishati_oracle.forecast.advice import Advice
from nishati_oracle.forecast.store import Outlook, Skill


class Forecasts(Protocol):
    """The forecast service (``forecast.service``)."""

    async def outlook(self, household: str) -> Outlook | None: ...

    async def skill(self, household: str | None = None) -> Skill: ...


class Advisor(Protocol):
    """A household's advice (``forecast.advising``); ``None`` before its first forecast.
    ``returning_wh``: energy an offer about to be withdrawn will give back, counted as held."""

    async def advise(self, household: str, returning_wh: int = 0) -> Advice | None: ...
