"""The client's exceptions; program errors are named from the IDL's error list.

NishatiClientError
├── TransactionFailed: a transaction failed (simulated or on chain)
│   └── NishatiProgramError: the Nishati program refused it with a named error
├── TransactionUnconfirmed: sent, but whether it landed could not be told
├── RpcError: a JSON-RPC request failed
│   └── RpcUnavailable: transiently (timeout, dropped connection, HTTP 429 or 5xx)
├── ProgramNotDeployed: the program is not on the cluster (the wrong cluster)
├── AccountNotFound
├── AccountTypeMismatch
├── KeyFileError (keys): a keypair file is missing, unreadable or malformed
├── ReadingError (readings): a meter reading broke a rule, one subclass per rule
├── ReadingsFileError (readings): not a readings file
├── InvalidPhoneNumber (phone)
└── InvalidPhoneSalt (phone)
"""

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


class TransactionUnconfirmed(NishatiClientError):
    """A transaction was sent but its fate is unknown; it was not signed again, because that
    could have executed it twice."""


class RpcError(NishatiClientError):
    """A JSON-RPC request failed."""


class RpcUnavailable(RpcError):
    """A JSON-RPC request failed transiently (timeout, dropped connection, HTTP 429 or 5xx)."""


class ProgramNotDeployed(NishatiClientError):
    """The program has no executable account on the cluster: most likely the wrong cluster."""


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
