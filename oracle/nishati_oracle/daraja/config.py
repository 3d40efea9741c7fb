"""What the Daraja client needs to know; the integrator fills it from the oracle's settings.

A plain frozen dataclass rather than a settings class, so the Daraja layer reads no
environment of its own and a test can build one in a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from nishati_client.digits import ascii_digits
from nishati_oracle.daraja.errors import DarajaConfigError

SANDBOX_URL = "https://sandbox.safaricom.co.ke"
PRODUCTION_URL = "https://api.safaricom.co.ke"


class TransactionType(StrEnum):
    """STK Push ``TransactionType``: it must match the shortcode's kind (else ResultCode 2028)."""

    paybill = "CustomerPayBillOnline"
    till = "CustomerBuyGoodsOnline"


@dataclass(frozen=True)
class DarajaConfig:
    """One Daraja app. ``base_url`` is the sandbox, production, or any simulator's URL.

    The B2C fields are optional so that a collecting-only oracle can run without them; a B2C,
    Transaction Status or Reversal call without them raises :class:`DarajaConfigError`.
    ``certificate`` is Safaricom's X.509 certificate for the environment (PEM or DER; a path or
    the bytes), whose public key encrypts the initiator password into the
    ``SecurityCredential``.
    """

    base_url: str
    consumer_key: SecretStr
    consumer_secret: SecretStr
    shortcode: str
    passkey: SecretStr
    transaction_type: TransactionType = TransactionType.paybill
    # For a till (CustomerBuyGoodsOnline) ``shortcode`` is the store number and PartyB the till;
    # unset, PartyB is ``shortcode`` (right for a paybill).
    till_number: str | None = None
    initiator_name: str | None = None
    initiator_password: SecretStr | None = None
    certificate: Path | bytes | None = field(default=None, repr=False)
    b2c_shortcode: str | None = None
    # The Reversal API needs an API user with the Org Reversals Initiator role on the
    # collecting shortcode, which may not be the B2C initiator; unset, the B2C one is used.
    reversal_initiator_name: str | None = None
    reversal_initiator_password: SecretStr | None = None
    connect_timeout_secs: float = 5.0
    # Daraja's STK Push can take several seconds to answer; a read timeout on it is an unknown
    # outcome, so it is generous.
    read_timeout_secs: float = 30.0
    token_refresh_margin_secs: int = 60
    max_attempts: int = 4
    backoff_secs: float = 1.0
    max_backoff_secs: float = 16.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise DarajaConfigError("base_url must be an http(s) URL")
        codes = (
            ("shortcode", self.shortcode),
            ("till_number", self.till_number),
            ("b2c_shortcode", self.b2c_shortcode),
        )
        for name, code in codes:
            if code is not None and not ascii_digits(code):
                raise DarajaConfigError(f"{name} must be the digits 0-9")
        if self.max_attempts < 1:
            raise DarajaConfigError("max_attempts must be at least 1")
        if (self.reversal_initiator_name is None) != (self.reversal_initiator_password is None):
            raise DarajaConfigError("give the reversal initiator's name and password together")
        if self.token_refresh_margin_secs < 0:
            raise DarajaConfigError("token_refresh_margin_secs must not be negative")
        if self.connect_timeout_secs <= 0 or self.read_timeout_secs <= 0:
            raise DarajaConfigError("timeouts must be positive")

    @property
    def root(self) -> str:
        """``base_url`` without a trailing slash."""
        return self.base_url.rstrip("/")
