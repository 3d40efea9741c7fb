"""One error shape for every route, and the one place errors become HTTP answers.

Every answer that is not a success is ``{"reason": "MachineName", "detail": "human text"}``
(:class:`ErrorOut`), and one that stored a trade also names it (``trade_id``). ``reason`` is
stable for programs to branch on: a refusal's (``trading.desk.Refusal``), a reading's
(``readings.ingest.Reason``) or one of :class:`HttpReason` for what the HTTP layer refuses
itself. ``detail`` is for people; it never repeats the request (neither a body nor a phone
number) and is at most :data:`DETAIL_CHARS` long, so an error answer stays small whatever was
sent.

The statuses:

- 400 not of the route's shape: not JSON, wrong types, nested too deeply (MalformedSubmission)
- 401 who is asking is not known (NotSignedIn, BadSignature, StaleSignature, ReplayedSignature,
  OperatorTokenRefused, ApiKeyRefused: ``http.auth``; ``WWW-Authenticate`` says how to sign
  in), or could not sign in (CodeRejected, PasswordRejected: ``accounts``)
- 403 not allowed (CallbackForbidden, OperatorForbidden; NotYourHousehold, NotInThisMarket,
  OperatorsOnly; CsrfTokenMissing, CsrfTokenMismatch: a change made with a session without its
  CSRF token)
- 404 no such route (NotFound) or no such thing (UnknownTrade, UnknownOffer, ...)
- 405 the route takes other methods (MethodNotAllowed; ``Allow`` lists them)
- 409 refused by the state of things (NotEnoughEnergy, OfferClosed, ...; AccountNotFound: an
  account the request needs, a household the directory named, is no longer on chain;
  AccountTypeMismatch: the account at that address is not the program's, or of another type)
- 413 the body is over its route's cap (BodyTooLarge; BatchTooLarge for readings)
- 422 well-formed but refused by a rule (InvalidPhone, PriceOutOfBounds, ...)
- 429 too many for now (TooManyCallbacks; TooManySignInRequests, SignInLocked: ``Retry-After``
  says when to try again)
- 500 a fault of the oracle's, logged once with its route and traceback (InternalError)
- 502 a service the oracle relies on refused (PaymentRequestRefused)
- 503 a service the oracle needs is down or not configured (ChainUnavailable, PaymentsDisabled,
  SignInUnavailable,
  StorageUnavailable: the database is down or locked, logged with its traceback; NotReady:
  ``/readyz`` adds each of its checks beside ``reason`` and ``detail``)
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nishati_client.errors import (
    AccountNotFound,
    AccountTypeMismatch,
    RpcError,
    TransactionUnconfirmed,
)
from nishati_client.phone import InvalidPhoneNumber
from nishati_oracle.storage import database

log = structlog.get_logger(__name__)

DETAIL_CHARS = 300
# When to ask again after a 503 ChainUnavailable (``Retry-After``).
CHAIN_RETRY_AFTER_SECS = 5
# Validation errors described in an answer; the rest are counted.
DESCRIBED_ERRORS = 3


class HttpReason(StrEnum):
    """The reasons of what the HTTP layer refuses before a route's own rules."""

    MalformedSubmission = "MalformedSubmission"
    NotFound = "NotFound"
    MethodNotAllowed = "MethodNotAllowed"
    BodyTooLarge = "BodyTooLarge"
    InvalidPhone = "InvalidPhone"
    AccountNotFound = "AccountNotFound"
    AccountTypeMismatch = "AccountTypeMismatch"
    ChainUnavailable = "ChainUnavailable"
    StorageUnavailable = "StorageUnavailable"
    NotReady = "NotReady"
    InternalError = "InternalError"


class ErrorOut(BaseModel):
    """Every error answer."""

    reason: str = Field(description="Machine-readable: what to branch on")
    detail: str = Field(description="For people; never repeats the request")
    trade_id: str | None = Field(default=None, description="The trade, when one was stored")


def error_body(reason: str, detail: str, extra: Mapping[str, str] | None = None) -> bytes:
    """:class:`ErrorOut` as JSON, written directly (the readings route answers with it too);
    ``extra`` adds fields (a trade's id, readiness checks)."""
    body = {"reason": reason, "detail": detail[:DETAIL_CHARS], **(extra or {})}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(
    status: int,
    reason: str,
    detail: str,
    extra: Mapping[str, str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(reason, detail, extra),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def describe(errors: Sequence[Any]) -> str:
    """Validation errors as a short text: where and what, never the input."""
    parts = []
    for error in errors[:DESCRIBED_ERRORS]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    if len(errors) > DESCRIBED_ERRORS:
        parts.append(f"and {len(errors) - DESCRIBED_ERRORS} more")
    return "; ".join(parts)[:DETAIL_CHARS]


def responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's error statuses for its OpenAPI entry: status -> the reasons it gives."""
    return {status: {"model": ErrorOut, "description": text} for status, text in described.items()}


# The statuses the HTTP layer gives on any route, before the route's own.
MALFORMED = {400: "Not of this route's shape: not JSON, wrong types, too deeply nested"}
TOO_LARGE = {413: "The body is over this route's cap (BodyTooLarge)"}
# The reason any route that reads or writes the database may give with a 503.
STORAGE_UNAVAILABLE = "StorageUnavailable: the database is down or locked"


def without_validation_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema without FastAPI's automatic 422 "Validation Error" entries: a
    malformed request is a 400 here, documented by each route as an :class:`ErrorOut`."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if ref.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    models = schema.get("components", {}).get("schemas", {})
    models.pop("HTTPValidationError", None)
    models.pop("ValidationError", None)
    return schema


async def _malformed(_: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return error_response(400, HttpReason.MalformedSubmission, describe(error.errors()))


_HTTP_REASONS = {
    400: HttpReason.MalformedSubmission,
    404: HttpReason.NotFound,
    405: HttpReason.MethodNotAllowed,
    413: HttpReason.BodyTooLarge,
}


async def _http_error(_: Request, error: Exception) -> Response:
    """Starlette's and FastAPI's own refusals (no route, wrong method, a body over the cap, a
    body that would not parse) in the one shape."""
    assert isinstance(error, HTTPException)
    status = error.status_code
    detail = str(error.detail)
    reason = _HTTP_REASONS.get(status) or http.HTTPStatus(status).phrase.replace(" ", "")
    return error_response(status, reason, detail, headers=error.headers)


async def _invalid_phone(_: Request, error: Exception) -> Response:
    return error_response(422, HttpReason.InvalidPhone, str(error))


def _route(request: Request) -> str:
    """The route's path template for logs: a path itself may hold a secret (a callback's
    token)."""
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


async def _chain_unavailable(request: Request, error: Exception) -> Response:
    # The error's text may name the RPC endpoint; it goes to the log, not to the caller.
    log.warning("chain unavailable", route=_route(request), error=str(error))
    return error_response(
        503,
        HttpReason.ChainUnavailable,
        "the chain did not answer; try again",
        headers={"Retry-After": str(CHAIN_RETRY_AFTER_SECS)},
    )


async def _account_not_found(_: Request, error: Exception) -> Response:
    # The text names the account by its address, which is public.
    return error_response(409, HttpReason.AccountNotFound, str(error))


async def _account_type_mismatch(_: Request, error: Exception) -> Response:
    return error_response(409, HttpReason.AccountTypeMismatch, str(error))


def _failed(request: Request, error: Exception) -> Response:
    """The answer to an exception no handler took, logged here, once, with the route and the
    stack: a database that is down or locked is a 503, anything else the oracle's fault."""
    where = {"method": request.method, "route": _route(request)}
    if database.unavailable(error):
        log.error("storage unavailable", **where, exc_info=error)
        return error_response(
            503, HttpReason.StorageUnavailable, "the database did not answer; try again"
        )
    log.error("request failed", **where, exc_info=error)
    return error_response(500, HttpReason.InternalError, "the oracle failed; the error is logged")


class Failures:
    """Answers (in the one shape) what no exception handler took. Starlette's own last resort,
    ``ServerErrorMiddleware``, answers and then raises the exception again for the server, which
    logs it a second time; this answers and does not. It is the outermost of the app's
    middleware, so the readings route (served beneath the routing) is inside it too. An
    exception after the answer has started cannot be answered: it goes on to the server, which
    logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            if started:
                raise
            await _failed(Request(scope), error)(scope, receive, send)


async def _unanswered(_: Request, error: Exception) -> Response:
    # What escaped :class:`Failures` (a fault of the layers around it): the server logs it.
    return error_response(500, HttpReason.InternalError, "the oracle failed; the error is logged")


def install(app: FastAPI) -> None:
    """The handlers of the errors any route may meet; each domain adds its refusals'. The app
    adds :class:`Failures` last, around everything else."""
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InvalidPhoneNumber, _invalid_phone)
    app.add_exception_handler(AccountNotFound, _account_not_found)
    app.add_exception_handler(AccountTypeMismatch, _account_type_mismatch)
    app.add_exception_handler(RpcError, _chain_unavailable)
    app.add_exception_handler(TransactionUnconfirmed, _chain_unavailable)
    app.add_exception_handler(Exception, _unanswered)
