"""A meter's proof that it holds its key: its signature over the registration message, which
``household_register`` and ``household_set_meter`` check through the Ed25519 program.

The message is 101 bytes, ``b"NSHM"`` | version 1 | market address (32) | household address
(32) | meter public key (32): it binds the key to one household of one market, and its magic
keeps it apart from a reading (``b"NSHR"``), so no reading can pass for a registration or back.
A meter signs it on the device when its installer wires it (the firmware makes it); tests and
simulated meters sign it with :func:`sign_registration`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from nishati_client.ed25519 import SIGNATURE_LEN, Signed, ed25519_instruction, verify
from nishati_client.errors import NishatiClientError
from nishati_client.readings import meter_public_key

REGISTRATION_MAGIC = b"NSHM"
REGISTRATION_VERSION = 1
REGISTRATION_LEN = 101


class InvalidMeterProof(NishatiClientError, ValueError):
    """A meter proof is not a 64-byte signature of the meter over this registration; the
    program would refuse it (the Ed25519 program, or ``InvalidMeterRegistration``)."""


def registration_message(market: Pubkey, household: Pubkey, meter: Pubkey) -> bytes:
    """The 101 bytes meter ``meter`` signs to be registered to ``household`` of ``market``."""
    return (
        REGISTRATION_MAGIC
        + bytes([REGISTRATION_VERSION])
        + bytes(market)
        + bytes(household)
        + bytes(meter)
    )


def sign_registration(signing_key: Ed25519PrivateKey, market: Pubkey, household: Pubkey) -> bytes:
    """The 64-byte signature a meter holding ``signing_key`` makes over its registration to
    ``household``; the meter key is the signing key's public key."""
    message = registration_message(market, household, meter_public_key(signing_key))
    return signing_key.sign(message)


def verify_meter_proof(market: Pubkey, household: Pubkey, meter: Pubkey, proof: bytes) -> None:
    """Raises :class:`InvalidMeterProof` unless ``proof`` is ``meter``'s signature over its
    registration to ``household`` of ``market``."""
    if len(proof) != SIGNATURE_LEN:
        raise InvalidMeterProof(f"a meter proof is {SIGNATURE_LEN} bytes, not {len(proof)}")
    message = registration_message(market, household, meter)
    if not verify(bytes(meter), proof, message):
        raise InvalidMeterProof(
            f"the proof is not meter {meter}'s signature over its registration to household "
            f"{household} of market {market}"
        )


def registration_instruction(
    market: Pubkey, household: Pubkey, meter: Pubkey, proof: bytes
) -> Instruction:
    """The Ed25519-program instruction carrying the meter's proof, for the transaction that
    registers it (the program instruction names this one's index)."""
    return ed25519_instruction(
        [Signed(proof, meter, registration_message(market, household, meter))]
    )
