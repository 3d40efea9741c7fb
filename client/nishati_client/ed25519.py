"""The Ed25519-program instruction that carries meters' signatures to the Nishati program: one
layout for every signed message (readings for ``meter_attest``, registrations for
``household_register`` and ``household_set_meter``), as ``docs/reading-format.md`` gives it.

The instruction's data is a 2-byte header ``[count, 0]``, one 14-byte offsets entry per
signature, then each signature's 64 bytes, its public key's 32 and its message, in that order.
Every offset points into this instruction's own data (instruction index ``u16::MAX``), the only
layout the program accepts: it reads the signed bytes from where the Ed25519 program checked them.

:func:`verify` and :func:`verify_many` are the one place signatures are checked off chain, with
the Ed25519 program's verdict: ed25519-dalek's ``verify_strict``, through the ``nishati_verify``
extension (``native/nishati-verify``, built by ``scripts/build-native.sh``). Without the
extension, ``cryptography`` checks the equation and this module adds what ``verify_strict`` adds
to it: S below the group order, neither R nor the key of small order
(``docs/ed25519-vectors.md``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.instruction import Instruction
from solders.pubkey import Pubkey

log = structlog.get_logger(__name__)

ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
# Offsets entries refer to the Ed25519 instruction's own data with this instruction index.
THIS_INSTRUCTION = 0xFFFF
ED25519_HEADER_LEN = 2
ED25519_OFFSETS_LEN = 14
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32
MAX_SIGNATURES = 255

_OFFSETS = struct.Struct("<7H")

# The order of the base point (l): a signature's S must be below it.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
# Every 32 bytes that decode to a point of order dividing 8 (the eight torsion points, and the
# identity, the order-2 and the order-4 points' non-canonical encodings), as
# docs/ed25519-vectors.json lists them: ``verify_strict`` refuses such a key or R.
SMALL_ORDER_ENCODINGS = frozenset(
    bytes.fromhex(e)
    for e in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    )
)


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


def verify_with_cryptography(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """``verify_strict``'s verdict from ``cryptography``'s (cofactorless) check and the three
    refusals ``verify_strict`` adds: the extension's stand-in."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    if public_key in SMALL_ORDER_ENCODINGS or signature[:32] in SMALL_ORDER_ENCODINGS:
        return False
    if int.from_bytes(signature[32:], "little") >= GROUP_ORDER:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_many_with_cryptography(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [verify_with_cryptography(*item) for item in items]


Verify = Callable[[bytes, bytes, bytes], bool]
VerifyMany = Callable[[Sequence[tuple[bytes, bytes, bytes]]], list[bool]]


def _load() -> tuple[Verify, VerifyMany, bool]:
    """The extension's functions, or the stand-ins (said once, as the module loads)."""
    try:
        import nishati_verify  # optional: a tree without the built extension
    except ImportError:
        log.warning(
            "ed25519 extension missing: verifying with cryptography",
            fix="scripts/build-native.sh",
        )
        return verify_with_cryptography, _verify_many_with_cryptography, False
    return nishati_verify.verify, nishati_verify.verify_batch, True


_verify, _verify_many, NATIVE = _load()


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``message`` as the Ed25519 program decides
    it (ed25519-dalek's ``verify_strict``); ``False`` for a wrong length. The extension releases
    the GIL while it checks."""
    return _verify(public_key, signature, message)


def verify_many(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """:func:`verify`'s verdict on each ``(public_key, signature, message)``, in order, in one
    call (through the extension, one release of the GIL for all of them)."""
    return _verify_many(items) if items else []
