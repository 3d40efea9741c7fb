"""The meter registration message, its signature, and the Ed25519 layout readings share."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.pubkey import Pubkey

from nishati_client.ed25519 import ED25519_PROGRAM_ID, Signed, ed25519_instruction
from nishati_client.readings import READING_LEN, Reading, meter_public_key, sign
from nishati_client.readings import ed25519_instruction as readings_instruction
from nishati_client.registration import (
    REGISTRATION_LEN,
    InvalidMeterProof,
    registration_instruction,
    registration_message,
    sign_registration,
    verify_meter_proof,
)

MARKET = Pubkey.from_bytes(bytes(range(32)))
HOUSEHOLD = Pubkey.from_bytes(bytes(range(32, 64)))
METER_KEY = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
METER = meter_public_key(METER_KEY)


def test_the_registration_message_binds_market_household_and_meter() -> None:
    message = registration_message(MARKET, HOUSEHOLD, METER)
    assert len(message) == REGISTRATION_LEN == 101
    assert message[:4] == b"NSHM"
    assert message[4] == 1
    assert message[5:37] == bytes(MARKET)
    assert message[37:69] == bytes(HOUSEHOLD)
    assert message[69:101] == bytes(METER)


def test_a_meter_signs_its_registration_with_its_own_key() -> None:
    proof = sign_registration(METER_KEY, MARKET, HOUSEHOLD)
    assert len(proof) == 64
    verify_meter_proof(MARKET, HOUSEHOLD, METER, proof)
    # Ed25519 is deterministic: the firmware's signature over the same bytes is the same.
    assert proof == METER_KEY.sign(registration_message(MARKET, HOUSEHOLD, METER))


@pytest.mark.parametrize(
    ("market", "household", "meter"),
    [
        (Pubkey.new_unique(), HOUSEHOLD, METER),
        (MARKET, Pubkey.new_unique(), METER),
        (MARKET, HOUSEHOLD, meter_public_key(Ed25519PrivateKey.generate())),
    ],
    ids=["another-market", "another-household", "another-meter"],
)
def test_a_proof_counts_for_its_own_registration_only(
    market: Pubkey, household: Pubkey, meter: Pubkey
) -> None:
    proof = sign_registration(METER_KEY, MARKET, HOUSEHOLD)
    with pytest.raises(InvalidMeterProof):
        verify_meter_proof(market, household, meter, proof)


def test_a_proof_is_a_64_byte_signature() -> None:
    with pytest.raises(InvalidMeterProof, match="64 bytes"):
        verify_meter_proof(MARKET, HOUSEHOLD, METER, bytes(63))


def test_no_reading_passes_for_a_registration() -> None:
    """The magic keeps the two messages apart, and their lengths differ."""
    reading = Reading.for_market(MARKET, 1, 1_790_000_000, 0, 0).encode()
    assert len(reading) == READING_LEN != REGISTRATION_LEN
    assert reading[:4] == b"NSHR"


def test_the_registration_instruction_has_the_reading_layout() -> None:
    proof = sign_registration(METER_KEY, MARKET, HOUSEHOLD)
    ix = registration_instruction(MARKET, HOUSEHOLD, METER, proof)
    data = bytes(ix.data)
    assert ix.program_id == ED25519_PROGRAM_ID
    assert ix.accounts == []
    assert len(data) == 2 + 14 + 64 + 32 + 101
    # One signature; its offsets entry names this instruction (u16::MAX) for each part.
    assert data[:16] == bytes.fromhex("01001000ffff5000ffff70006500ffff")
    assert data[16:80] == proof
    assert data[80:112] == bytes(METER)
    assert data[112:] == registration_message(MARKET, HOUSEHOLD, METER)


def test_one_layout_for_readings_and_registrations() -> None:
    signed = sign(Reading.for_market(MARKET, 1, 1_790_000_000, 5, 0), METER_KEY)
    generic = ed25519_instruction([Signed(signed.signature, signed.meter, signed.message)])
    assert bytes(readings_instruction([signed]).data) == bytes(generic.data)


def test_messages_of_different_lengths_are_laid_out_one_after_another() -> None:
    entries = [Signed(bytes([1]) * 64, METER, b"abc"), Signed(bytes([2]) * 64, HOUSEHOLD, b"de")]
    data = bytes(ed25519_instruction(entries).data)
    first = struct.unpack_from("<7H", data, 2)
    second = struct.unpack_from("<7H", data, 16)
    start = 2 + 2 * 14
    assert first == (start, 0xFFFF, start + 64, 0xFFFF, start + 96, 3, 0xFFFF)
    start += 64 + 32 + 3
    assert second == (start, 0xFFFF, start + 64, 0xFFFF, start + 96, 2, 0xFFFF)
    assert data[start + 96 :] == b"de"


def test_a_signature_is_64_bytes() -> None:
    with pytest.raises(ValueError, match="64"):
        Signed(bytes(63), METER, b"")
