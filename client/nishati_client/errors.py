"""Program errors as named Python exceptions, from the IDL's error list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nishati_client.idl import IDL_JSON


@dataclass(frozen=True)
class ErrorInfo:
    code: int
    name: str
    message: str


PROGRAM_ERRORS: dict[int, ErrorInfo] = {
    e["code"]: ErrorInfo(e["code"], e["name"], e["msg"]) for e in IDL_JSON["errors"]
}
ERROR_CODES: dict[str, int] = {e.name: e.code for e in PROGRAM_ERRORS.values()}


class NishatiClientError(Exception):
    """Base of every error this package raises."""


class TransactionFailed(NishatiClientError):
    """A transaction failed for a reason other than a Nishati program error."""

    def __init__(self, reason: str, logs: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.logs = list(logs)


class NishatiProgramError(TransactionFailed):
    """The Nishati program refused an instruction with one of its named errors."""

    def __init__(self, info: ErrorInfo, logs: Sequence[str] = ()) -> None:
        super().__init__(f"{info.name} ({info.code}): {info.message}", logs)
        self.code = info.code
        self.name = info.name
        self.message = info.message


class AccountNotFound(NishatiClientError):
    """No account exists at the address."""


class AccountTypeMismatch(NishatiClientError):
    """The account exists but is not owned by the program, or holds another type."""


def program_error(code: int, logs: Sequence[str] = ()) -> TransactionFailed:
    """The exception for custom error ``code``: named when the IDL knows it."""
    info = PROGRAM_ERRORS.get(code)
    if info is None:
        return TransactionFailed(f"custom program error {code}", logs)
    return NishatiProgramError(info, logs)
