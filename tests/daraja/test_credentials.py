"""The STK Password, the Nairobi timestamp and the B2C SecurityCredential."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from nishati_oracle.daraja import (
    DarajaConfigError,
    nairobi_timestamp,
    security_credential,
    stk_password,
)
from tests.daraja.fake import (
    INITIATOR_PASSWORD,
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
    self_signed_cert,
)

# Daraja's own published example: shortcode 174379, the sandbox passkey, 2016-02-16 16:56:27.
PUBLISHED_EXAMPLE = (
    "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQy"
    "YzkxOTIwMTYwMjE2MTY1NjI3"
)


def test_password_matches_darajas_published_example() -> None:
    password = stk_password(SANDBOX_SHORTCODE, SANDBOX_PASSKEY, "20160216165627")
    assert password == PUBLISHED_EXAMPLE
    assert base64.b64decode(password).decode() == f"174379{SANDBOX_PASSKEY}20160216165627"


@pytest.mark.parametrize(
    ("utc", "nairobi"),
    [
        # The UTC day has not turned, Nairobi's has (and the year with it).
        (dt.datetime(2024, 12, 31, 21, 0, 0, tzinfo=dt.UTC), "20250101000000"),
        (dt.datetime(2024, 12, 31, 20, 59, 59, tzinfo=dt.UTC), "20241231235959"),
        # UTC midnight is 03:00 in Nairobi.
        (dt.datetime(2025, 3, 1, 0, 0, 0, tzinfo=dt.UTC), "20250301030000"),
        # Nairobi is on the leap day while UTC is still on the 28th.
        (dt.datetime(2024, 2, 28, 22, 15, 5, tzinfo=dt.UTC), "20240229011505"),
    ],
)
def test_timestamp_is_nairobi_time(utc: dt.datetime, nairobi: str) -> None:
    assert nairobi_timestamp(utc) == nairobi


def test_timestamp_from_another_zone_is_converted() -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    assert nairobi_timestamp(dt.datetime(2024, 12, 31, 16, 0, tzinfo=new_york)) == "20250101000000"


def test_timestamp_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        nairobi_timestamp(dt.datetime(2025, 1, 1, 0, 0))


def test_security_credential_decrypts_with_the_private_key(tmp_path: Path) -> None:
    pair = self_signed_cert()
    cert_file = tmp_path / "daraja.cer"
    cert_file.write_bytes(pair.pem)
    for source in (pair.pem, cert_file):
        credential = security_credential(INITIATOR_PASSWORD, source)
        encrypted = base64.b64decode(credential)
        assert len(encrypted) == 256  # one RSA-2048 block
        decrypted = pair.key.decrypt(encrypted, padding.PKCS1v15())
        assert decrypted == INITIATOR_PASSWORD.encode()  # the password alone, nothing appended


def test_security_credential_refuses_a_bad_certificate(tmp_path: Path) -> None:
    with pytest.raises(DarajaConfigError, match=r"not an X\.509"):
        security_credential("pw", b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
    with pytest.raises(DarajaConfigError, match="cannot read"):
        security_credential("pw", tmp_path / "missing.cer")
