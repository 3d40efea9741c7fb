"""The oracle service: FastAPI under uvicorn.

Long-lived clients (database, chain, MQTT) are made in the lifespan and kept on ``app.state``;
readings come in over HTTP and MQTT into one pipeline, and the batcher attests them.
"""

from __future__ import annotations

import asyncio
import binascii
import gc
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from solders.pubkey import Pubkey
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from nishati_client.chain import LiteSvmChain, RpcChain, check_program_deployed
from nishati_client.keys import load_keypair
from nishati_client.program import NishatiClient
from nishati_client.readings import READING_LEN
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.runtime import RuntimeWatch
from nishati_oracle.core.settings import OracleSettings, Payments
from nishati_oracle.readings.batcher import Attester
from nishati_oracle.readings.clock import ChainClock
from nishati_oracle.readings.ingest import READINGS_PATH, Outcome, Reason, Status, Submission
from nishati_oracle.readings.mqtt import BatchReport, MqttIngest
from nishati_oracle.readings.pipeline import ReadingPipeline
from nishati_oracle.readings.registry import MeterRegistry
from nishati_oracle.readings.store import Store
from nishati_oracle.trading.api import Trading
from nishati_oracle.trading.api import router as trading_router
from nishati_oracle.trading.desk import Refusal
from nishati_oracle.trading.wiring import build_trading

log = structlog.get_logger()


class SignedReadingIn(BaseModel):
    """One reading as a meter sent it."""

    # Room for a message of the wrong length (a version 1 one) to be refused by its reason.
    message: Annotated[
        str, Field(description=f"The {READING_LEN} signed bytes, hex", max_length=4 * READING_LEN)
    ]
    signature: Annotated[str, Field(description="Ed25519 signature, hex", max_length=128)]
    meter: Annotated[str, Field(description="The meter's public key, base58", max_length=44)]


class ReadingBatchIn(BaseModel):
    readings: Annotated[list[SignedReadingIn], Field(min_length=1)]


class OutcomeOut(BaseModel):
    status: Status
    reason: Reason | None = None
    counter: int | None = None
    detail: str | None = None


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[OutcomeOut]


@dataclass
class Services:
    """What the lifespan builds and the routes use."""

    settings: OracleSettings
    store: Store
    chain: RpcChain | LiteSvmChain
    client: NishatiClient
    pipeline: ReadingPipeline
    attester: Attester
    metrics: Metrics
    mqtt_connected: Callable[[], bool] | None = None


def _submission(item: SignedReadingIn) -> Submission | Outcome:
    try:
        return Submission(
            bytes.fromhex(item.message),
            bytes.fromhex(item.signature),
            Pubkey.from_string(item.meter),
        )
    except (ValueError, binascii.Error) as e:
        return Outcome(Status.rejected, Reason.MalformedSubmission, None, str(e))


def _ingest_answer(outcomes: list[Outcome]) -> tuple[int, bytes]:
    """:class:`IngestOut` as JSON, written directly: a model per reading, validated again on
    the way out, costs more than the rest of a one-reading request's answer."""
    counts = Counter(o.status for o in outcomes)
    body = {
        "accepted": counts[Status.accepted],
        "duplicates": counts[Status.duplicate],
        "rejected": counts[Status.rejected],
        "results": [
            {
                "status": o.status.value,
                "reason": None if o.reason is None else o.reason.value,
                "counter": o.counter,
                "detail": o.detail,
            }
            for o in outcomes
        ],
    }
    status = 422 if counts[Status.rejected] == len(outcomes) else 200
    return status, _json(body)


def _json(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _refusal(status: int, reason: str, detail: str) -> tuple[int, bytes]:
    return status, _json({"reason": reason, "detail": detail})


# A reading's JSON is under 400 bytes at its fields' length limits; the rest is whitespace room.
READING_BODY_BYTES = 1_024
_readings_body: TypeAdapter[ReadingBatchIn | SignedReadingIn] = TypeAdapter(
    ReadingBatchIn | SignedReadingIn
)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None once it passes ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def post_readings(s: Services, receive: Receive) -> tuple[int, bytes]:
    """One reading, or a batch ``{"readings": [...]}``: each is verified and stored before
    the answer; all refused is a 422, with the reason of each."""
    limit = s.settings.readings.max_batch_readings
    too_large = f"at most {limit} readings"
    body = await _read_body(receive, (limit + 1) * READING_BODY_BYTES)
    if body is None:
        return _refusal(413, "BatchTooLarge", too_large)
    try:
        posted = _readings_body.validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)[:3]
        return _refusal(400, Reason.MalformedSubmission, str(errors))
    items = posted.readings if isinstance(posted, ReadingBatchIn) else [posted]
    if len(items) > limit:
        return _refusal(413, "BatchTooLarge", too_large)
    s.metrics.received.labels("http").inc(len(items))
    parsed = [_submission(item) for item in items]
    submissions = [p for p in parsed if isinstance(p, Submission)]
    stored = iter(await s.pipeline.submit(submissions) if submissions else [])
    outcomes = [p if isinstance(p, Outcome) else next(stored) for p in parsed]
    # The pipeline counts what it refuses; these never reached it.
    for p in parsed:
        if isinstance(p, Outcome):
            s.metrics.rejected.labels(str(p.reason)).inc()
    return _ingest_answer(outcomes)


class ReadingsRoute:
    """``POST /api/v1/readings``, served as ASGI middleware beneath FastAPI's routing: for one
    reading, FastAPI's routing, dependencies and body validation took three times the CPU of
    this (165 µs against 54 µs a request, stubbed pipeline), about what verifying it costs.
    Every other request passes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != READINGS_PATH:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json")]
        if scope["method"] == "POST":
            services: Services = scope["app"].state.services
            try:
                status, content = await post_readings(services, receive)
            except ClientDisconnect:
                return
        else:
            status, content = 405, _json({"detail": "Method Not Allowed"})
            headers.append((b"allow", b"POST"))
        headers.append((b"content-length", b"%d" % len(content)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _document_readings(app: FastAPI) -> None:
    """Puts :class:`ReadingsRoute` in the app's OpenAPI schema, from the same models."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        ref = "#/components/schemas/{model}"
        body = _readings_body.json_schema(ref_template=ref)
        out = IngestOut.model_json_schema(ref_template=ref, mode="serialization")
        models = schema.setdefault("components", {}).setdefault("schemas", {})
        models |= body.pop("$defs") | out.pop("$defs") | {"IngestOut": out}
        answer = {"application/json": {"schema": {"$ref": ref.format(model="IngestOut")}}}
        schema["paths"][READINGS_PATH] = {
            "post": {
                "summary": "Post readings",
                "description": post_readings.__doc__,
                "operationId": "post_readings",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "200": {
                        "description": "Verified and stored; any refused say why",
                        "content": answer,
                    },
                    "400": {"description": "Not JSON of this shape (MalformedSubmission)"},
                    "413": {"description": "More readings than the batch limit (BatchTooLarge)"},
                    "422": {
                        "description": "Every reading refused, each with its reason",
                        "content": answer,
                    },
                },
            }
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: OracleSettings, chain: RpcChain | LiteSvmChain | None = None) -> FastAPI:
    """The app; tests pass a LiteSVM chain, the service an RPC one made from the settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.market is None or settings.oracle_keypair is None:
            raise RuntimeError("set NISHATI_MARKET and NISHATI_ORACLE_KEYPAIR")
        program_id = Pubkey.from_string(settings.chain.program_id)
        market = Pubkey.from_string(settings.market)
        oracle = load_keypair(settings.oracle_keypair)
        node = chain or RpcChain(settings.chain.rpc_url, program_id, settings.chain.commitment)
        await check_program_deployed(node, program_id)
        metrics = Metrics()
        store = await Store.open(
            settings.storage.database_url, metrics, settings.storage.slow_log_secs
        )
        client = NishatiClient(node, program_id)
        registry = MeterRegistry(client, market, settings.readings.meter_cache_secs)
        clock = ChainClock(node)
        pipeline = ReadingPipeline(settings, market, store, registry, metrics, clock)
        attester = Attester(settings, store, client, oracle, market, node.policy, metrics)
        services = Services(settings, store, node, client, pipeline, attester, metrics)
        app.state.services = services
        mqtt: MqttIngest | None = None
        if settings.mqtt.enabled:

            def observe(report: BatchReport) -> None:
                metrics.received.labels("mqtt").inc(report.received)

            mqtt = MqttIngest(settings, pipeline, observe=observe)
            await mqtt.start()
            services.mqtt_connected = lambda: mqtt is not None and mqtt.connected
        stop = asyncio.Event()
        batcher = asyncio.create_task(attester.run(stop))
        trading: Trading | None = None
        payments: asyncio.Task[None] | None = None
        if settings.payments.provider is not Payments.disabled:
            trading = build_trading(settings, store, client, oracle, market, metrics)
            app.state.trading = trading
            payments = asyncio.create_task(trading.worker.run(stop))
        # What startup made lives as long as the app: frozen, a full collection no longer walks
        # it (~200 ms with the chain, database and web libraries loaded: a stall of every answer).
        gc.freeze()
        watch = RuntimeWatch(metrics)
        watch.start()
        log.info("oracle started", market=str(market), oracle=str(oracle.pubkey()))
        try:
            yield
        finally:
            if mqtt is not None:
                await mqtt.stop()
            stop.set()
            await batcher
            if trading is not None and payments is not None:
                await payments
                await trading.close()
            await watch.close()
            await clock.close()
            await registry.close()
            await store.close()
            if isinstance(node, RpcChain) and chain is None:
                await node.close()
            log.info("oracle stopped")

    app = FastAPI(title="Nishati oracle", version="0.1.0", lifespan=lifespan)

    def services(request: Request) -> Services:
        found: Services = request.app.state.services
        return found

    def trading(request: Request) -> Trading:
        found: Trading | None = getattr(request.app.state, "trading", None)
        if found is None:
            raise HTTPException(
                503, {"reason": Refusal.PaymentsDisabled, "detail": "set NISHATI_PAYMENTS"}
            )
        return found

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"reason": Reason.MalformedSubmission, "detail": str(error.errors()[:3])},
            status_code=400,
        )

    @app.post("/api/v1/meters/{meter}/attest", status_code=202)
    async def attest_now(request: Request, meter: str) -> dict[str, str]:
        """Attests this meter's latest reading at once (a household about to sell)."""
        try:
            key = Pubkey.from_string(meter)
        except ValueError:
            raise HTTPException(400, {"reason": Reason.MalformedSubmission}) from None
        services(request).attester.request(key)
        return {"status": "queued"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the database, the chain and (if enabled) the broker answer."""
        s = services(request)
        checks: dict[str, str] = {}
        try:
            await s.store.ping()
            checks["database"] = "ok"
        except Exception as e:
            checks["database"] = f"down: {type(e).__name__}"
        try:
            await check_program_deployed(s.chain, s.client.program.program_id)
            checks["chain"] = "ok"
        except Exception as e:
            checks["chain"] = f"down: {type(e).__name__}"
        if s.settings.mqtt.enabled:
            checks["broker"] = "ok" if s.mqtt_connected and s.mqtt_connected() else "down"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(checks, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        s = services(request)
        s.metrics.queue_depth.set(await s.store.unattested_count())
        return Response(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(trading_router(trading))
    app.add_middleware(ReadingsRoute)
    _document_readings(app)
    return app
