"""Why a sign-in (or an operator's change to sign-in) was refused: the ``reason`` of its
answer. What a request is refused for who is asking is ``http.auth``'s."""

from __future__ import annotations

import math
from enum import StrEnum

from fastapi import Request
from fastapi.responses import Response

from nishati_oracle.http.errors import error_response


class SignInReason(StrEnum):
    # The code is wrong, expired, already used, or none was sent to that phone.
    CodeRejected = "CodeRejected"
    # The user name or the password is wrong.
    PasswordRejected = "PasswordRejected"
    # Too many wrong codes or passwords in a row: locked out for a while (Retry-After).
    SignInLocked = "SignInLocked"
    # Too many sign-in requests from this phone or address in the window (Retry-After).
    TooManySignInRequests = "TooManySignInRequests"
    # Households cannot sign in: no SMS provider (or no phone salt) is configured.
    SignInUnavailable = "SignInUnavailable"
    # No API key has that id.
    UnknownApiKey = "UnknownApiKey"
    # An operator of that user name exists already.
    OperatorExists = "OperatorExists"
    # A password too short to be an operator's.
    WeakPassword = "WeakPassword"


STATUS = {
    SignInReason.CodeRejected: 401,
    SignInReason.PasswordRejected: 401,
    SignInReason.SignInLocked: 429,
    SignInReason.TooManySignInRequests: 429,
    SignInReason.SignInUnavailable: 503,
    SignInReason.UnknownApiKey: 404,
    SignInReason.OperatorExists: 409,
    SignInReason.WeakPassword: 422,
}


class SignInRefused(Exception):
    """A sign-in refused; ``retry_after_secs`` when asking again later may succeed."""

    def __init__(
        self, reason: SignInReason, detail: str, retry_after_secs: float | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after_secs = retry_after_secs

    @property
    def status_code(self) -> int:
        return STATUS[self.reason]

    @property
    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after_secs is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_secs)))
        return headers


async def refused(_: Request, error: Exception) -> Response:
    """An :class:`SignInRefused` in the one error shape."""
    assert isinstance(error, SignInRefused)
    return error_response(error.status_code, error.reason, error.detail, headers=error.headers)
