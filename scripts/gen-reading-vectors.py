#!/usr/bin/env python3
"""Writes docs/reading-vectors.json: signed readings and broken ones, with the error each gets,
and beside them (under ``registration``) meter registration messages, good and broken.

Reading checks run in this order, so each case has one answer: length, magic, version, market,
signature, meter key, counter, timestamp order, clock skew, cumulative values. A registration
message is compared whole with the one expected for its market, household and meter key.

Deterministic (fixed test seeds, and Ed25519 signatures are deterministic), so rerunning it
changes nothing unless this script changes. Stdlib plus `cryptography`; run it from the venv.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OUT = Path(__file__).resolve().parents[1] / "docs" / "reading-vectors.json"
MAGIC = b"NSHR"
VERSION = 2
MARKET_TAG_LEN = 8
MARKET = bytes(range(1, 33))
OTHER_MARKET = bytes(range(101, 133))
NOW = 1_790_000_000
REGISTRATION_MAGIC = b"NSHM"
REGISTRATION_VERSION = 1
HOUSEHOLD = bytes(range(33, 65))
OTHER_HOUSEHOLD = bytes(range(133, 165))
# The Ed25519 instruction of one signed message: header, one offsets entry, then the payload.
ED25519_HEADER_LEN = 2
ED25519_OFFSETS_LEN = 14
THIS_INSTRUCTION = 0xFFFF


def reading(market: bytes, counter: int, timestamp: int, exported: int, imported: int) -> bytes:
    return (
        MAGIC
        + bytes([VERSION])
        + market[:MARKET_TAG_LEN]
        + struct.pack("<IIQQ", counter, timestamp, exported, imported)
    )


def reading_v1(market: bytes, counter: int, timestamp: int, exported: int, imported: int) -> bytes:
    """The 69-byte version 1 layout, which version 2 replaced."""
    return MAGIC + b"\x01" + market + struct.pack("<QqQQ", counter, timestamp, exported, imported)


def registration(market: bytes, household: bytes, meter: bytes) -> bytes:
    return REGISTRATION_MAGIC + bytes([REGISTRATION_VERSION]) + market + household + meter


def ed25519_instruction_data(signature: bytes, public_key: bytes, message: bytes) -> bytes:
    """One signature in the layout readings use, every offset into this instruction's data."""
    start = ED25519_HEADER_LEN + ED25519_OFFSETS_LEN
    offsets = struct.pack(
        "<7H",
        start,
        THIS_INSTRUCTION,
        start + len(signature),
        THIS_INSTRUCTION,
        start + len(signature) + len(public_key),
        len(message),
        THIS_INSTRUCTION,
    )
    return bytes([1, 0]) + offsets + signature + public_key + message


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public(key: Ed25519PrivateKey) -> str:
    return raw(key).hex()


def registration_vectors(
    meter: Ed25519PrivateKey, other_meter: Ed25519PrivateKey
) -> dict[str, Any]:
    """Registration messages for ``HOUSEHOLD`` in ``MARKET`` with ``meter``'s key, each with
    what the program answers in household_register (or household_set_meter)."""
    meter_key, other_key = raw(meter), raw(other_meter)

    def case(
        name: str,
        message: bytes,
        *,
        signer: Ed25519PrivateKey = meter,
        error: str | None = None,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "message": message.hex(),
            "signature": signer.sign(message).hex(),
            "public_key": public(signer),
            "error": error,
        }

    good = registration(MARKET, HOUSEHOLD, meter_key)
    valid = case("valid", good)
    valid["fields"] = {
        "magic": REGISTRATION_MAGIC.hex(),
        "version": REGISTRATION_VERSION,
        "market": MARKET.hex(),
        "household": HOUSEHOLD.hex(),
        "meter": meter_key.hex(),
    }
    valid["ed25519_instruction_data"] = ed25519_instruction_data(
        bytes.fromhex(valid["signature"]), meter_key, good
    ).hex()
    invalid = "InvalidMeterRegistration"
    # The expected message, its signature broken: only the signature check can refuse it.
    forged = case("signature does not verify", good, error="InvalidSignature")
    signature = bytearray(bytes.fromhex(forged["signature"]))
    signature[0] ^= 1
    forged["signature"] = signature.hex()
    cases = [
        valid,
        case("wrong magic", b"NSHX" + good[4:], error=invalid),
        case("a reading's magic", b"NSHR" + good[4:], error=invalid),
        case("unknown version", good[:4] + b"\x02" + good[5:], error=invalid),
        case("version 0", good[:4] + b"\x00" + good[5:], error=invalid),
        case("truncated", good[:-1], error=invalid),
        case("too long", good + b"\x00", error=invalid),
        case("another market", registration(OTHER_MARKET, HOUSEHOLD, meter_key), error=invalid),
        case("another household", registration(MARKET, OTHER_HOUSEHOLD, meter_key), error=invalid),
        case(
            "names another meter key",
            registration(MARKET, HOUSEHOLD, other_key),
            error=invalid,
        ),
        case("signed by another meter key", good, signer=other_meter, error=invalid),
        forged,
    ]
    return {
        "description": (
            "Meter registration messages, version 1 (docs/reading-format.md). Each case is a "
            "`message` with the `signature` over it by `public_key`, the key the Ed25519 "
            "instruction carries, checked against the registration of `meter_public_key` to "
            "`household` in `market`: valid only if the message is exactly the expected 101 "
            "bytes and `public_key` is the meter key. `error` is the program's name for what "
            "is wrong (null if valid). On chain the Ed25519 program refuses InvalidSignature "
            "first, and a message of another length does not fit the pinned Ed25519 layout, "
            "which the program refuses as InvalidEd25519Instruction. The valid case also "
            "gives its fields and the data of the Ed25519 instruction that carries it."
        ),
        "market": MARKET.hex(),
        "household": HOUSEHOLD.hex(),
        "meter_seed": (bytes([7] * 32)).hex(),
        "meter_public_key": meter_key.hex(),
        "message_len": len(good),
        "cases": cases,
    }


def main() -> None:
    meter = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    other_meter = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))

    def case(
        name: str,
        message: bytes,
        *,
        signer: Ed25519PrivateKey = meter,
        last: tuple[int, int, int, int] | None = (41, NOW - 60, 12_000, 3_000),
        error: str | None = None,
        fields: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": name,
            "message": message.hex(),
            "signature": signer.sign(message).hex(),
            "meter_public_key": public(signer),
            "last": None
            if last is None
            else dict(
                zip(("counter", "timestamp", "exported_wh", "imported_wh"), last, strict=True)
            ),
            "now": NOW,
            "error": error,
        }
        if fields is not None:
            entry["fields"] = fields
        return entry

    good = reading(MARKET, 42, NOW - 5, 12_480, 3_150)
    cases = [
        case(
            "valid",
            good,
            fields={
                "counter": 42,
                "timestamp": NOW - 5,
                "exported_wh": 12_480,
                "imported_wh": 3_150,
            },
        ),
        case(
            "valid first reading of a meter",
            reading(MARKET, 1, NOW, 987_654_321, 0),
            last=None,
            fields={"counter": 1, "timestamp": NOW, "exported_wh": 987_654_321, "imported_wh": 0},
        ),
        case(
            "valid at the skew limit",
            reading(MARKET, 42, NOW + 300, 12_000, 3_000),
            fields={
                "counter": 42,
                "timestamp": NOW + 300,
                "exported_wh": 12_000,
                "imported_wh": 3_000,
            },
        ),
        case("truncated", good[:-1], error="InvalidReadingLength"),
        case("too long", good + b"\x00", error="InvalidReadingLength"),
        case("wrong magic", b"NSHX" + good[4:], error="InvalidReadingMagic"),
        case("unknown version", good[:4] + b"\x03" + good[5:], error="UnsupportedReadingVersion"),
        case(
            "version 1 with a version 2 length",
            good[:4] + b"\x01" + good[5:],
            error="UnsupportedReadingVersion",
        ),
        case(
            "version 1 layout",
            reading_v1(MARKET, 42, NOW - 5, 12_480, 3_150),
            error="InvalidReadingLength",
        ),
        case(
            "another market",
            reading(OTHER_MARKET, 42, NOW, 12_480, 3_150),
            error="ReadingForAnotherMarket",
        ),
        case(
            "largest counter",
            reading(MARKET, 2**32 - 1, NOW, 12_480, 3_150),
            fields={
                "counter": 2**32 - 1,
                "timestamp": NOW,
                "exported_wh": 12_480,
                "imported_wh": 3_150,
            },
        ),
        case("replayed counter", reading(MARKET, 41, NOW, 12_480, 3_150), error="ReadingReplayed"),
        case("counter behind", reading(MARKET, 7, NOW, 12_480, 3_150), error="ReadingReplayed"),
        case(
            "timestamp before the last",
            reading(MARKET, 42, NOW - 61, 12_480, 3_150),
            error="ReadingOutOfOrder",
        ),
        case(
            "from the future",
            reading(MARKET, 42, NOW + 301, 12_480, 3_150),
            error="ReadingFromTheFuture",
        ),
        case(
            "export went backwards",
            reading(MARKET, 42, NOW, 11_999, 3_150),
            error="MeterWentBackwards",
        ),
        case(
            "import went backwards",
            reading(MARKET, 42, NOW, 12_480, 2_999),
            error="MeterWentBackwards",
        ),
    ]
    tampered = case("tampered after signing", good, error="InvalidSignature")
    tampered["message"] = reading(MARKET, 42, NOW - 5, 99_999, 3_150).hex()
    cases += [
        tampered,
        case("signed by another meter", good, signer=other_meter, error="MeterMismatch"),
    ]

    registrations = registration_vectors(meter, other_meter)
    document = {
        "description": (
            "Signed meter readings, version 2 (docs/reading-format.md). Each case is checked "
            "against `market`, the meter's last accepted reading `last` (null: none yet) and the "
            "clock `now`, for a household whose meter is `registered_meter_public_key`. `error` "
            "is the name the program and the oracle report, null if valid. InvalidSignature is "
            "caught by the Ed25519 program on chain and by the oracle off chain."
        ),
        "market": MARKET.hex(),
        "max_clock_skew_secs": 300,
        "registered_meter_seed": (bytes([7] * 32)).hex(),
        "registered_meter_public_key": public(meter),
        "cases": cases,
        "registration": registrations,
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"wrote {len(cases)} reading and {len(registrations['cases'])} registration cases to {OUT}"
    )


if __name__ == "__main__":
    main()
