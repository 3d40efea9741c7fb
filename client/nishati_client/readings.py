"""Signed meter readings (``docs/reading-format.md``): encoding, signing, the rules, and the
Ed25519-program instruction that carries them to ``meter_attest``.

The error classes are named as the program's errors in the IDL (checked when each is defined), so
the oracle reports what the chain would; ``InvalidSignature`` is the one the Ed25519 program
raises on chain instead.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature as BadEd25519Signature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from nishati_client.errors import ERROR_CODES, NishatiClientError

READING_MAGIC = b"NSHR"
READING_VERSION = 2
READING_LEN = 37
# A reading names its market by the first bytes of the market's address.
MARKET_TAG_LEN = 8
MAX_CLOCK_SKEW_SECS = 300
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32

ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
# Offsets entries refer to the Ed25519 instruction's own data with this instruction index.
THIS_INSTRUCTION = 0xFFFF
ED25519_HEADER_LEN = 2
ED25519_OFFSETS_LEN = 14
SIGNED_READING_LEN = SIGNATURE_LEN + PUBLIC_KEY_LEN + READING_LEN

# magic, version, market tag, then counter, timestamp, exported_wh, imported_wh.
_BODY = struct.Struct("<IIQQ")
_BODY_OFFSET = len(READING_MAGIC) + 1 + MARKET_TAG_LEN
_OFFSETS = struct.Struct("<7H")


class ReadingError(NishatiClientError):
    """A reading broke a rule; ``name`` is the error the program reports for it."""

    # Raised by the Ed25519 program on chain, so not one of the Nishati program's errors.
    OFF_CHAIN_NAMES: ClassVar[frozenset[str]] = frozenset({"InvalidSignature"})
    name: ClassVar[str]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if cls.__name__ not in ERROR_CODES and cls.__name__ not in cls.OFF_CHAIN_NAMES:
            raise TypeError(f"{cls.__name__} is not an error of the program's IDL")
        cls.name = cls.__name__


class InvalidReadingLength(ReadingError):
    """The message is not 37 bytes."""


class InvalidReadingMagic(ReadingError):
    """The message does not start with ``NSHR``."""


class UnsupportedReadingVersion(ReadingError):
    """The message is not version 2."""


class ReadingForAnotherMarket(ReadingError):
    """The reading's market tag is not the market's."""


class InvalidSignature(ReadingError):
    """The signature does not verify under the public key it came with."""


class MeterMismatch(ReadingError):
    """The signing key is not the household's registered meter."""


class ReadingReplayed(ReadingError):
    """The counter is not above the last accepted one."""


class ReadingOutOfOrder(ReadingError):
    """The timestamp is before the last accepted one."""


class ReadingFromTheFuture(ReadingError):
    """The timestamp is more than the allowed skew ahead of the clock."""


class MeterWentBackwards(ReadingError):
    """A cumulative value is below the last accepted one."""


def market_tag(market: Pubkey) -> bytes:
    """How a reading names ``market``."""
    return bytes(market)[:MARKET_TAG_LEN]


@dataclass(frozen=True)
class Reading:
    """One meter reading; energy in cumulative Wh, time in Unix seconds."""

    market_tag: bytes
    counter: int
    timestamp: int
    exported_wh: int
    imported_wh: int

    @classmethod
    def for_market(
        cls, market: Pubkey, counter: int, timestamp: int, exported_wh: int, imported_wh: int
    ) -> Reading:
        return cls(market_tag(market), counter, timestamp, exported_wh, imported_wh)

    def is_for(self, market: Pubkey) -> bool:
        return self.market_tag == market_tag(market)

    def encode(self) -> bytes:
        """The 37-byte message a meter signs; :class:`ValueError` when a field does not fit."""
        if len(self.market_tag) != MARKET_TAG_LEN:
            raise ValueError(f"market tag is {len(self.market_tag)} bytes, not {MARKET_TAG_LEN}")
        try:
            body = _BODY.pack(self.counter, self.timestamp, self.exported_wh, self.imported_wh)
        except struct.error as e:
            raise ValueError(f"reading does not fit the format: {e}") from None
        return READING_MAGIC + bytes([READING_VERSION]) + self.market_tag + body

    @classmethod
    def decode(cls, message: bytes) -> Reading:
        """Parses a message, checking its length, magic and version in that order."""
        if len(message) != READING_LEN:
            raise InvalidReadingLength(f"reading is {len(message)} bytes, not {READING_LEN}")
        if message[: len(READING_MAGIC)] != READING_MAGIC:
            raise InvalidReadingMagic(f"reading starts with {message[:4].hex()}, not NSHR")
        version = message[len(READING_MAGIC)]
        if version != READING_VERSION:
            raise UnsupportedReadingVersion(f"reading version {version} is not supported")
        tag = message[len(READING_MAGIC) + 1 : _BODY_OFFSET]
        counter, timestamp, exported_wh, imported_wh = _BODY.unpack(message[_BODY_OFFSET:])
        return cls(tag, counter, timestamp, exported_wh, imported_wh)


@dataclass(frozen=True)
class LastReading:
    """What the chain keeps of a meter's last accepted reading."""

    counter: int
    timestamp: int
    exported_wh: int
    imported_wh: int


@dataclass(frozen=True)
class SignedReading:
    """A reading message as a meter sent it, with its signature and the meter's public key."""

    message: bytes
    signature: bytes
    meter: Pubkey

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_LEN:
            raise ValueError(f"signature is {len(self.signature)} bytes, not {SIGNATURE_LEN}")


def meter_public_key(private_key: Ed25519PrivateKey) -> Pubkey:
    """The meter key as the chain stores it."""
    return Pubkey.from_bytes(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign(reading: Reading, private_key: Ed25519PrivateKey) -> SignedReading:
    """Signs a reading as a meter does (pure Ed25519 over the 37-byte message)."""
    message = reading.encode()
    return SignedReading(message, private_key.sign(message), meter_public_key(private_key))


def verify_signature(signed: SignedReading) -> None:
    """Raises :class:`InvalidSignature` unless the signature verifies under ``signed.meter``."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes(signed.meter)).verify(
            signed.signature, signed.message
        )
    except BadEd25519Signature:
        raise InvalidSignature(f"reading is not signed by {signed.meter}") from None


def _check_format(message: bytes, market: Pubkey) -> Reading:
    reading = Reading.decode(message)
    if not reading.is_for(market):
        raise ReadingForAnotherMarket(
            f"reading's market tag {reading.market_tag.hex()} is not {market}'s"
        )
    return reading


def _check_progress(
    reading: Reading, last: LastReading | None, not_before: int, now: int, max_skew: int
) -> None:
    if last is not None and reading.counter <= last.counter:
        raise ReadingReplayed(f"counter {reading.counter} is not above {last.counter}")
    floor = last.timestamp if last is not None else not_before
    if reading.timestamp < floor:
        raise ReadingOutOfOrder(f"timestamp {reading.timestamp} is before {floor}")
    if reading.timestamp > now + max_skew:
        raise ReadingFromTheFuture(
            f"timestamp {reading.timestamp} is more than {max_skew} s after {now}"
        )
    if last is not None and (
        reading.exported_wh < last.exported_wh or reading.imported_wh < last.imported_wh
    ):
        raise MeterWentBackwards(
            f"reading ({reading.exported_wh}, {reading.imported_wh}) Wh is below the last "
            f"({last.exported_wh}, {last.imported_wh}) Wh"
        )


def check(
    message: bytes,
    market: Pubkey,
    last: LastReading | None,
    now: int,
    max_skew: int = MAX_CLOCK_SKEW_SECS,
    not_before: int = 0,
) -> Reading:
    """The reading in ``message`` if it keeps every rule of the format, else the first broken
    rule's error. ``last`` is the meter's last accepted reading (``None``: this is its first);
    without one, ``not_before`` is the household's last accepted timestamp (a new meter's
    readings may not go back before its predecessor's), as the program checks it."""
    reading = _check_format(message, market)
    _check_progress(reading, last, not_before, now, max_skew)
    return reading


def check_progress(
    reading: Reading,
    last: LastReading | None,
    now: int,
    max_skew: int = MAX_CLOCK_SKEW_SECS,
    not_before: int = 0,
) -> None:
    """:func:`check`'s rules after the format, for a reading already decoded and its market
    checked: counter, time order, skew, cumulative values (the first broken rule's error)."""
    _check_progress(reading, last, not_before, now, max_skew)


def check_signed(
    signed: SignedReading,
    registered_meter: Pubkey,
    market: Pubkey,
    last: LastReading | None,
    now: int,
    max_skew: int = MAX_CLOCK_SKEW_SECS,
    not_before: int = 0,
) -> Reading:
    """:func:`check` with the signature and the household's meter key checked after the
    message's format and before its counter, as ``docs/reading-vectors.json`` orders them."""
    reading = _check_format(signed.message, market)
    verify_signature(signed)
    if signed.meter != registered_meter:
        raise MeterMismatch(f"reading is signed by {signed.meter}, not {registered_meter}")
    _check_progress(reading, last, not_before, now, max_skew)
    return reading


def ed25519_instruction(signed_readings: Sequence[SignedReading]) -> Instruction:
    """The Ed25519-program instruction verifying ``signed_readings``, laid out as the format
    requires: every offset points into this instruction's own data."""
    count = len(signed_readings)
    if not 1 <= count <= 255:
        raise ValueError(f"an Ed25519 instruction carries 1 to 255 signatures, not {count}")
    for signed in signed_readings:
        if len(signed.message) != READING_LEN:
            raise InvalidReadingLength(f"reading is {len(signed.message)} bytes, not {READING_LEN}")
    data_start = ED25519_HEADER_LEN + ED25519_OFFSETS_LEN * count
    offsets = b"".join(
        _OFFSETS.pack(
            start,
            THIS_INSTRUCTION,
            start + SIGNATURE_LEN,
            THIS_INSTRUCTION,
            start + SIGNATURE_LEN + PUBLIC_KEY_LEN,
            READING_LEN,
            THIS_INSTRUCTION,
        )
        for start in (data_start + i * SIGNED_READING_LEN for i in range(count))
    )
    payload = b"".join(s.signature + bytes(s.meter) + s.message for s in signed_readings)
    return Instruction(ED25519_PROGRAM_ID, bytes([count, 0]) + offsets + payload, [])


class ReadingsFileError(NishatiClientError, ValueError):
    """A readings file is not in the format :func:`dump_readings` writes."""


READINGS_FILE_VERSION = 1


def dump_readings(readings: Sequence[SignedReading]) -> str:
    """Signed readings as a JSON document: what a meter sent, hex-encoded, for ``attest``."""
    entries = [
        {"meter": str(r.meter), "message": r.message.hex(), "signature": r.signature.hex()}
        for r in readings
    ]
    return json.dumps({"version": READINGS_FILE_VERSION, "readings": entries}, indent=2) + "\n"


def load_readings(text: str) -> list[SignedReading]:
    """The signed readings of a document :func:`dump_readings` wrote (not yet checked)."""
    try:
        document: Any = json.loads(text)
        if document.get("version") != READINGS_FILE_VERSION:
            raise ReadingsFileError(f"readings file version is not {READINGS_FILE_VERSION}")
        return [
            SignedReading(
                bytes.fromhex(entry["message"]),
                bytes.fromhex(entry["signature"]),
                Pubkey.from_string(entry["meter"]),
            )
            for entry in document["readings"]
        ]
    except ReadingsFileError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ReadingsFileError(f"not a readings file: {type(error).__name__} {error}") from None
