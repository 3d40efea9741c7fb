"""What every way in (HTTP, MQTT) hands the pipeline, and what it gets back.

A reading is acknowledged only after :meth:`Pipeline.submit` returns, and that returns only once
every accepted reading is stored durably: a restart can never forget a reading it acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from solders.pubkey import Pubkey

# Where readings are POSTed; the simulator and the bench send there without loading the app.
READINGS_PATH = "/api/v1/readings"


@dataclass(frozen=True)
class Submission:
    """A reading as it arrived: the exact signed bytes, the signature, the meter's key."""

    message: bytes
    signature: bytes
    meter: Pubkey


class Status(StrEnum):
    accepted = "accepted"
    # The same reading again: acknowledged, stored and attested once.
    duplicate = "duplicate"
    rejected = "rejected"


class Reason(StrEnum):
    """Why a reading was refused: the program's error names where the chain has the same rule."""

    InvalidReadingLength = "InvalidReadingLength"
    InvalidReadingMagic = "InvalidReadingMagic"
    UnsupportedReadingVersion = "UnsupportedReadingVersion"
    ReadingForAnotherMarket = "ReadingForAnotherMarket"
    InvalidSignature = "InvalidSignature"
    MeterMismatch = "MeterMismatch"
    ReadingReplayed = "ReadingReplayed"
    ReadingOutOfOrder = "ReadingOutOfOrder"
    ReadingFromTheFuture = "ReadingFromTheFuture"
    MeterWentBackwards = "MeterWentBackwards"
    ReadingBeforeMeterRegistered = "ReadingBeforeMeterRegistered"
    ExportAboveMeterLimit = "ExportAboveMeterLimit"
    MintCeilingReached = "MintCeilingReached"
    UnknownMeter = "UnknownMeter"
    MalformedSubmission = "MalformedSubmission"
    # Transient: a meter seen for the first time while the chain is unreachable; send it again.
    ChainUnavailable = "ChainUnavailable"


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: Reason | None = None
    counter: int | None = None
    detail: str | None = None


class Pipeline(Protocol):
    async def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Verifies and durably stores a batch; one outcome per submission, in order."""
        ...
