"""Readings over HTTP: ``POST /api/v1/readings`` (one reading or a batch), a meter's stored
readings and where each stands with the chain, and asking for a meter's readings to be
attested at once.

The readings route is the oracle's busiest, so it is served beneath FastAPI's routing
(:class:`ReadingsRoute`) and documented into the app's OpenAPI schema from the same models
(:func:`document_readings`); its errors are in the app's one shape (``http.errors``).
"""

from __future__ import annotations

import binascii
import json
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from solders.pubkey import Pubkey
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from nishati_client.readings import READING_LEN
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import (
    MALFORMED,
    STORAGE_UNAVAILABLE,
    ErrorOut,
    HttpReason,
    describe,
    error_body,
    responses,
)
from nishati_oracle.readings.batcher import Hold
from nishati_oracle.readings.ingest import READINGS_PATH, Outcome, Reason, Status, Submission
from nishati_oracle.readings.store import ReadingRow
from nishati_oracle.services import Services


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


def _submission(item: SignedReadingIn) -> Submission | Outcome:
    try:
        return Submission(
            bytes.fromhex(item.message),
            bytes.fromhex(item.signature),
            Pubkey.from_string(item.meter),
        )
    except (ValueError, binascii.Error) as e:
        return Outcome(Status.rejected, Reason.MalformedSubmission, None, str(e))


# The reason of a 422 whose readings were refused for different reasons.
READINGS_REFUSED = "ReadingsRefused"


def _ingest_answer(outcomes: list[Outcome]) -> tuple[int, bytes]:
    """:class:`IngestOut` as JSON, written directly: a model per reading, validated again on
    the way out, costs more than the rest of a one-reading request's answer. With every
    reading refused it is a 422, which is also in the error shape: ``reason`` theirs if they
    share one, else ReadingsRefused."""
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
    if counts[Status.rejected] == len(outcomes):
        reasons = {str(o.reason) for o in outcomes}
        reason = reasons.pop() if len(reasons) == 1 else READINGS_REFUSED
        detail = f"all {len(outcomes)} refused; each reading's reason is in results"
        return 422, _json({"reason": reason, "detail": detail, **body})
    return 200, _json(body)


def _json(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


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
        return 413, error_body("BatchTooLarge", too_large)
    try:
        posted = _readings_body.validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False, include_context=False)
        return 400, error_body(Reason.MalformedSubmission, describe(errors))
    items = posted.readings if isinstance(posted, ReadingBatchIn) else [posted]
    if len(items) > limit:
        return 413, error_body("BatchTooLarge", too_large)
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
            status = 405
            content = error_body(HttpReason.MethodNotAllowed, "this route takes POST")
            headers.append((b"allow", b"POST"))
        headers.append((b"content-length", b"%d" % len(content)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def document_readings(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds :class:`ReadingsRoute` to the app's OpenAPI ``schema``, from the same models."""
    ref = "#/components/schemas/{model}"
    body = _readings_body.json_schema(ref_template=ref)
    out = IngestOut.model_json_schema(ref_template=ref, mode="serialization")
    models = schema.setdefault("components", {}).setdefault("schemas", {})
    models |= body.pop("$defs") | out.pop("$defs") | {"IngestOut": out}
    models[ErrorOut.__name__] = ErrorOut.model_json_schema(ref_template=ref)
    out_ref = {"$ref": ref.format(model="IngestOut")}
    error_ref = {"$ref": ref.format(model=ErrorOut.__name__)}
    answer = {"application/json": {"schema": out_ref}}
    error = {"application/json": {"schema": error_ref}}
    schema["paths"][READINGS_PATH] = {
        "post": {
            "tags": ["readings"],
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
                "400": {"description": MALFORMED[400], "content": error},
                "413": {
                    "description": "More readings than the batch limit (BatchTooLarge)",
                    "content": error,
                },
                "422": {
                    "description": "Every reading refused, each with its reason; the error "
                    f"shape's reason is theirs if they share one, else {READINGS_REFUSED}",
                    "content": {"application/json": {"schema": {"allOf": [error_ref, out_ref]}}},
                },
                "503": {"description": STORAGE_UNAVAILABLE, "content": error},
            },
        }
    }
    return schema


router = APIRouter(tags=["readings"])


class ReadingStatus(StrEnum):
    """Where a stored reading stands with the chain."""

    # Waiting for the batcher: attested with the meter's latest reading (readings are
    # cumulative). ``reason``: why it is held back now, or why the chain last refused it.
    pending = "pending"
    # The chain holds it (or a later reading of the meter that covers it).
    attested = "attested"
    # The chain will never take it: ``reason`` is the program's error, or MeterReplaced.
    refused = "refused"


class ReadingOut(BaseModel):
    counter: int
    timestamp: int
    exported_wh: int
    imported_wh: int
    received_at: float
    status: ReadingStatus
    reason: str | None = Field(description="The program's error it meets (see status)")
    attested_at: float | None
    attest_signature: str | None = Field(description="The attestation's transaction")


class HoldOut(BaseModel):
    reason: str = Field(description="The program's error the chain would refuse it with now")
    until: int | None = Field(description="The chain time it may pass at, if known")
    detail: str


class MeterReadingsOut(BaseModel):
    meter: str
    held: HoldOut | None = Field(description="Why the batcher holds the meter's latest back")
    readings: list[ReadingOut]


def _reading_out(row: ReadingRow, hold: Hold | None) -> ReadingOut:
    if row.attested_at is None:
        status = ReadingStatus.pending
        reason = hold.reason if hold is not None else row.refused
    elif row.refused is not None:
        status, reason = ReadingStatus.refused, row.refused
    else:
        status, reason = ReadingStatus.attested, None
    return ReadingOut(
        counter=row.counter,
        timestamp=row.timestamp,
        exported_wh=row.exported_wh,
        imported_wh=row.imported_wh,
        received_at=row.received_at,
        status=status,
        reason=reason,
        attested_at=None if status is ReadingStatus.pending else row.attested_at,
        attest_signature=row.attest_signature,
    )


@router.get(
    "/api/v1/meters/{meter}/readings",
    response_model=MeterReadingsOut,
    responses=responses(
        {
            400: "MalformedSubmission: the meter is not a base58 address",
            503: STORAGE_UNAVAILABLE,
        }
    ),
)
async def meter_readings(
    services: ServicesDep,
    meter: str,
    limit: Annotated[int, Query(ge=1, le=500, description="Readings to list")] = 50,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Only counters below this")
    ] = None,
) -> MeterReadingsOut:
    """The meter's stored readings, newest first, each with where it stands with the chain:
    pending (and why it is held back, if it is), attested, or refused with the program's
    error. A reading the chain refused is kept, never dropped."""
    try:
        key = Pubkey.from_string(meter)
    except ValueError:
        raise HTTPException(400, "the meter is not a base58 address") from None
    hold = services.attester.holds.get(str(key))
    rows = await services.store.readings_of(str(key), limit, before)
    return MeterReadingsOut(
        meter=str(key),
        held=None
        if hold is None
        else HoldOut(reason=hold.reason, until=hold.until, detail=hold.detail),
        readings=[_reading_out(row, hold) for row in rows],
    )


@router.post(
    "/api/v1/meters/{meter}/attest",
    status_code=202,
    responses=responses(
        {
            400: "MalformedSubmission: the meter is not a base58 address",
            503: STORAGE_UNAVAILABLE,
        }
    ),
)
async def attest_now(services: ServicesDep, meter: str) -> dict[str, str]:
    """Attests this meter's latest reading at the next round (a household about to sell), by
    whichever replica attests the market now."""
    try:
        key = Pubkey.from_string(meter)
    except ValueError:
        raise HTTPException(400, "the meter is not a base58 address") from None
    await services.attester.request(key)
    return {"status": "queued"}
