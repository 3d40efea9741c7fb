"""Who is asking, and whether they may see or change a household's data.

A request proves who sent it in one of these ways, tried in this order:

- an API key an operator issued (``Authorization: Bearer nsk_...``, ``accounts.api_keys``),
  with its scopes;
- the operator's bearer token (``Authorization: Bearer``, NISHATI_OPERATOR_TOKEN);
- a signed request (:mod:`nishati_client.signing`): an ed25519 key's signature over the
  method, path, time and body's SHA-256, within NISHATI_HTTP_SIGNATURE_WINDOW_SECS of the
  oracle's clock, never seen before for a request that changes something;
- a session (the ``nishati_session`` cookie, ``accounts.sessions``): a household signed in with
  a code sent to its phone, or an operator with a password. A change (any method but GET,
  HEAD and OPTIONS) made with a session also carries its CSRF token twice, as the
  ``nishati_csrf`` cookie and the ``X-CSRF-Token`` header: a page of another site can make the
  browser send the cookies, but can neither read them nor set the header.

That makes a :class:`Caller`. For a household's routes, :func:`household_access` decides its
:class:`Principal`: the operator; the household's owner (the key its account names on chain);
or an installer the market's admin approves (an InstallerRecord on chain), who sets homes up
for households, custodial ones above all, whose keys the oracle holds and who sign nothing.
The oracle's own key is never a caller: what it signs for a custodial household it signs
because one of these asked.

A household signed in with its phone is its owner, as its key is; an API key is no household's
and no operator, and reaches only what its scopes name.

The refusals (:class:`AccessReason`): 401 NotSignedIn (no credentials, or a session that is
unknown, over or signed out), BadSignature (headers not of their shape, or a signature that is
not the key's over this request), StaleSignature (signed outside the window),
ReplayedSignature (a change sent twice), OperatorTokenRefused (a wrong bearer token, or none is
set), ApiKeyRefused (a key that is not one of ours, or revoked); 403 NotYourHousehold (neither
its owner, an approved installer nor the operator), NotInThisMarket (a market-wide route for a
key that is neither a household of this market nor an approved installer), OperatorsOnly,
CsrfTokenMissing, CsrfTokenMismatch (a change made with a session without its CSRF token, or
with another's), MissingScope (an API key without the route's scope); 404 UnknownHousehold (no
household of this market at that address).

An order (:func:`order_access`) is placed by an operator or an API key with ``trades:write``
for any enrolled phone, or by a household (signed in, or by its owner's key) for its own phone
only.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import Response
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from solders.account import Account
from solders.pubkey import Pubkey
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nishati_client.errors import AccountNotFound, AccountTypeMismatch
from nishati_client.household import Household
from nishati_client.signing import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MalformedSignature,
    RequestSignature,
    target,
)
from nishati_oracle.accounts.api_keys import Scope, looks_like_key
from nishati_oracle.accounts.sessions import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Holder,
    SessionRecord,
)
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import error_response
from nishati_oracle.services import Services
from nishati_oracle.storage.database import dialect_insert, in_transaction
from nishati_oracle.storage.schema import signed_changes

log = structlog.get_logger(__name__)

# Methods whose repeat would undo or redo a change: their signatures are remembered.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How often, at most, a replica deletes the signatures of changes that are out of the window.
PURGE_SIGNATURES_EVERY_SECS = 60.0


class AccessReason(StrEnum):
    NotSignedIn = "NotSignedIn"
    BadSignature = "BadSignature"
    StaleSignature = "StaleSignature"
    ReplayedSignature = "ReplayedSignature"
    OperatorTokenRefused = "OperatorTokenRefused"
    ApiKeyRefused = "ApiKeyRefused"
    NotYourHousehold = "NotYourHousehold"
    NotInThisMarket = "NotInThisMarket"
    UnknownHousehold = "UnknownHousehold"
    OperatorsOnly = "OperatorsOnly"
    CsrfTokenMissing = "CsrfTokenMissing"
    CsrfTokenMismatch = "CsrfTokenMismatch"
    # An API key without the scope the route needs.
    MissingScope = "MissingScope"


STATUS = {
    AccessReason.NotSignedIn: 401,
    AccessReason.BadSignature: 401,
    AccessReason.StaleSignature: 401,
    AccessReason.ReplayedSignature: 401,
    AccessReason.OperatorTokenRefused: 401,
    AccessReason.ApiKeyRefused: 401,
    AccessReason.NotYourHousehold: 403,
    AccessReason.NotInThisMarket: 403,
    AccessReason.UnknownHousehold: 404,
    AccessReason.OperatorsOnly: 403,
    AccessReason.CsrfTokenMissing: 403,
    AccessReason.CsrfTokenMismatch: 403,
    AccessReason.MissingScope: 403,
}
# How a 401 says to authenticate (RFC 9110 ``WWW-Authenticate``).
CHALLENGE = {"WWW-Authenticate": 'Bearer, Nishati-Ed25519 realm="nishati"'}
# Methods that change nothing: a session needs no CSRF token for them.
SAFE_METHODS = READ_METHODS


class AccessRefused(Exception):
    """A request refused for who sent it (or for sending nothing to say)."""

    def __init__(self, reason: AccessReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status_code(self) -> int:
        return STATUS[self.reason]


async def refused(_: Request, error: Exception) -> Response:
    assert isinstance(error, AccessRefused)
    headers = CHALLENGE if error.status_code == 401 else None
    return error_response(error.status_code, error.reason, error.detail, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AccessRefused, refused)


# What the OpenAPI entries say, for the routes' ``responses``.
SIGNED_IN = {
    401: "NotSignedIn, BadSignature, StaleSignature, ReplayedSignature, OperatorTokenRefused, "
    f"ApiKeyRefused: sign in (a session), sign the request ({KEY_HEADER}, {TIMESTAMP_HEADER}, "
    f"{SIGNATURE_HEADER}), or send an API key or the operator's bearer token",
    403: f"CsrfTokenMissing, CsrfTokenMismatch: a change made with a session without its "
    f"CSRF token ({CSRF_HEADER} header and {CSRF_COOKIE} cookie)",
}
HOUSEHOLD_ACCESS = {
    **SIGNED_IN,
    403: "NotYourHousehold: the caller is neither the household's owner, an installer the "
    f"market approves, nor the operator; {SIGNED_IN[403]}",
    404: "UnknownHousehold: no household of this market at that address",
}
MARKET_ACCESS = {
    **SIGNED_IN,
    403: "NotInThisMarket: the caller is neither a household of this market nor an approved "
    f"installer; {SIGNED_IN[403]}",
}
OPERATOR_ACCESS = {**SIGNED_IN, 403: f"OperatorsOnly: not an operator; {SIGNED_IN[403]}"}


class Credential(StrEnum):
    """How a caller proved who it is."""

    operator_token = "operator_token"  # noqa: S105 - the name of a credential, not one
    signature = "signature"
    session = "session"
    api_key = "api_key"


@dataclass(frozen=True)
class Caller:
    """Who sent a request, before any household is considered: the operator (by the token,
    or ``name`` signed in with a password), the holder of ``key``, the ``household`` signed in
    with its phone, or the API key ``name`` with its ``scopes``."""

    credential: Credential
    key: Pubkey | None = None
    household: Pubkey | None = None
    name: str | None = None
    scopes: frozenset[Scope] = frozenset()

    @property
    def is_operator(self) -> bool:
        if self.credential is Credential.session:
            return self.household is None
        return self.credential is Credential.operator_token

    def owned_household(self, services: Services) -> Pubkey | None:
        """The household the caller owns in this market, as far as the request tells: the one
        signed in with its phone, or the one a key's owner has (whether it exists or not)."""
        if self.household is not None:
            return self.household
        if self.key is not None:
            return services.client.program.household_address(services.market, self.key)
        return None


class Role(StrEnum):
    """What a caller is to the household (or market) a route is about."""

    operator = "operator"
    owner = "owner"
    installer = "installer"


@dataclass(frozen=True)
class Principal:
    """A caller with its role; ``name`` says who, for logs and records."""

    role: Role
    caller: Caller

    @property
    def name(self) -> str:
        who = self.caller.key or self.caller.household or self.caller.name
        if who is None:
            return self.role.value
        return f"{self.role.value}:{who}"


@dataclass(frozen=True)
class HouseholdAccess:
    """A household's route, allowed: who asks, and the household as the chain holds it now."""

    principal: Principal
    household: Household


class SignatureWindow:
    """The time window signed requests are taken in, and the signatures of changes already
    taken within it (each is refused a second time), kept in the database (``signed_changes``)
    so that a change taken by one replica is refused by every other."""

    def __init__(self, window_secs: int, clock: Callable[[], float] = time.time) -> None:
        self.window_secs = window_secs
        self.clock = clock
        self._purged_at = -float("inf")

    async def check(self, engine: AsyncEngine, signature: RequestSignature, changes: bool) -> None:
        now = self.clock()
        if abs(now - signature.timestamp) > self.window_secs:
            raise AccessRefused(
                AccessReason.StaleSignature,
                f"signed at {signature.timestamp}, more than {self.window_secs} s from the "
                f"oracle's clock ({int(now)}): sign it again",
            )
        if not changes:
            return
        take = (
            dialect_insert(engine)(signed_changes)
            .values(signature=bytes(signature.signature), signed_at=signature.timestamp)
            .on_conflict_do_nothing()
        )

        async def take_in(conn: AsyncConnection) -> bool:
            taken = (await conn.execute(take)).rowcount == 1
            if now - self._purged_at >= PURGE_SIGNATURES_EVERY_SECS:
                # A change signed before the window would be stale, so it need not be kept.
                self._purged_at = now
                out = signed_changes.c.signed_at < now - self.window_secs
                await conn.execute(delete(signed_changes).where(out))
            return taken

        if not await in_transaction(engine, take_in):
            raise AccessRefused(
                AccessReason.ReplayedSignature, "this signed change was taken already"
            )


# Declared for the OpenAPI schema's security schemes; the checks are :func:`caller`'s.
_bearer = HTTPBearer(
    scheme_name="Bearer",
    description="An API key an operator issued (nsk_...), or the operator's token "
    "(NISHATI_OPERATOR_TOKEN)",
    auto_error=False,
)
_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="Session",
    description=f"A signed-in browser's session (POST /api/v1/auth/session or /operator); a "
    f"change also sends the {CSRF_COOKIE} cookie's value as {CSRF_HEADER}",
    auto_error=False,
)
_signed = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name="SignedRequest",
    description=f"A household owner's or installer's ed25519 signature (base58) over the "
    f"request's canonical form (nishati_client.signing), with {KEY_HEADER} (base58 public key) "
    f"and {TIMESTAMP_HEADER} (Unix seconds)",
    auto_error=False,
)


def _operator(services: Services, token: str) -> Caller:
    expected = services.settings.payments.operator_token
    if expected is None:
        raise AccessRefused(AccessReason.OperatorTokenRefused, "no operator token is set")
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise AccessRefused(AccessReason.OperatorTokenRefused, "not the operator's token")
    return Caller(Credential.operator_token)


async def _api_key(services: Services, key: str) -> Caller:
    record = await services.accounts.api_keys.find(key)
    if record is None:
        raise AccessRefused(AccessReason.ApiKeyRefused, "not an API key of this oracle, or revoked")
    return Caller(Credential.api_key, name=record.id, scopes=record.scopes)


def check_csrf(request: Request, session: SessionRecord) -> None:
    """A change made with ``session`` carries its CSRF token as cookie and header alike."""
    header = request.headers.get(CSRF_HEADER)
    cookie = request.cookies.get(CSRF_COOKIE)
    if not header or not cookie:
        raise AccessRefused(
            AccessReason.CsrfTokenMissing,
            f"a change made with a session needs the {CSRF_HEADER} header and the "
            f"{CSRF_COOKIE} cookie",
        )
    if not hmac.compare_digest(header.encode(), cookie.encode()) or not session.csrf_matches(
        header
    ):
        raise AccessRefused(
            AccessReason.CsrfTokenMismatch, f"the {CSRF_HEADER} header is not this session's"
        )


async def _session(request: Request, services: Services, session_id: str) -> Caller | None:
    session = await services.accounts.sessions.find(session_id)
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        check_csrf(request, session)
    if session.holder is Holder.household:
        return Caller(Credential.session, household=Pubkey.from_string(session.subject))
    return Caller(Credential.session, name=session.subject)


async def maybe_caller(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _signature: Annotated[str | None, Security(_signed)],
    session_id: Annotated[str | None, Security(_session_cookie)],
) -> Caller | None:
    """The request's caller, ``None`` if it names none (a session that is over names none).
    The body is read first, so that one over its route's cap is a 413 whoever sent it."""
    body = await request.body()
    if bearer is not None:
        token = bearer.credentials.strip()
        if looks_like_key(token):
            return await _api_key(services, token)
        return _operator(services, token)
    try:
        signature = RequestSignature.from_headers(request.headers)
    except MalformedSignature as error:
        raise AccessRefused(AccessReason.BadSignature, str(error)) from None
    if signature is None:
        return await _session(request, services, session_id) if session_id else None
    if not signature.verifies(request.method, target(request.url.path, request.url.query), body):
        raise AccessRefused(
            AccessReason.BadSignature, "the signature is not the key's over this request"
        )
    window: SignatureWindow = request.app.state.signatures
    await window.check(services.store.engine, signature, request.method not in READ_METHODS)
    return Caller(Credential.signature, signature.key)


async def caller(who: Annotated[Caller | None, Depends(maybe_caller)]) -> Caller:
    """The request's caller, or a 401 NotSignedIn."""
    if who is None:
        raise AccessRefused(
            AccessReason.NotSignedIn,
            "sign in, sign the request, or send an API key or the operator's bearer token",
        )
    return who


async def operator_access(who: Annotated[Caller, Depends(caller)]) -> Principal:
    """An operator (by session or token); a 403 OperatorsOnly for anyone else."""
    if not who.is_operator:
        raise AccessRefused(AccessReason.OperatorsOnly, "only an operator may")
    return Principal(Role.operator, who)


@dataclass(frozen=True)
class OrderAccess:
    """Who places an order, and the only household it may buy for: ``None`` for an operator
    or an API key with ``trades:write`` (any enrolled phone), else the caller's own."""

    caller: Caller
    buyer: Pubkey | None


async def order_access(
    services: ServicesDep, who: Annotated[Caller, Depends(caller)]
) -> OrderAccess:
    """An order's caller; a 403 MissingScope for an API key without ``trades:write``."""
    if who.is_operator or Scope.trades_write in who.scopes:
        return OrderAccess(who, None)
    owned = who.owned_household(services)
    if owned is None:
        raise AccessRefused(
            AccessReason.MissingScope, f"placing orders needs the {Scope.trades_write} scope"
        )
    return OrderAccess(who, owned)


MaybeCallerDep = Annotated[Caller | None, Depends(maybe_caller)]
CallerDep = Annotated[Caller, Depends(caller)]
OperatorAccessDep = Annotated[Principal, Depends(operator_access)]
OrderAccessDep = Annotated[OrderAccess, Depends(order_access)]


def _installer_record(services: Services, key: Pubkey) -> Pubkey:
    return services.client.program.installer_record_address(services.market, key)


async def household_access(
    services: ServicesDep, who: CallerDep, household: str
) -> HouseholdAccess:
    """The household of the route's path, for its owner, an approved installer or the
    operator; 403 NotYourHousehold for anyone else, 404 UnknownHousehold if this market has no
    household there."""
    try:
        address = Pubkey.from_string(household)
    except ValueError:
        raise AccessRefused(
            AccessReason.UnknownHousehold, "the household is not a base58 address"
        ) from None
    addresses = [address]
    if who.key is not None:
        addresses.append(_installer_record(services, who.key))
    accounts = await services.chain.accounts(addresses)
    try:
        found = Household.from_decoded(
            address, services.client.program.decode("Household", address, accounts[0])
        )
    except (AccountNotFound, AccountTypeMismatch):
        found = None
    if found is None or found.market != services.market:
        raise AccessRefused(AccessReason.UnknownHousehold, "no household of this market there")
    if who.is_operator:
        return HouseholdAccess(Principal(Role.operator, who), found)
    if who.key == found.owner or who.household == found.address:
        return HouseholdAccess(Principal(Role.owner, who), found)
    if len(accounts) > 1 and _is_installer_record(services, addresses[1], accounts[1]):
        return HouseholdAccess(Principal(Role.installer, who), found)
    log.info(
        "household access refused",
        household=household,
        credential=who.credential,
        key=str(who.key),
        signed_in=str(who.household),
    )
    raise AccessRefused(
        AccessReason.NotYourHousehold,
        "only the household's owner, an installer the market approves or the operator",
    )


def _is_installer_record(services: Services, address: Pubkey, account: Account | None) -> bool:
    """Whether ``account`` (at an installer's record address) is the admin's approval."""
    try:
        services.client.program.decode("InstallerRecord", address, account)
    except (AccountNotFound, AccountTypeMismatch):
        return False
    return True


async def market_access(services: ServicesDep, who: CallerDep) -> Principal:
    """A market-wide route's caller: the operator, an approved installer, or the owner of a
    household of this market; 403 NotInThisMarket for another key."""
    if who.is_operator:
        return Principal(Role.operator, who)
    if who.household is not None:
        # Signed in with a phone this market's desk enrolled for it.
        return Principal(Role.owner, who)
    if who.key is None:
        raise AccessRefused(AccessReason.NotInThisMarket, "an API key is no household's")
    program = services.client.program
    installer_record = _installer_record(services, who.key)
    household = program.household_address(services.market, who.key)
    installer, owned = await services.chain.accounts([installer_record, household])
    if _is_installer_record(services, installer_record, installer):
        return Principal(Role.installer, who)
    try:
        program.decode("Household", household, owned)
    except (AccountNotFound, AccountTypeMismatch):
        pass
    else:
        return Principal(Role.owner, who)
    raise AccessRefused(
        AccessReason.NotInThisMarket,
        "only a household of this market, an approved installer or the operator",
    )


HouseholdAccessDep = Annotated[HouseholdAccess, Depends(household_access)]
MarketAccessDep = Annotated[Principal, Depends(market_access)]
