"""Keypair files in the Solana CLI's format: a JSON array of the 64 bytes secret ‖ public key.

Wallets, the oracle and meters (whose Ed25519 key signs readings) all keep their keys this way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.keypair import Keypair

from nishati_client.errors import NishatiClientError

KEYPAIR_LEN = 64
SEED_LEN = 32
# A folder of keys made for tests holds a file of this name; production refuses what is below it.
TEST_KEYS_MARKER = "NISHATI-TEST-KEYS"


class KeyFileError(NishatiClientError):
    """A keypair file is missing, unreadable or not in the Solana CLI's format."""


def is_test_key(path: Path) -> bool:
    """Whether ``path`` lies in a folder marked as holding test keys (by ``TEST_KEYS_MARKER``)."""
    resolved = path.resolve()
    return any((folder / TEST_KEYS_MARKER).is_file() for folder in resolved.parents)


def load_keypair(path: Path) -> Keypair:
    """The keypair in ``path``; checks that its public half matches its secret."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"keypair file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read keypair file {path}: {error}") from None
    malformed = KeyFileError(f"{path} is not a Solana keypair file (a JSON array of 64 bytes)")
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise malformed from None
    if (
        not isinstance(values, list)
        or len(values) != KEYPAIR_LEN
        or not all(type(v) is int and 0 <= v <= 255 for v in values)
    ):
        raise malformed
    raw = bytes(values)
    keypair = Keypair.from_seed(raw[:SEED_LEN])
    if bytes(keypair.pubkey()) != raw[SEED_LEN:]:
        raise KeyFileError(f"{path}: the public key does not match the secret key")
    return keypair


def write_keypair(path: Path, keypair: Keypair, overwrite: bool = False) -> None:
    """Writes ``keypair`` readable by its owner only; refuses to replace a file unless told."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; keep it, or pass --force") from None
    except OSError as error:
        raise KeyFileError(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(list(bytes(keypair)), file)
        file.write("\n")


def ed25519_private_key(keypair: Keypair) -> Ed25519PrivateKey:
    """The keypair as the signing key a meter uses for its readings."""
    return Ed25519PrivateKey.from_private_bytes(bytes(keypair)[:SEED_LEN])
