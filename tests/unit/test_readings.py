"""The reading format against docs/reading-vectors.json, and the Ed25519 instruction layout."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.pubkey import Pubkey

from nishati_client.errors import ERROR_CODES
from nishati_client.readings import (
    ED25519_PROGRAM_ID,
    MARKET_TAG_LEN,
    MAX_CLOCK_SKEW_SECS,
    READING_LEN,
    ExportAboveMeterLimit,
    InvalidReadingLength,
    InvalidSignature,
    LastReading,
    Reading,
    ReadingBeforeMeterRegistered,
    ReadingError,
    ReadingOutOfOrder,
    SignedReading,
    check,
    check_export,
    check_signed,
    ed25519_instruction,
    export_allowance_wh,
    export_secs,
    meter_public_key,
    sign,
    verify_signature,
)
from nishati_dev.paths import REPO_ROOT

VECTORS: dict[str, Any] = json.loads((REPO_ROOT / "docs" / "reading-vectors.json").read_text())
MARKET = Pubkey.from_bytes(bytes.fromhex(VECTORS["market"]))
REGISTERED_METER = Pubkey.from_bytes(bytes.fromhex(VECTORS["registered_meter_public_key"]))
METER_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["registered_meter_seed"]))


def signed_reading(case: dict[str, Any]) -> SignedReading:
    return SignedReading(
        message=bytes.fromhex(case["message"]),
        signature=bytes.fromhex(case["signature"]),
        meter=Pubkey.from_bytes(bytes.fromhex(case["meter_public_key"])),
    )


def last_reading(case: dict[str, Any]) -> LastReading | None:
    return None if case["last"] is None else LastReading(**case["last"])


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    def run() -> Reading:
        return check_signed(
            signed_reading(case), REGISTERED_METER, MARKET, last_reading(case), case["now"]
        )

    if case["error"] is None:
        reading = run()
        assert reading.is_for(MARKET)
        fields = {k: getattr(reading, k) for k in case["fields"]}
        assert fields == case["fields"]
        assert reading.encode() == bytes.fromhex(case["message"])
    else:
        with pytest.raises(ReadingError) as refused:
            run()
        assert refused.value.name == case["error"]
        assert type(refused.value).__name__ == case["error"]


def test_vectors_use_the_documented_skew() -> None:
    assert VECTORS["max_clock_skew_secs"] == MAX_CLOCK_SKEW_SECS


def test_the_registered_meter_key_matches_its_seed() -> None:
    assert meter_public_key(METER_KEY) == REGISTERED_METER


def test_every_reading_error_but_the_signature_is_a_program_error() -> None:
    names = {case["error"] for case in VECTORS["cases"] if case["error"] is not None}
    assert names - set(ERROR_CODES) == {"InvalidSignature"}
    # The rules over the household's chain times, which a vector (a message, the last reading
    # and now) does not hold.
    chain_time = {"ReadingBeforeMeterRegistered", "ExportAboveMeterLimit"}
    assert {cls.name for cls in ReadingError.__subclasses__()} == names | chain_time


def test_an_error_class_not_in_the_idl_cannot_be_defined() -> None:
    with pytest.raises(TypeError, match="not an error of the program"):

        class ReadingTooSunny(ReadingError):  # pragma: no cover - refused at definition
            pass


def test_check_without_signature_accepts_a_valid_message() -> None:
    valid = VECTORS["cases"][0]
    reading = check(bytes.fromhex(valid["message"]), MARKET, last_reading(valid), valid["now"])
    assert reading.counter == valid["fields"]["counter"]


def test_check_follows_the_rule_order_without_signature() -> None:
    # Replayed counter and a timestamp in the future: the counter rule comes first.
    message = Reading.for_market(MARKET, 41, 2_000_000_000, 1, 1).encode()
    with pytest.raises(ReadingError) as refused:
        check(message, MARKET, LastReading(41, 0, 0, 0), now=0)
    assert refused.value.name == "ReadingReplayed"


def test_a_custom_skew_is_honoured() -> None:
    message = Reading.for_market(MARKET, 1, 1_010, 0, 0).encode()
    check(message, MARKET, None, now=1_000, max_skew=10)
    with pytest.raises(ReadingError) as refused:
        check(message, MARKET, None, now=1_000, max_skew=9)
    assert refused.value.name == "ReadingFromTheFuture"


@pytest.mark.parametrize(
    "reading",
    [
        Reading.for_market(MARKET, 0, 0, 0, 0),
        Reading.for_market(MARKET, 2**32 - 1, 2**32 - 1, 2**64 - 1, 2**64 - 1),
        Reading.for_market(Pubkey.new_unique(), 42, 1_790_000_000, 12_480, 3_150),
    ],
    ids=["zeros", "extremes", "typical"],
)
def test_encode_decode_round_trip(reading: Reading) -> None:
    message = reading.encode()
    assert len(message) == READING_LEN
    assert message[:5] == b"NSHR\x02"
    assert Reading.decode(message) == reading


@pytest.mark.parametrize(
    ("counter", "timestamp", "exported_wh"),
    [(2**32, 0, 0), (-1, 0, 0), (1, 2**32, 0), (1, -1, 0), (1, 0, 2**64)],
    ids=["counter too big", "negative counter", "after 2106", "before 1970", "export too big"],
)
def test_a_reading_that_does_not_fit_the_format_is_refused(
    counter: int, timestamp: int, exported_wh: int
) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Reading.for_market(MARKET, counter, timestamp, exported_wh, 0).encode()


def test_a_reading_names_its_market_by_the_tag() -> None:
    reading = Reading.decode(Reading.for_market(MARKET, 1, 0, 0, 0).encode())
    assert reading.market_tag == bytes(MARKET)[:MARKET_TAG_LEN]
    assert reading.is_for(MARKET)
    assert not reading.is_for(Pubkey.new_unique())


def test_sign_then_verify() -> None:
    reading = Reading.for_market(MARKET, 42, 1_789_999_995, 12_480, 3_150)
    signed = sign(reading, METER_KEY)
    assert signed.meter == REGISTERED_METER
    assert signed.signature == bytes.fromhex(VECTORS["cases"][0]["signature"])
    verify_signature(signed)
    tampered = SignedReading(signed.message[:-1] + b"\x01", signed.signature, signed.meter)
    with pytest.raises(InvalidSignature):
        verify_signature(tampered)


def test_a_signature_must_be_64_bytes() -> None:
    with pytest.raises(ValueError, match="64"):
        SignedReading(bytes(READING_LEN), bytes(63), REGISTERED_METER)


def readings(count: int) -> list[SignedReading]:
    keys = [Ed25519PrivateKey.from_private_bytes(bytes([i + 1] * 32)) for i in range(count)]
    return [
        sign(Reading.for_market(MARKET, i + 1, 1_790_000_000 + i, 1_000 * i, 10 * i), k)
        for i, k in enumerate(keys)
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_ed25519_instruction_layout(count: int) -> None:
    signed = readings(count)
    ix = ed25519_instruction(signed)
    data = bytes(ix.data)
    assert ix.program_id == ED25519_PROGRAM_ID
    assert ix.accounts == []
    assert data[0] == count
    assert data[1] == 0
    assert len(data) == 2 + 14 * count + 133 * count
    for i, reading in enumerate(signed):
        entry = struct.unpack_from("<7H", data, 2 + 14 * i)
        start = 2 + 14 * count + 133 * i
        assert entry == (start, 0xFFFF, start + 64, 0xFFFF, start + 96, 37, 0xFFFF)
        assert data[start : start + 64] == reading.signature
        assert data[start + 64 : start + 96] == bytes(reading.meter)
        assert data[start + 96 : start + 133] == reading.message


def test_ed25519_instruction_layout_of_one_reading_is_the_documented_one() -> None:
    data = bytes(ed25519_instruction(readings(1)).data)
    assert data[:16] == bytes.fromhex("01001000ffff5000ffff70002500ffff")


def test_ed25519_instruction_needs_readings_of_the_format() -> None:
    with pytest.raises(ValueError, match="1 to 255"):
        ed25519_instruction([])
    short = readings(1)[0]
    with pytest.raises(InvalidReadingLength):
        ed25519_instruction([SignedReading(short.message[:-1], short.signature, short.meter)])


def test_a_new_meters_first_reading_may_not_predate_the_household() -> None:
    """After a meter change there is no last reading, but time still may not run backwards."""
    market = Pubkey.new_unique()
    message = Reading.for_market(market, 1, 1_000, 0, 0).encode()
    with pytest.raises(ReadingOutOfOrder):
        check(message, market, None, now=2_000, not_before=1_001)
    assert check(message, market, None, now=2_000, not_before=1_000).counter == 1


def test_a_reading_may_not_predate_its_meters_registration() -> None:
    """Checked before the counter, as the program does: a back-dated baseline is refused."""
    market = Pubkey.new_unique()
    message = Reading.for_market(market, 1, 1_000, 0, 0).encode()
    with pytest.raises(ReadingBeforeMeterRegistered):
        check(message, market, None, now=2_000, meter_since=1_001)
    replayed = Reading.for_market(market, 1, 900, 0, 0).encode()
    last = LastReading(counter=1, timestamp=1_000, exported_wh=0, imported_wh=0)
    with pytest.raises(ReadingBeforeMeterRegistered):
        check(replayed, market, last, now=2_000, meter_since=1_000)
    assert check(message, market, None, now=2_000, meter_since=1_000).counter == 1


@pytest.mark.parametrize(
    ("watts", "elapsed", "allowance"),
    [
        (10_000, 3_600, 10_000),
        (10_000, 360, 1_000),
        (10_000, 1, 2),
        (10_000, 0, 0),
        (10_000, -5, 0),
        (1_000_000, 2**62, (2**64 - 1) // 3_600),
    ],
    ids=["an-hour", "six-minutes", "a-second", "no-time", "time-back", "saturated"],
)
def test_the_export_allowance_is_the_programs(watts: int, elapsed: int, allowance: int) -> None:
    assert export_allowance_wh(watts, elapsed) == allowance
    check_export(allowance, watts, elapsed)
    with pytest.raises(ExportAboveMeterLimit):
        check_export(allowance + 1, watts, elapsed)


def test_the_time_to_export() -> None:
    assert export_secs(10_000, 10_000) == 3_600
    assert export_secs(1, 10_000) == 1
    assert export_secs(0, 10_000) == 0
    for wh in (1, 999, 5_000, 12_345):
        assert export_allowance_wh(10_000, export_secs(wh, 10_000)) >= wh
        assert export_allowance_wh(10_000, export_secs(wh, 10_000) - 1) < wh
