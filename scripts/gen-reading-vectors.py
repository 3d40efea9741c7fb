#!/usr/bin/env python3
"""Writes docs/reading-vectors.json: signed readings and broken ones, with the error each gets.

Checks run in this order, so each case has one answer: length, magic, version, market, signature,
meter key, counter, timestamp order, clock skew, cumulative values.

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


def main() -> None:
    meter = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    other_meter = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))

    def public(key: Ed25519PrivateKey) -> str:
        return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

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
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
