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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from nishati_client.ed25519 import ED25519_OFFSETS_LEN as ED25519_OFFSETS_LEN
from nishati_client.ed25519 import ED25519_PROGRAM_ID as ED25519_PROGRAM_ID
from nishati_client.ed25519 import PUBLIC_KEY_LEN as PUBLIC_KEY_LEN
from nishati_client.ed25519 import SIGNATURE_LEN as SIGNATURE_LEN
from nishati_client.ed25519 import Signed, verify, verify_many
from nishati_client.ed25519 import ed25519_instruction as signatures_instruction
from nishati_client.errors import ERROR_CODES, NishatiClientError

READING_MAGIC = b"NSHR"
READING_VERSION = 2
READING_LEN = 37
# A reading names its market by the first bytes of the market's address.
MARKET_TAG_LEN = 8
MAX_CLOCK_SKEW_SECS = 300
SIGNED_READING_LEN = SIGNATURE_LEN + PUBLIC_KEY_LEN + READING_LEN

# magic, version, market tag, then counter, timestamp, exported_wh, imported_wh.
_BODY = struct.Struct("<IIQQ")
_BODY_OFFSET = len(READING_MAGIC) + 1 + MARKET_TAG_LEN


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


class ReadingBeforeMeterRegistered(ReadingError):
    """The timestamp is before the chain time the meter was registered (``meter_since``)."""


class ExportAboveMeterLimit(ReadingError):
    """The export to mint is more than the market's ``max_export_watts`` over the chain time
    since the meter's last attestation."""


# The program's u64 arithmetic: the allowance saturates rather than overflow.
_U64_MAX = 2**64 - 1
SECS_PER_HOUR = 3_600


def export_allowance_wh(max_export_watts: int, elapsed_secs: int) -> int:
    """The most Wh an attestation may mint ``elapsed_secs`` of chain time after the meter's
    last one, as the program computes it (``max_export_watts * elapsed / 3600``, the product
    saturating at ``u64::MAX``; no time, or time going back, allows nothing)."""
    return min(max_export_watts * max(elapsed_secs, 0), _U64_MAX) // SECS_PER_HOUR


def export_secs(wh: int, max_export_watts: int) -> int:
    """The chain time after a meter's last attestation from which ``wh`` may be minted."""
    return -(-wh * SECS_PER_HOUR // max_export_watts)


def check_export(minted_wh: int, max_export_watts: int, elapsed_secs: int) -> None:
    """Raises :class:`ExportAboveMeterLimit` unless ``minted_wh`` is within the allowance."""
    allowance = export_allowance_wh(max_export_watts, elapsed_secs)
    if minted_wh > allowance:
        raise ExportAboveMeterLimit(
            f"{minted_wh} Wh is more than {max_export_watts} W allows over {elapsed_secs} s "
            f"({allowance} Wh)"
        )


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
    """Raises :class:`InvalidSignature` unless the signature verifies under ``signed.meter`` as
    the chain's Ed25519 program verifies it (:func:`nishati_client.ed25519.verify`)."""
    if not verify(bytes(signed.meter), signed.signature, signed.message):
        raise InvalidSignature(f"reading is not signed by {signed.meter}")


def signatures_valid(signed_readings: Sequence[SignedReading]) -> list[bool]:
    """Whether each reading's signature verifies, as :func:`verify_signature` decides, in one
    call (:func:`nishati_client.ed25519.verify_many`)."""
    return verify_many([(bytes(s.meter), s.signature, s.message) for s in signed_readings])


def _check_format(message: bytes, market: Pubkey) -> Reading:
    reading = Reading.decode(message)
    if not reading.is_for(market):
        raise ReadingForAnotherMarket(
            f"reading's market tag {reading.market_tag.hex()} is not {market}'s"
        )
    return reading


def _check_progress(
    reading: Reading,
    last: LastReading | None,
    not_before: int,
    now: int,
    max_skew: int,
    meter_since: int | None,
) -> None:
    if meter_since is not None and reading.timestamp < meter_since:
        raise ReadingBeforeMeterRegistered(
            f"timestamp {reading.timestamp} is before the meter's registration at {meter_since}"
        )
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
    meter_since: int | None = None,
) -> Reading:
    """The reading in ``message`` if it keeps every rule of the format, else the first broken
    rule's error. ``last`` is the meter's last accepted reading (``None``: this is its first);
    without one, ``not_before`` is the household's last accepted timestamp (a new meter's
    readings may not go back before its predecessor's), as the program checks it.
    ``meter_since``, the household's, refuses a reading dated before its meter's registration
    (checked first, as the program does)."""
    reading = _check_format(message, market)
    _check_progress(reading, last, not_before, now, max_skew, meter_since)
    return reading


def check_progress(
    reading: Reading,
    last: LastReading | None,
    now: int,
    max_skew: int = MAX_CLOCK_SKEW_SECS,
    not_before: int = 0,
    meter_since: int | None = None,
) -> None:
    """:func:`check`'s rules after the format, for a reading already decoded and its market
    checked: registration time, counter, time order, skew, cumulative values (the first
    broken rule's error)."""
    _check_progress(reading, last, not_before, now, max_skew, meter_since)


def check_signed(
    signed: SignedReading,
    registered_meter: Pubkey,
    market: Pubkey,
    last: LastReading | None,
    now: int,
    max_skew: int = MAX_CLOCK_SKEW_SECS,
    not_before: int = 0,
    meter_since: int | None = None,
) -> Reading:
    """:func:`check` with the signature and the household's meter key checked after the
    message's format and before its counter, as ``docs/reading-vectors.json`` orders them."""
    reading = _check_format(signed.message, market)
    verify_signature(signed)
    if signed.meter != registered_meter:
        raise MeterMismatch(f"reading is signed by {signed.meter}, not {registered_meter}")
    _check_progress(reading, last, not_before, now, max_skew, meter_since)
    return reading


def ed25519_instruction(signed_readings: Sequence[SignedReading]) -> Instruction:
    """The Ed25519-program instruction verifying ``signed_readings`` for ``meter_attest``
    (:func:`nishati_client.ed25519.ed25519_instruction`'s layout, each message 37 bytes)."""
    for signed in signed_readings:
        if len(signed.message) != READING_LEN:
            raise InvalidReadingLength(f"reading is {len(signed.message)} bytes, not {READING_LEN}")
    return signatures_instruction(
        [Signed(s.signature, s.meter, s.message) for s in signed_readings]
    )


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
