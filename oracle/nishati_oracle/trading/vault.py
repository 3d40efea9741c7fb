"""Phone numbers at rest: AES-256-GCM encrypted (alone, or inside a stored callback), found by
their salted commitment.

The database never holds a number in clear. Rows are looked up by the same salted commitment the
chain's Household keeps (``nishati_client.phone.commitment``), so a phone from a request finds its
household and directory entry without decrypting anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nishati_client.phone import commitment, normalise
from nishati_oracle.core.settings import OracleSettings

NONCE_BYTES = 12


class PhoneKeyError(ValueError):
    """The phone encryption key is missing or not 32 hex-encoded bytes."""


class PhoneVault:
    def __init__(self, key: bytes, salt: bytes) -> None:
        if len(key) != 32:
            raise PhoneKeyError("the phone key must be 32 bytes (64 hex digits)")
        self._aead = AESGCM(key)
        self._salt = salt
        self._digest_key = hmac.digest(key, b"nishati callback digest", "sha256")

    @classmethod
    def from_settings(cls, settings: OracleSettings, salt: bytes) -> PhoneVault:
        if settings.payments.phone_key is not None:
            text = settings.payments.phone_key.get_secret_value()
        elif settings.payments.phone_key_file is not None:
            text = settings.payments.phone_key_file.read_text()
        else:
            raise PhoneKeyError("set NISHATI_PHONE_KEY or NISHATI_PHONE_KEY_FILE")
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            raise PhoneKeyError("the phone key is not hex") from None
        return cls(key, salt)

    def commitment(self, phone: str) -> bytes:
        return commitment(self._salt, phone)

    def seal(self, phone: str) -> bytes:
        """The normalised number, encrypted."""
        return self.encrypt(normalise(phone).encode("ascii"))

    def open(self, sealed: bytes) -> str:
        return self.decrypt(sealed).decode()

    def encrypt(self, data: bytes) -> bytes:
        """Anything that may hold a phone (a callback as received); the nonce goes in front."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, None)

    def digest(self, data: bytes) -> str:
        """A keyed digest of ``data`` (hex): tells identical callbacks apart from different
        ones without keeping anything that could be tried against a guessed phone."""
        return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()

    def decrypt(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], None)
