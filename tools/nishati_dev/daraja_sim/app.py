"""The simulator as a FastAPI app: Daraja's paths, and ``/simulator/...`` to steer and inspect it.

Every Daraja API call passes the gateway in Daraja's order: spike arrest, then the bearer
token, then ``Content-Type: application/json``, then the body's fields.

Control and inspection (no token needed):

- ``GET /simulator/health``
- ``POST /simulator/scenario`` (a ``ScenarioRule``), ``GET`` and ``DELETE`` the same path
- ``POST /simulator/faults`` (a ``FaultRule``: a reply that is not Daraja's, a slow one, or a
  lost one after processing), ``GET`` and ``DELETE`` the same path
- ``PATCH /simulator/settings``: delays, token lifetime and rules (``single_token``,
  ``invalid_token_code``), spike arrest, STK Query's pending reply, B2C result ids
- ``GET /simulator/requests?path=...``: every Daraja call with its reply
- ``GET /simulator/callbacks?kind=...&reference=...``: delivered, failed and dropped callbacks
- ``GET /simulator/transactions``: STK payments, payouts, reversals, held callbacks, work
  waiting for its time, the B2C utility account
- ``POST /simulator/release``: send the callbacks ``reorder`` is holding back
- ``POST /simulator/tokens/expire``: every token issued so far stops working
- ``POST /simulator/reset``: forget everything but the tokens, and undo settings changes
- ``GET /simulator/certificate``: the PEM to seal the initiator password to

Everything above is kept in the books (``store``), so a restart on the same ``database`` finds it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from nishati_dev.daraja_sim.engine import DeliveryRecord, FaultRule, RequestRecord, Simulator
from nishati_dev.daraja_sim.fields import INVALID_GRANT, DarajaError, invalid
from nishati_dev.daraja_sim.scenarios import ScenarioRule
from nishati_dev.daraja_sim.settings import DarajaSimSettings

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, str]] | dict[str, str]]


class Rules(BaseModel):
    rules: list[ScenarioRule]


class SettingsChange(BaseModel):
    """The settings that may change while the simulator runs; unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    token_lifetime_secs: float | None = Field(default=None, gt=0)
    callback_delay_secs: float | None = Field(default=None, ge=0)
    long_delay_secs: float | None = Field(default=None, ge=0)
    duplicate_gap_secs: float | None = Field(default=None, ge=0)
    same_amount_window_secs: float | None = Field(default=None, ge=0)
    rate_limit_per_sec: int | None = Field(default=None, ge=1, description="null: off")
    block_callback_words: bool | None = None
    callback_amount_as_float: bool | None = None
    stk_query_pending: Literal["500.001.1001", "4999"] | None = None
    b2c_result_ids: Literal["ours", "daraja"] | None = None
    single_token: bool | None = None
    invalid_token_code: str | None = Field(
        default=None,
        pattern=r"^[0-9]{3}\.[0-9]{3}(\.[0-9]{2,4})?$",
        description="null: each API's documented code",
    )


NULLABLE_SETTINGS = ("rate_limit_per_sec", "invalid_token_code")


class Faults(BaseModel):
    faults: list[FaultRule]


class Count(BaseModel):
    count: int


class Transactions(BaseModel):
    stk: list[dict[str, Any]]
    payouts: list[dict[str, Any]]
    reversals: list[dict[str, Any]]
    held: list[dict[str, Any]]
    pending_work: list[dict[str, Any]]
    tokens: int
    funds: int


def create_app(settings: DarajaSimSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        simulator = Simulator(settings)
        app.state.simulator = simulator
        simulator.resume()  # the work its books hold from before a restart
        try:
            yield
        finally:
            await simulator.close()

    app = FastAPI(title="Nishati Daraja simulator", version="0.1.0", lifespan=lifespan)

    def sim(request: Request) -> Simulator:
        found: Simulator = request.app.state.simulator
        return found

    async def body_of(request: Request) -> tuple[dict[str, Any] | None, Any]:
        """The JSON object, or None; and what to record (the text when it is not JSON)."""
        raw = await request.body()
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None, raw.decode("utf-8", "replace")
        return (parsed if isinstance(parsed, dict) else None), parsed

    async def faulty(s: Simulator, path: str, fault: FaultRule, recorded: Any) -> Response:
        """The fault's reply, after its delay (a client's read timeout if it is long)."""
        await asyncio.sleep(fault.delay_secs)
        s.record_request(
            "POST" if path != "/oauth/v1/generate" else "GET",
            path,
            recorded,
            fault.status,
            {"fault": fault.body[:200]},
        )
        return Response(
            fault.body,
            status_code=fault.status,
            media_type=fault.content_type,
            headers=fault.headers,
        )

    async def api(request: Request, handler: Handler) -> Response:
        s = sim(request)
        path = request.url.path
        body, recorded = await body_of(request)
        fault = s.take_fault(path)
        if fault is not None and not fault.after_processing:
            return await faulty(s, path, fault, recorded)
        status = 200
        try:
            s.spike_arrest()
            s.check_token(request.headers.get("authorization"), path)
            content_type = request.headers.get("content-type", "")
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                raise invalid("Content-Type")
            if body is None:
                raise DarajaError("400.002.02", "Bad Request - Invalid JSON")
            result = handler(body)
            reply: dict[str, str] = result if isinstance(result, dict) else await result
        except DarajaError as e:
            status, reply = e.http_status, e.body()
        s.record_request(request.method, path, recorded, status, reply)
        if fault is not None:
            return await faulty(s, path, fault, recorded)
        return JSONResponse(reply, status_code=status)

    @app.get("/oauth/v1/generate", response_model=None)
    async def generate(request: Request) -> Response:
        """A token for HTTP Basic ``consumer_key:consumer_secret``."""
        s = sim(request)
        fault = s.take_fault(request.url.path)
        if fault is not None and not fault.after_processing:
            return await faulty(s, request.url.path, fault, None)
        status = 200
        reply: dict[str, str]
        try:
            s.spike_arrest()
            if request.query_params.get("grant_type") != "client_credentials":
                raise DarajaError(INVALID_GRANT, "Invalid grant type passed")
            reply = s.issue_token(request.headers.get("authorization"))
        except DarajaError as e:
            status, reply = e.http_status, e.body()
        recorded = reply if status != 200 else {"expires_in": reply["expires_in"]}
        s.record_request(request.method, request.url.path, None, status, recorded)
        if fault is not None:
            return await faulty(s, request.url.path, fault, None)
        return JSONResponse(reply, status_code=status)

    @app.post("/mpesa/stkpush/v1/processrequest", response_model=None)
    async def stk_push(request: Request) -> Response:
        return await api(request, sim(request).stk_push)

    @app.post("/mpesa/stkpushquery/v1/query", response_model=None)
    async def stk_query(request: Request) -> Response:
        return await api(request, sim(request).stk_query)

    @app.post("/mpesa/b2c/v3/paymentrequest", response_model=None)
    async def b2c(request: Request) -> Response:
        return await api(request, sim(request).b2c)

    @app.post("/mpesa/transactionstatus/v1/query", response_model=None)
    async def transaction_status(request: Request) -> Response:
        return await api(request, sim(request).transaction_status)

    @app.post("/mpesa/reversal/v1/request", response_model=None)
    async def reversal(request: Request) -> Response:
        return await api(request, sim(request).reversal)

    # --- control and inspection ---------------------------------------------------------------

    @app.get("/simulator/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/simulator/scenario")
    async def add_rule(request: Request, rule: ScenarioRule) -> Rules:
        """Adds a rule; see ``nishati_dev.daraja_sim.scenarios`` for how rules are matched."""
        s = sim(request)
        s.scenarios.add(rule)
        return Rules(rules=s.scenarios.rules())

    @app.get("/simulator/scenario")
    async def rules(request: Request) -> Rules:
        return Rules(rules=sim(request).scenarios.rules())

    @app.delete("/simulator/scenario")
    async def clear_rules(request: Request) -> Rules:
        s = sim(request)
        s.scenarios.clear()
        return Rules(rules=[])

    @app.post("/simulator/faults")
    async def add_fault(request: Request, fault: FaultRule) -> Faults:
        """Adds a fault: the next ``count`` calls to ``path`` get this reply instead."""
        return Faults(faults=sim(request).add_fault(fault))

    @app.get("/simulator/faults")
    async def faults(request: Request) -> Faults:
        return Faults(faults=sim(request).faults)

    @app.delete("/simulator/faults")
    async def clear_faults(request: Request) -> Faults:
        sim(request).clear_faults()
        return Faults(faults=[])

    @app.get("/simulator/requests")
    async def requests(request: Request, path: str | None = None) -> list[RequestRecord]:
        return [r for r in sim(request).state.requests if path is None or r.path == path]

    @app.get("/simulator/callbacks")
    async def callbacks(
        request: Request, kind: str | None = None, reference: str | None = None
    ) -> list[DeliveryRecord]:
        return [
            d
            for d in sim(request).state.deliveries
            if (kind is None or d.kind == kind) and (reference is None or d.reference == reference)
        ]

    @app.get("/simulator/transactions")
    async def transactions(request: Request) -> Transactions:
        return Transactions.model_validate(sim(request).transactions())

    @app.patch("/simulator/settings")
    async def change_settings(request: Request, change: SettingsChange) -> dict[str, Any]:
        """Changes timing and gateway settings; ``/simulator/reset`` puts them back. Only the
        fields sent change (``"rate_limit_per_sec": null`` turns spike arrest off)."""
        changes = {
            k: v
            for k, v in change.model_dump(exclude_unset=True).items()
            if v is not None or k in NULLABLE_SETTINGS
        }
        changed = sim(request).change_settings(changes)
        return changed.model_dump(mode="json", include=set(SettingsChange.model_fields))

    @app.post("/simulator/release")
    async def release(request: Request) -> Count:
        """Sends every callback ``reorder`` is holding back."""
        return Count(count=await sim(request).release())

    @app.post("/simulator/tokens/expire")
    async def expire_tokens(request: Request) -> Count:
        return Count(count=sim(request).expire_tokens())

    @app.post("/simulator/reset")
    async def reset(request: Request) -> dict[str, str]:
        """Forgets payments, payouts, records, rules and held callbacks; tokens stay valid."""
        sim(request).reset()
        return {"status": "reset"}

    @app.get("/simulator/certificate")
    async def certificate() -> PlainTextResponse:
        """The certificate to seal the initiator password to (PEM)."""
        return PlainTextResponse(settings.certificate_path.read_text())

    return app
