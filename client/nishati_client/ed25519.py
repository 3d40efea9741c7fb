"""The Ed25519-program instruction that carries meters' signatures to the Nishati program: one
layout for every signed message (readings for ``meter_attest``, registrations for
``household_register`` and ``household_set_meter``), as ``docs/reading-format.md`` gives it.

The instruction's data is a 2-byte header ``[count, 0]``, one 14-byte offsets entry per
signature, then each signature's 64 bytes, its public key's 32 and its message, in that order.
Every offset points into this instruction's own data (instruction index ``u16::MAX``), the only
layout the program accepts: it reads the signed bytes from where the Ed25519 program checked them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.pubkey import Pubkey

ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
# Offsets entries refer to the Ed25519 instruction's own data with this instruction index.
THIS_INSTRUCTION = 0xFFFF
ED25519_HEADER_LEN = 2
ED25519_OFFSETS_LEN = 14
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32
MAX_SIGNATURES = 255

_OFFSETS = struct.Struct("<7H")


@dataclass(frozen=True)
class Signed:
    """One message and the Ed25519 signature of ``signer`` over it."""

    signature: bytes
    signer: Pubkey
    message: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_LEN:
            raise ValueError(f"signature is {len(self.signature)} bytes, not {SIGNATURE_LEN}")


def ed25519_instruction(signed: Sequence[Signed]) -> Instruction:
    """The Ed25519-program instruction verifying each signature of ``signed`` over its
    message, in order, laid out as the module docstring says."""
    count = len(signed)
    if not 1 <= count <= MAX_SIGNATURES:
        raise ValueError(
            f"an Ed25519 instruction carries 1 to {MAX_SIGNATURES} signatures, not {count}"
        )
    start = ED25519_HEADER_LEN + ED25519_OFFSETS_LEN * count
    offsets = []
    for entry in signed:
        key_at = start + SIGNATURE_LEN
        message_at = key_at + PUBLIC_KEY_LEN
        if message_at + len(entry.message) > THIS_INSTRUCTION:
            raise ValueError("the signed messages do not fit one Ed25519 instruction")
        offsets.append(
            _OFFSETS.pack(
                start,
                THIS_INSTRUCTION,
                key_at,
                THIS_INSTRUCTION,
                message_at,
                len(entry.message),
                THIS_INSTRUCTION,
            )
        )
        start = message_at + len(entry.message)
    payload = b"".join(e.signature + bytes(e.signer) + e.message for e in signed)
    return Instruction(ED25519_PROGRAM_ID, bytes([count, 0]) + b"".join(offsets) + payload, [])
