"""Phone numbers: normal form, the salted commitment, masking, and the secret salt."""

from __future__ import annotations

import hashlib
import logging

import pytest
from pydantic import SecretStr

from nishati_client.config import ClientSettings
from nishati_client.phone import (
    InvalidPhoneNumber,
    InvalidPhoneSalt,
    commitment,
    mask,
    normalise,
    salt_from_settings,
)
from tests.client.support import OTHER_DIGITS, written_in

SALT = bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize(
    "written",
    ["0712345678", "+254712345678", "254712345678", " 0712 345 678 ", "0712-345-678"],
)
def test_safaricom_07_numbers_in_every_form(written: str) -> None:
    assert normalise(written) == "254712345678"


@pytest.mark.parametrize("written", ["0110123456", "+254110123456", "254110123456"])
def test_the_newer_01_numbers(written: str) -> None:
    assert normalise(written) == "254110123456"


@pytest.mark.parametrize(
    "written",
    [
        "",
        "712345678",  # no prefix
        "07123456789",  # a digit too many
        "071234567",  # a digit too few
        "0212345678",  # a Nairobi landline
        "+255712345678",  # Tanzania
        "+2540712345678",  # the trunk 0 kept after the country code
        "0712345abc",
        "0712.345.678",
    ],
)
def test_anything_else_is_refused_without_repeating_it(written: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as refused:
        normalise(written)
    assert str(refused.value) == (
        "not a Kenyan mobile number: use 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 2547XXXXXXXX"
    )
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    "written",
    [
        *(written_in(script, "0712345678") for script in OTHER_DIGITS),
        "+" + written_in("full-width", "254") + "712345678",  # only the country code
        "07123456" + written_in("arabic-indic", "78"),  # only the last two
    ],
)
def test_digits_other_than_0_to_9_are_refused(written: str) -> None:
    """``\\d`` matches them; the normal form, its hash and the chain take ASCII only."""
    with pytest.raises(InvalidPhoneNumber) as refused:
        normalise(written)
    assert str(refused.value) == (
        "not a Kenyan mobile number: use the digits 0-9, as 07XXXXXXXX, 01XXXXXXXX, "
        "+2547XXXXXXXX or 2547XXXXXXXX"
    )
    with pytest.raises(InvalidPhoneNumber):
        commitment(SALT, written)
    assert mask(written) == "****"


def test_the_commitment_is_sha256_of_salt_and_normal_form() -> None:
    expected = hashlib.sha256(SALT + b"254712345678").digest()
    assert commitment(SALT, "0712345678") == expected
    assert commitment(SALT, "+254 712 345 678") == expected
    assert commitment(SALT, "0712345679") != expected
    assert commitment(b"\x01" * 16, "0712345678") != expected


def test_a_short_salt_is_refused() -> None:
    with pytest.raises(InvalidPhoneSalt):
        commitment(b"short", "0712345678")


def test_mask_keeps_the_prefix_and_the_last_four_digits() -> None:
    assert mask("0712344149") == "2547****4149"
    assert mask("+254110123456") == "2541****3456"
    assert mask("not a number") == "****"


def test_the_salt_comes_from_the_settings_and_never_shows(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NISHATI_PHONE_SALT", SALT.hex())
    settings = ClientSettings()
    assert salt_from_settings(settings) == SALT
    logging.getLogger("test").warning("settings: %s", settings)
    assert SALT.hex() not in repr(settings)
    assert SALT.hex() not in caplog.text


@pytest.mark.parametrize(
    ("value", "problem"),
    [(None, "not set"), ("zz" * 16, "not hex"), ("00" * 8, "at least 16 bytes")],
)
def test_a_missing_or_bad_salt_is_refused_without_showing_it(
    value: str | None, problem: str
) -> None:
    settings = ClientSettings(phone_salt=None if value is None else SecretStr(value))
    with pytest.raises(InvalidPhoneSalt, match=problem) as refused:
        salt_from_settings(settings)
    if value:
        assert value not in str(refused.value)
