"""What operators and Prometheus poll: liveness, readiness and the metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from nishati_client.chain import check_program_deployed
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import (
    STORAGE_UNAVAILABLE,
    HttpReason,
    error_response,
    responses,
)

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answers while the process serves."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=dict[str, str],
    responses=responses({503: "NotReady: what is down, then each check as at 200"}),
)
async def readyz(services: ServicesDep) -> Response:
    """Ready when the database, the chain and (if enabled) the broker and Daraja answer: each
    check is ``ok`` or ``down: <why>``. Daraja's is what the oracle's last exchange with it came
    to (a probe of it starts in the background, now and then, while that was a failure)."""
    checks: dict[str, str] = {}
    try:
        await services.store.ping()
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"down: {type(e).__name__}"
    try:
        await check_program_deployed(services.chain, services.client.program.program_id)
        checks["chain"] = "ok"
    except Exception as e:
        checks["chain"] = f"down: {type(e).__name__}"
    if services.mqtt is not None:
        checks["broker"] = "ok" if services.mqtt.connected else "down"
    if services.trading is not None:
        checks["daraja"] = services.trading.gateway.readiness()
    down = [f"{name} {state}" for name, state in checks.items() if state != "ok"]
    if down:
        return error_response(503, HttpReason.NotReady, "; ".join(down), checks)
    return JSONResponse(checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **responses({503: STORAGE_UNAVAILABLE}),
    },
)
async def metrics(services: ServicesDep) -> Response:
    services.metrics.queue_depth.set(await services.store.unattested_count())
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
