"""Kenyan M-Pesa phone numbers, and the salted commitment the chain keeps instead of them.

A household's phone number never goes on chain: its account holds ``SHA-256(salt ‖ number)``,
the number in its normal form ``254XXXXXXXXX``. The salt is the oracle's secret
(``NISHATI_PHONE_SALT``, hex); without it nobody can test a guessed number against a commitment.
Logs show numbers only through :func:`mask`.
"""

from __future__ import annotations

import hashlib
import re

from nishati_client.config import ClientSettings
from nishati_client.errors import NishatiClientError

# 07XXXXXXXX and 01XXXXXXXX at home, 2547.../2541... (with or without "+") in international form;
# ASCII digits only (``\d`` would match Arabic-Indic and full-width ones too).
_MOBILE = re.compile(r"(?:\+?254|0)([17][0-9]{8})")
_SEPARATORS = re.compile(r"[ \-]")
MIN_SALT_BYTES = 16
FORMATS = "07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 2547XXXXXXXX"


class InvalidPhoneNumber(NishatiClientError, ValueError):
    """Not a Kenyan mobile number in a recognised form."""


class InvalidPhoneSalt(NishatiClientError, ValueError):
    """``NISHATI_PHONE_SALT`` is missing, not hex, or too short."""


def normalise(phone: str) -> str:
    """The number as ``254XXXXXXXXX``; spaces and dashes between digits are ignored, and digits
    other than 0-9 (Arabic-Indic, full-width, superscript) refused. The error does not repeat
    the input, which may be a real number."""
    compact = _SEPARATORS.sub("", phone.strip())
    match = _MOBILE.fullmatch(compact)
    if match is None:
        if any(char.isdigit() and not char.isascii() for char in compact):
            raise InvalidPhoneNumber(
                f"not a Kenyan mobile number: use the digits 0-9, as {FORMATS}"
            )
        raise InvalidPhoneNumber(f"not a Kenyan mobile number: use {FORMATS}")
    return "254" + match.group(1)


def commitment(salt: bytes, phone: str) -> bytes:
    """``SHA-256(salt ‖ normalised number)``: the 32 bytes a Household stores."""
    if len(salt) < MIN_SALT_BYTES:
        raise InvalidPhoneSalt(f"the phone salt must be at least {MIN_SALT_BYTES} bytes")
    return hashlib.sha256(salt + normalise(phone).encode("ascii")).digest()


def mask(phone: str) -> str:
    """The number for logs: ``2547****4149``; ``****`` for anything that is not a number."""
    try:
        number = normalise(phone)
    except InvalidPhoneNumber:
        return "****"
    return f"{number[:4]}****{number[-4:]}"


def salt_from_settings(settings: ClientSettings) -> bytes:
    """The salt from ``NISHATI_PHONE_SALT``; errors never show its value."""
    if settings.phone_salt is None:
        raise InvalidPhoneSalt("NISHATI_PHONE_SALT is not set (hex, at least 16 bytes)")
    try:
        salt = bytes.fromhex(settings.phone_salt.get_secret_value())
    except ValueError:
        raise InvalidPhoneSalt("NISHATI_PHONE_SALT is not hex") from None
    if len(salt) < MIN_SALT_BYTES:
        raise InvalidPhoneSalt(f"NISHATI_PHONE_SALT must be at least {MIN_SALT_BYTES} bytes")
    return salt
