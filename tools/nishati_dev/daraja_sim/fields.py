"""Daraja's errors and its field rules, written from Daraja's documentation (not from our client).

Each error code starts with the HTTP status it travels with: ``400.002.02`` with 400,
``404.001.03`` with 404, ``500.001.1001`` with 500.
"""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from nishati_client.digits import ascii_digits

NAIROBI = datetime.timezone(datetime.timedelta(hours=3), "EAT")  # Kenya keeps no summer time

INVALID_FIELD = "400.002.02"
INVALID_TOKEN = "404.001.03"  # noqa: S105 (an error code)
INVALID_AUTH = "400.008.01"
INVALID_GRANT = "400.008.02"
TS_INVALID_TOKEN = "400.003.01"  # noqa: S105 (Transaction Status's own code for it)
IN_PROCESS = "500.001.1001"
DUPLICATE = "500.002.1001"
SPIKE_ARREST = "500.003.02"

# [0-9], not \d: \d also matches Arabic-Indic and full-width digits, which Daraja refuses.
MSISDN = re.compile(r"254[17][0-9]{8}")
SHORTCODE = re.compile(r"[0-9]{5,9}")
TIMESTAMP = re.compile(r"[0-9]{14}")
# Daraja's documented advice (C2B and Register URL pages): URLs with "M-PESA, M-Pesa, mpesa,
# Safaricom, exe, exec, cmd, sql, query, or any of their variants" are refused.
BLOCKED_URL_WORDS = ("m-pesa", "m_pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query")

MAX_STK_AMOUNT = 250_000
MIN_B2C_AMOUNT = 10
MAX_B2C_AMOUNT = 250_000


class DarajaError(Exception):
    """An error Daraja answers with ``{"requestId", "errorCode", "errorMessage"}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return int(self.code.split(".", 1)[0])

    def body(self) -> dict[str, str]:
        return {"requestId": request_id(), "errorCode": self.code, "errorMessage": self.message}


def invalid(field: str) -> DarajaError:
    return DarajaError(INVALID_FIELD, f"Bad Request - Invalid {field}")


def request_id() -> str:
    """Daraja's shape: ``29115-34620561-1``."""
    return f"{secrets.randbelow(90_000) + 10_000}-{secrets.randbelow(90_000_000) + 10_000_000}-1"


def now_nairobi() -> datetime.datetime:
    return datetime.datetime.now(NAIROBI)


def text(body: dict[str, Any], field: str, *, max_len: int, min_len: int = 1) -> str:
    """A string field (Daraja also takes numbers for its numeric strings)."""
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(field)
    value = str(value)
    if not min_len <= len(value) <= max_len:
        raise invalid(field)
    return value


def optional_text(body: dict[str, Any], field: str, *, max_len: int) -> str:
    if body.get(field) in (None, ""):
        return ""
    return text(body, field, max_len=max_len)


def shortcode(body: dict[str, Any], field: str) -> str:
    value = text(body, field, max_len=9)
    if not SHORTCODE.fullmatch(value):
        raise invalid(field)
    return value


def msisdn(body: dict[str, Any], field: str) -> str:
    """12 digits, ``2547XXXXXXXX`` or ``2541XXXXXXXX``: no ``+``, no leading ``0``."""
    value = text(body, field, max_len=12)
    if not MSISDN.fullmatch(value):
        raise invalid(field)
    return value


def amount(body: dict[str, Any], *, low: int, high: int) -> int:
    """Whole shillings, as a JSON integer or a string of digits; ``1.5``, ``"1.5"``, ``1.0``
    and ``true`` are all "Invalid Amount"."""
    value = body.get("Amount")
    if isinstance(value, bool):
        raise invalid("Amount")
    if isinstance(value, int):
        shillings = value
    elif isinstance(value, str) and ascii_digits(value):
        shillings = int(value)
    else:
        raise invalid("Amount")
    if not low <= shillings <= high:
        raise invalid("Amount")
    return shillings


def timestamp(body: dict[str, Any]) -> str:
    value = text(body, "Timestamp", max_len=14)
    if not TIMESTAMP.fullmatch(value):
        raise invalid("Timestamp")
    try:
        datetime.datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise invalid("Timestamp") from None
    return value


def url(body: dict[str, Any], field: str, *, block_words: bool = False) -> str:
    value = text(body, field, max_len=2_048)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise invalid(field)
    if block_words and any(word in value.lower() for word in BLOCKED_URL_WORDS):
        raise invalid(field)
    return value


def choice(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = body.get(field)
    if value not in allowed:
        raise invalid(field)
    assert isinstance(value, str)
    return value
