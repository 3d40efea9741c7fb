"""The meter registration vectors of docs/reading-vectors.json agree with the format they
describe (docs/reading-format.md), checked with nothing but `cryptography`."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nishati_client.errors import ERROR_CODES
from nishati_dev.paths import REPO_ROOT

DOCUMENT: dict[str, Any] = json.loads((REPO_ROOT / "docs" / "reading-vectors.json").read_text())
VECTORS: dict[str, Any] = DOCUMENT["registration"]
MARKET = bytes.fromhex(VECTORS["market"])
HOUSEHOLD = bytes.fromhex(VECTORS["household"])
METER = bytes.fromhex(VECTORS["meter_public_key"])


def expected_message() -> bytes:
    return b"NSHM" + bytes([1]) + MARKET + HOUSEHOLD + METER


def refusal(case: dict[str, Any]) -> str | None:
    """What the chain answers, in its order: the Ed25519 program's signature check, then the
    program's comparison with the message it expects for this market, household and meter."""
    message = bytes.fromhex(case["message"])
    public_key = bytes.fromhex(case["public_key"])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(case["signature"]), message
        )
    except InvalidSignature:
        return "InvalidSignature"
    if message != expected_message() or public_key != METER:
        return "InvalidMeterRegistration"
    return None


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    assert refusal(case) == case["error"]


def test_the_valid_message_is_the_documented_layout() -> None:
    valid = next(c for c in VECTORS["cases"] if c["error"] is None)
    message = bytes.fromhex(valid["message"])
    assert len(message) == VECTORS["message_len"] == 101
    fields = valid["fields"]
    assert message[:4] == bytes.fromhex(fields["magic"]) == b"NSHM"
    assert message[4] == fields["version"] == 1
    assert message[5:37].hex() == fields["market"] == VECTORS["market"]
    assert message[37:69].hex() == fields["household"] == VECTORS["household"]
    assert message[69:101].hex() == fields["meter"] == VECTORS["meter_public_key"]


def test_the_ed25519_instruction_pins_every_offset() -> None:
    valid = next(c for c in VECTORS["cases"] if c["error"] is None)
    data = bytes.fromhex(valid["ed25519_instruction_data"])
    assert len(data) == 2 + 14 + 64 + 32 + 101
    assert data[:2] == bytes([1, 0])
    assert struct.unpack_from("<7H", data, 2) == (16, 0xFFFF, 80, 0xFFFF, 112, 101, 0xFFFF)
    assert data[16:80].hex() == valid["signature"]
    assert data[80:112] == METER
    assert data[112:].hex() == valid["message"]


def test_the_meter_key_is_the_reading_vectors_meter() -> None:
    seed = bytes.fromhex(VECTORS["meter_seed"])
    key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert key.public_bytes(Encoding.Raw, PublicFormat.Raw) == METER
    assert VECTORS["meter_public_key"] == DOCUMENT["registered_meter_public_key"]


def test_every_error_but_the_signature_is_a_program_error() -> None:
    names = {c["error"] for c in VECTORS["cases"] if c["error"] is not None}
    assert names == {"InvalidMeterRegistration", "InvalidSignature"}
    assert "InvalidMeterRegistration" in ERROR_CODES
