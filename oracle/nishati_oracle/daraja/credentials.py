"""The two derived secrets Daraja asks for: the STK ``Password`` and the B2C
``SecurityCredential``, and the Nairobi timestamp the first is built from."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nishati_oracle.daraja.errors import DarajaConfigError


def _nairobi() -> timezone | ZoneInfo:
    """Africa/Nairobi; Kenya has kept UTC+3 without daylight saving since 1942, so a host
    without tz data gets the fixed offset rather than a crash."""
    try:
        return ZoneInfo("Africa/Nairobi")
    except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host
        return timezone(timedelta(hours=3), "EAT")


NAIROBI = _nairobi()


def nairobi_timestamp(now: datetime) -> str:
    """``YYYYMMDDHHmmss`` in Nairobi time: Daraja checks it against its own clock, which is
    Kenyan, not the host's. ``now`` must be timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def parse_nairobi_time(value: str, fmt: str) -> datetime:
    """A Daraja local time string as an aware datetime in Nairobi."""
    return datetime.strptime(value, fmt).replace(tzinfo=NAIROBI)


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """``base64(BusinessShortCode + Passkey + Timestamp)``, plain concatenation."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode("ascii")).decode("ascii")


def load_certificate(certificate: Path | bytes) -> x509.Certificate:
    """Safaricom's certificate, from a path or bytes, PEM or DER (their ``.cer`` files are
    PEM, but a DER copy is easy to end up with)."""
    try:
        data = certificate.read_bytes() if isinstance(certificate, Path) else certificate
    except OSError as e:
        raise DarajaConfigError(f"cannot read the Daraja certificate: {e.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise DarajaConfigError("the Daraja certificate is not an X.509 certificate") from None


def security_credential(initiator_password: str, certificate: Path | bytes) -> str:
    """``base64(RSA-PKCS#1 v1.5-encrypt(initiator password))`` with the certificate's key.

    The password alone is encrypted; nothing (no timestamp) is appended to it. PKCS#1 v1.5 is
    randomised, so two calls give different strings; each decrypts to the same password."""
    public_key = load_certificate(certificate).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise DarajaConfigError("the Daraja certificate does not hold an RSA key")
    encrypted = public_key.encrypt(initiator_password.encode("utf-8"), padding.PKCS1v15())
    return base64.b64encode(encrypted).decode("ascii")
