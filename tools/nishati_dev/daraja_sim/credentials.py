"""The simulator's RSA key: Daraja seals the initiator password to Safaricom's certificate
(RSA, PKCS#1 v1.5, base64); the simulator opens it with the private half of its own test key.

``write_test_keys`` made the pair under ``tests/keys/daraja-sim/``; run it again only to
replace them::

    python -c "from nishati_dev.daraja_sim.credentials import write_test_keys as w; w()"
"""

from __future__ import annotations

import base64
import binascii
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from nishati_dev.daraja_sim.settings import TEST_KEYS_DIR

KEY_BITS = 2048
CERT_DAYS = 36_500


class SecurityCredentialError(ValueError):
    """The SecurityCredential is not base64, or was not sealed to this simulator's key."""


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} is not an RSA private key")
    return key


def open_credential(key: rsa.RSAPrivateKey, credential: str) -> str:
    """The initiator password inside a SecurityCredential."""
    try:
        sealed = base64.b64decode(credential, validate=True)
        return key.decrypt(sealed, padding.PKCS1v15()).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise SecurityCredentialError("SecurityCredential does not open") from None


def write_test_keys(directory: Path = TEST_KEYS_DIR) -> None:
    """A fresh RSA key and a self-signed certificate for it, both marked as test material."""
    key = rsa.generate_private_key(public_exponent=65_537, key_size=KEY_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "KE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Nishati TEST ONLY"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Daraja simulator test certificate"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test-daraja-private-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "test-daraja-certificate.pem").write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
