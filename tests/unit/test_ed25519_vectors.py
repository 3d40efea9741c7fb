"""The Ed25519 edge cases of ``docs/ed25519-vectors.json`` (``docs/ed25519-vectors.md``): the
extension, the ``cryptography`` stand-in and LiteSVM's Ed25519 program each give every vector
its stated verdict, ed25519-dalek's ``verify_strict`` (held by the crate's own tests)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nishati_verify
import pytest
import structlog.testing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

from nishati_client import ed25519
from nishati_client.ed25519 import Signed, ed25519_instruction, verify_with_cryptography
from nishati_client.readings import SignedReading, signatures_valid

DOCUMENT = json.loads(
    (Path(__file__).parents[2] / "docs" / "ed25519-vectors.json").read_text(encoding="utf-8")
)


@dataclass(frozen=True)
class Vector:
    name: str
    public_key: bytes
    signature: bytes
    message: bytes
    valid: bool

    @classmethod
    def load(cls, entry: dict[str, object]) -> Vector:
        def raw(field: str) -> bytes:
            return bytes.fromhex(str(entry[field]))

        return cls(
            str(entry["name"]),
            raw("public_key"),
            raw("signature"),
            raw("message"),
            entry["valid"] is True,
        )

    @property
    def item(self) -> tuple[bytes, bytes, bytes]:
        return self.public_key, self.signature, self.message


VECTORS = [Vector.load(v) for v in DOCUMENT["vectors"]]
WRONG_LENGTHS = [Vector.load(v) for v in DOCUMENT["wrong_lengths"]]
EVERY = VECTORS + WRONG_LENGTHS
HONEST = VECTORS[0]


def _ids(vectors: list[Vector]) -> list[str]:
    return [v.name for v in vectors]


def test_the_vectors_hold_both_verdicts_and_every_group() -> None:
    assert HONEST.valid
    assert sum(v.valid for v in VECTORS) >= 3
    for group in ("small-order key", "small-order R", "non-canonical R", "non-canonical key"):
        assert any(v.name.startswith(group) for v in VECTORS), group
    assert len(DOCUMENT["small_order_encodings"]) == 14


@pytest.mark.parametrize("vector", EVERY, ids=_ids(EVERY))
def test_the_extension_gives_the_stated_verdict(vector: Vector) -> None:
    assert nishati_verify.verify(*vector.item) is vector.valid


@pytest.mark.parametrize("vector", EVERY, ids=_ids(EVERY))
def test_the_cryptography_stand_in_gives_the_stated_verdict(vector: Vector) -> None:
    assert verify_with_cryptography(*vector.item) is vector.valid


def test_cryptography_alone_accepts_what_the_chain_refuses() -> None:
    """Why the stand-in adds ``verify_strict``'s refusals: OpenSSL's check alone passes the
    identity key and R = identity with S = 0 or S = k·a."""

    def openssl(v: Vector) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(v.public_key).verify(v.signature, v.message)
        except InvalidSignature:
            return False
        return True

    accepted_wrongly = [v.name for v in VECTORS if openssl(v) and not v.valid]
    assert "small-order key 0" in accepted_wrongly
    assert "small-order R 0" in accepted_wrongly


def test_the_stand_in_refuses_exactly_the_small_order_encodings_listed() -> None:
    listed = {bytes.fromhex(e) for e in DOCUMENT["small_order_encodings"]}
    assert listed == ed25519.SMALL_ORDER_ENCODINGS


def test_the_chain_gives_the_stated_verdict() -> None:
    """Each vector in one Ed25519-program instruction, sent to LiteSVM (every feature active,
    ``ed25519_precompile_verify_strict`` among them)."""
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**10)
    verdicts = {}
    for vector in VECTORS:
        instruction = ed25519_instruction(
            [Signed(vector.signature, Pubkey.from_bytes(vector.public_key), vector.message)]
        )
        message = Message([instruction], payer.pubkey())
        result = svm.send_transaction(Transaction([payer], message, svm.latest_blockhash()))
        svm.expire_blockhash()
        verdicts[vector.name] = not isinstance(result, FailedTransactionMetadata)
    assert verdicts == {v.name: v.valid for v in VECTORS}


BAD = [v for v in EVERY if not v.valid]


@pytest.mark.parametrize("bad", BAD, ids=_ids(BAD))
@pytest.mark.parametrize(
    "verify_many",
    [nishati_verify.verify_batch, ed25519._verify_many_with_cryptography, ed25519.verify_many],
    ids=["extension", "cryptography", "client"],
)
def test_a_batch_refuses_its_one_bad_signature_wherever_it_is(
    bad: Vector, verify_many: ed25519.VerifyMany
) -> None:
    size = 5
    for position in range(size):
        items = [HONEST.item] * size
        items[position] = bad.item
        assert verify_many(items) == [i != position for i in range(size)]


def test_an_empty_batch_has_no_verdicts() -> None:
    assert nishati_verify.verify_batch([]) == []
    assert ed25519.verify_many([]) == []
    assert signatures_valid([]) == []


def test_readings_are_verified_together_in_order() -> None:
    """``signatures_valid`` on readings: the valid vectors of reading size and their refusals."""
    sized = [v for v in VECTORS if len(v.signature) == 64 and len(v.public_key) == 32]
    readings = [
        SignedReading(v.message, v.signature, Pubkey.from_bytes(v.public_key)) for v in sized
    ]
    assert signatures_valid(readings) == [v.valid for v in sized]


def test_without_the_extension_the_stand_in_verifies_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "nishati_verify", None)  # its import now fails
    with structlog.testing.capture_logs() as logs:
        verify, verify_many, native = ed25519._load()
    assert not native
    assert [e["event"] for e in logs] == ["ed25519 extension missing: verifying with cryptography"]
    assert verify(*HONEST.item)
    assert verify_many([HONEST.item, VECTORS[1].item]) == [True, False]


def test_with_the_extension_it_is_the_one_used() -> None:
    assert ed25519.NATIVE
    assert ed25519._verify is nishati_verify.verify
