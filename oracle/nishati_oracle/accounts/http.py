"""The sign-in routes and the operators' API key routes.

- ``POST /api/v1/auth/code {phone}``: 202, whether or not a household has that phone; when
  one does, a code is sent to it by SMS (after the answer, so its time tells nothing either).
- ``POST /api/v1/auth/session {phone, code}``: the household's session (cookies).
- ``POST /api/v1/auth/operator {username, password}``: an operator's session (cookies).
- ``GET /api/v1/auth/me``: who is signed in; 401 NotSignedIn for nobody.
- ``DELETE /api/v1/auth/session``: signs out (its CSRF token needed, as for every change).
- ``POST``/``GET /api/v1/operator/api-keys``, ``DELETE /api/v1/operator/api-keys/{key_id}``:
  an operator issues (shown once), lists and revokes integrations' keys.

Every sign-in request counts against its caller's address (NISHATI_AUTH_REQUESTS_PER_ADDRESS
in NISHATI_AUTH_RATE_WINDOW_SECS), and a code request against its phone too
(NISHATI_AUTH_CODE_REQUESTS_PER_PHONE): 429 TooManySignInRequests past either, with
Retry-After.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from nishati_client.phone import mask, normalise
from nishati_oracle.accounts.api_keys import ApiKeyRecord, Scope
from nishati_oracle.accounts.errors import SignInReason, SignInRefused
from nishati_oracle.accounts.sessions import CSRF_COOKIE, SESSION_COOKIE, Holder, NewSession
from nishati_oracle.accounts.sms import SmsError, SmsRefused
from nishati_oracle.accounts.wiring import Accounts
from nishati_oracle.core.settings import AuthSettings
from nishati_oracle.http.auth import (
    OPERATOR_ACCESS,
    SAFE_METHODS,
    SIGNED_IN,
    Caller,
    CallerDep,
    Credential,
    OperatorAccessDep,
    check_csrf,
)
from nishati_oracle.http.deps import ServicesDep, services_of
from nishati_oracle.http.errors import MALFORMED, STORAGE_UNAVAILABLE, TOO_LARGE, responses
from nishati_oracle.http.limits import capped
from nishati_oracle.storage.schema import API_KEY_NAME_CHARS, USERNAME_CHARS
from nishati_oracle.trading.api import Phone, client_address

log = structlog.get_logger(__name__)

Code = Annotated[str, Field(description="The 6 digits sent by SMS", pattern=r"^[0-9]{6}$")]


class CodeIn(BaseModel):
    phone: Phone


class CodeSentOut(BaseModel):
    expires_in_secs: int = Field(description="How long a code sent now is valid")


class HouseholdSignIn(BaseModel):
    phone: Phone
    code: Code


class OperatorSignIn(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=USERNAME_CHARS)]
    password: Annotated[str, Field(min_length=1, max_length=1_024)]


class SignedIn(StrEnum):
    """What ``/api/v1/auth/me`` says the caller is."""

    household = "household"
    operator = "operator"
    # An API key's holder.
    integration = "integration"
    # The holder of an ed25519 key (a signed request).
    key = "key"


class SignedInOut(BaseModel):
    role: SignedIn
    household: str | None = Field(default=None, description="A household's address")
    username: str | None = Field(default=None, description="An operator's user name")
    key_id: str | None = Field(default=None, description="An integration's API key")
    scopes: list[Scope] = Field(default_factory=list, description="An API key's scopes")
    key: str | None = Field(default=None, description="A signed request's key, base58")


class ApiKeyIn(BaseModel):
    name: Annotated[
        str, Field(min_length=1, max_length=API_KEY_NAME_CHARS, description="Whose it is")
    ]
    scopes: Annotated[list[Scope], Field(min_length=1, description="What it may do")]


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    created_by: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


class IssuedApiKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself (Authorization: Bearer), shown only now")


def signed_in_out(who: Caller) -> SignedInOut:
    if who.household is not None:
        return SignedInOut(role=SignedIn.household, household=str(who.household))
    if who.is_operator:
        return SignedInOut(role=SignedIn.operator, username=who.name or "operator")
    if who.credential is Credential.api_key:
        return SignedInOut(role=SignedIn.integration, key_id=who.name, scopes=sorted(who.scopes))
    return SignedInOut(role=SignedIn.key, key=str(who.key))


def _accounts(request: Request) -> Accounts:
    return services_of(request).accounts


async def _within_rate(accounts: Accounts, request: Request) -> None:
    address = client_address(request, accounts.settings.payments.trusted_proxies)
    wait = await accounts.per_address.hit(address)
    if wait is not None:
        raise SignInRefused(
            SignInReason.TooManySignInRequests,
            "too many sign-in requests from this address",
            retry_after_secs=wait,
        )


def _set_cookies(response: Response, session: NewSession, auth: AuthSettings, max_age: int) -> None:
    secure = not auth.insecure_cookies
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    # The page's script reads it, and sends it back as X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf_token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=False,
        samesite="lax",
    )


def _clear_cookies(response: Response, auth: AuthSettings) -> None:
    secure = not auth.insecure_cookies
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly, samesite="lax")


async def _signed_in(accounts: Accounts, holder: Holder, subject: str) -> Response:
    session = await accounts.sessions.open(holder, subject)
    if holder is Holder.household:
        answer = SignedInOut(role=SignedIn.household, household=subject)
    else:
        answer = SignedInOut(role=SignedIn.operator, username=subject)
    response = Response(
        answer.model_dump_json(exclude_defaults=True).encode(), media_type="application/json"
    )
    _set_cookies(response, session, accounts.settings.auth, accounts.sessions.lifetime(holder))
    return response


SIGN_IN_UNAVAILABLE = {503: f"SignInUnavailable: no SMS provider is set; {STORAGE_UNAVAILABLE}"}
TOO_MANY = "TooManySignInRequests: too many from this address (Retry-After)"

auth = APIRouter(
    tags=["sign-in"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses({**MALFORMED, **TOO_LARGE}),
)


async def _send_code(accounts: Accounts, phone: str) -> None:
    """Sends a code to ``phone`` if a household has it (after the answer: see the module)."""
    assert accounts.phones is not None
    assert accounts.sms is not None
    household = await accounts.phones.household_of(phone)
    codes = accounts.metrics.sign_in_codes
    if household is None:
        log.info("sign-in code not sent: no household has the phone", phone=mask(phone))
        codes.labels("no_household").inc()
        return
    code = await accounts.codes.issue(phone, household)
    minutes = max(1, accounts.settings.auth.code_secs // 60)
    message = (
        f"{code} is your Nishati sign-in code, valid {minutes} min. "
        f"Ni nambari yako ya kuingia Nishati, dakika {minutes}."
    )
    try:
        await accounts.sms.send(phone, message)
    except SmsError as error:
        log.warning(
            "sign-in code not sent", phone=mask(phone), household=household, error=str(error)
        )
        codes.labels("refused" if isinstance(error, SmsRefused) else "unavailable").inc()
        return
    codes.labels("sent").inc()


@auth.post(
    "/api/v1/auth/code",
    status_code=202,
    response_model=CodeSentOut,
    responses=responses(
        {
            422: "InvalidPhone",
            429: f"{TOO_MANY}; or from this phone; SignInLocked: too many wrong codes",
            **SIGN_IN_UNAVAILABLE,
        }
    ),
)
async def ask_for_code(request: Request, body: CodeIn, background: BackgroundTasks) -> CodeSentOut:
    """Sends a sign-in code by SMS to the phone, if a household of this market has it
    enrolled; the answer is the same either way."""
    accounts = _accounts(request)
    if accounts.sms is None:
        raise SignInRefused(
            SignInReason.SignInUnavailable,
            "households cannot sign in here: set NISHATI_SMS_PROVIDER and NISHATI_PHONE_SALT",
        )
    await _within_rate(accounts, request)
    phone = normalise(body.phone)
    subject = accounts.codes.subject(phone)
    await accounts.codes.lockouts.check(subject)
    wait = await accounts.per_phone.hit(subject)
    if wait is not None:
        raise SignInRefused(
            SignInReason.TooManySignInRequests,
            "too many codes asked for this phone",
            retry_after_secs=wait,
        )
    background.add_task(_send_code, accounts, phone)
    return CodeSentOut(expires_in_secs=accounts.settings.auth.code_secs)


@auth.post(
    "/api/v1/auth/session",
    response_model=SignedInOut,
    responses=responses(
        {
            401: "CodeRejected: wrong, expired or used (or none was sent)",
            422: "InvalidPhone",
            429: f"{TOO_MANY}; SignInLocked: too many wrong codes (Retry-After)",
            503: STORAGE_UNAVAILABLE,
        }
    ),
)
async def household_sign_in(request: Request, body: HouseholdSignIn) -> Response:
    """Signs a household in with the code sent to its phone: the ``nishati_session`` cookie
    (HttpOnly) and the ``nishati_csrf`` cookie its page sends back as ``X-CSRF-Token``."""
    accounts = _accounts(request)
    await _within_rate(accounts, request)
    phone = normalise(body.phone)
    signed_in = accounts.metrics.sign_ins
    try:
        household = await accounts.codes.redeem(phone, body.code)
    except SignInRefused as refused:
        log.info("household sign-in refused", phone=mask(phone), reason=refused.reason)
        signed_in.labels(Holder.household, refused.reason).inc()
        raise
    log.info("household signed in", household=household, phone=mask(phone))
    signed_in.labels(Holder.household, "signed_in").inc()
    return await _signed_in(accounts, Holder.household, household)


@auth.post(
    "/api/v1/auth/operator",
    response_model=SignedInOut,
    responses=responses(
        {
            401: "PasswordRejected: the user name or the password is wrong",
            429: f"{TOO_MANY}; SignInLocked: too many wrong passwords (Retry-After)",
            503: STORAGE_UNAVAILABLE,
        }
    ),
)
async def operator_sign_in(request: Request, body: OperatorSignIn) -> Response:
    """Signs an operator in with their password (``nishati-oracle operator add`` makes one)."""
    accounts = _accounts(request)
    await _within_rate(accounts, request)
    signed_in = accounts.metrics.sign_ins
    try:
        await accounts.operators.verify(body.username, body.password)
    except SignInRefused as refused:
        log.warning("operator sign-in refused", reason=refused.reason)
        signed_in.labels(Holder.operator, refused.reason).inc()
        raise
    log.info("operator signed in", operator=body.username)
    signed_in.labels(Holder.operator, "signed_in").inc()
    return await _signed_in(accounts, Holder.operator, body.username)


@auth.get(
    "/api/v1/auth/me",
    response_model=SignedInOut,
    response_model_exclude_defaults=True,
    responses=responses({**SIGNED_IN, 503: STORAGE_UNAVAILABLE}),
)
async def me(who: CallerDep) -> SignedInOut:
    """Who is signed in (or holds the API key, token or key the request was sent with)."""
    return signed_in_out(who)


@auth.delete(
    "/api/v1/auth/session",
    status_code=204,
    response_class=Response,
    responses=responses(
        {
            403: "CsrfTokenMissing, CsrfTokenMismatch: without the session's CSRF token",
            503: STORAGE_UNAVAILABLE,
        }
    ),
)
async def sign_out(request: Request, services: ServicesDep) -> Response:
    """Ends this browser's session (if any) and clears its cookies."""
    accounts = services.accounts
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        session = await accounts.sessions.find(session_id)
        if session is not None:
            assert request.method not in SAFE_METHODS
            check_csrf(request, session)
            await accounts.sessions.end(session_id)
            log.info("signed out", holder=session.holder, subject=session.subject)
    response = Response(status_code=204)
    _clear_cookies(response, accounts.settings.auth)
    return response


api_key_routes = APIRouter(
    tags=["operators"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses({**OPERATOR_ACCESS, 503: STORAGE_UNAVAILABLE}),
)


def _key_out(record: ApiKeyRecord) -> dict[str, Any]:
    return {**vars(record), "scopes": sorted(record.scopes)}


@api_key_routes.post(
    "/api/v1/operator/api-keys",
    status_code=201,
    response_model=IssuedApiKeyOut,
    responses=responses({**MALFORMED, **TOO_LARGE}),
)
async def issue_api_key(
    access: OperatorAccessDep, services: ServicesDep, body: ApiKeyIn
) -> IssuedApiKeyOut:
    """Issues a key for an integration, with the scopes it may use; the key is in this answer
    only (the oracle keeps its digest)."""
    by = access.caller.name or access.name
    record, key = await services.accounts.api_keys.issue(body.name, body.scopes, by)
    log.info("api key issued", key_id=record.id, scopes=sorted(record.scopes), operator=by)
    return IssuedApiKeyOut(**_key_out(record), key=key)


@api_key_routes.get("/api/v1/operator/api-keys", response_model=list[ApiKeyOut])
async def list_api_keys(_: OperatorAccessDep, services: ServicesDep) -> list[ApiKeyOut]:
    """Every key issued, revoked ones too (never the keys themselves)."""
    return [ApiKeyOut(**_key_out(r)) for r in await services.accounts.api_keys.listed()]


@api_key_routes.delete(
    "/api/v1/operator/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses=responses({404: "UnknownApiKey"}),
)
async def revoke_api_key(access: OperatorAccessDep, services: ServicesDep, key_id: str) -> Response:
    """Revokes a key: refused from now on."""
    await services.accounts.api_keys.revoke(key_id)
    log.info("api key revoked", key_id=key_id, operator=access.name)
    return Response(status_code=204)
