"""The oracle's settings, from the environment (prefix ``NISHATI_``) or ``.env``.

One class for the whole service; it extends the client's settings (RPC, program, keys), so one
environment configures both.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, IPvAnyNetwork, SecretStr, model_validator

from nishati_client.config import ClientSettings
from nishati_client.keys import is_test_key


class Mode(StrEnum):
    development = "development"
    production = "production"


class Payments(StrEnum):
    """Where M-Pesa requests go: nowhere, the local Daraja simulator, or Safaricom."""

    disabled = "disabled"
    simulator = "simulator"
    sandbox = "sandbox"
    production = "production"


DARAJA_URLS = {
    Payments.sandbox: "https://sandbox.safaricom.co.ke",
    Payments.production: "https://api.safaricom.co.ke",
}
# The test credentials of the Daraja simulator (``nishati_dev.daraja_sim``), refused in production.
SIMULATOR_CONSUMER_KEY = "nishati-sim-consumer-key"


class OracleSettings(ClientSettings):
    mode: Mode = Field(default=Mode.development, description="production refuses test keys")
    market: str | None = Field(default=None, description="Market account the oracle serves")
    oracle_keypair: Path | None = Field(
        default=None, description="Solana CLI keypair of the market's oracle authority"
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///nishati-oracle.db",
        description="SQLite (WAL) by default; postgresql+asyncpg://... for PostgreSQL",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_batch_readings: int = Field(default=1_000, ge=1, description="Per HTTP request")

    mqtt_enabled: bool = False
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_topic_root: str = Field(default="nishati", description="Topics: <root>/<market>/...")

    max_clock_skew_secs: int = Field(default=300, ge=0)
    max_power_w: int = Field(
        default=20_000, ge=1, description="Highest export or import power a home can show"
    )
    meter_cache_secs: int = Field(
        default=300, ge=0, description="How long a meter's registration is trusted unread"
    )
    slow_log_secs: float = Field(
        default=0.05,
        gt=0,
        description="A submit, SQLite write or checkpoint slower than this is logged, with where "
        "its time went",
    )

    attest_threshold_wh: int = Field(
        default=1_000, ge=0, description="Attest a meter once this much export is unattested"
    )
    attest_max_age_secs: int = Field(
        default=6 * 3_600, ge=1, description="...or once its oldest unattested reading is this old"
    )
    attest_interval_secs: float = Field(default=2.0, gt=0, description="Batcher wake-up period")

    payments: Payments = Field(
        default=Payments.disabled, description="disabled, simulator, sandbox or production"
    )
    daraja_url: str | None = Field(
        default=None, description="Daraja base URL; the simulator's address when payments=simulator"
    )
    daraja_consumer_key: SecretStr | None = None
    daraja_consumer_secret: SecretStr | None = None
    daraja_shortcode: str = Field(default="174379", description="Paybill or till (STK Push)")
    daraja_passkey: SecretStr | None = None
    daraja_transaction_type: str = "CustomerPayBillOnline"
    daraja_b2c_shortcode: str = Field(default="600000", description="Shortcode paying sellers")
    daraja_initiator_name: str = "nishati"
    daraja_initiator_password: SecretStr | None = None
    daraja_certificate: Path | None = Field(
        default=None, description="PEM certificate that encrypts the B2C SecurityCredential"
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="Base URL Daraja calls back on"
    )
    callback_token: SecretStr | None = Field(
        default=None, description="Secret path segment of callback URLs (random if unset)"
    )
    callback_allowlist: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Networks callbacks may come from; empty allows all"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Proxies whose X-Forwarded-For is believed"
    )
    phone_key: SecretStr | None = Field(
        default=None, description="Hex AES-256 key encrypting phone numbers at rest"
    )
    phone_key_file: Path | None = Field(
        default=None, description="File holding phone_key when it is unset"
    )
    stk_query_after_secs: float = Field(
        default=30.0, gt=0, description="Query a payment whose callback has not come by then"
    )
    payout_status_after_secs: float = Field(
        default=60.0, gt=0, description="Ask Transaction Status when no B2C result came by then"
    )
    payment_worker_interval_secs: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _production_is_real(self) -> OracleSettings:
        if self.mode is Mode.production:
            for name, path in (("oracle_keypair", self.oracle_keypair), ("keypair", self.keypair)):
                if path is not None and is_test_key(path):
                    raise ValueError(f"{name} is a test key ({path}); production refuses it")
            if self.oracle_keypair is None:
                raise ValueError("production needs NISHATI_ORACLE_KEYPAIR")
            if self.market is None:
                raise ValueError("production needs NISHATI_MARKET")
            self._production_payments()
        return self

    def _production_payments(self) -> None:
        if self.payments is Payments.simulator:
            raise ValueError("production never pays through the Daraja simulator")
        if self.phone_key is None and (
            self.phone_key_file is None or is_test_key(self.phone_key_file)
        ):
            raise ValueError("production needs NISHATI_PHONE_KEY (not the test key)")
        if self.payments is Payments.disabled:
            return
        required = {
            "daraja_consumer_key": self.daraja_consumer_key,
            "daraja_consumer_secret": self.daraja_consumer_secret,
            "daraja_passkey": self.daraja_passkey,
            "daraja_initiator_password": self.daraja_initiator_password,
            "daraja_certificate": self.daraja_certificate,
            "callback_token": self.callback_token,
            "phone_salt": self.phone_salt,
        }
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"production payments need {', '.join(missing).upper()}")
        assert self.daraja_consumer_key is not None
        assert self.daraja_certificate is not None
        if is_test_key(self.daraja_certificate):
            raise ValueError("production refuses the Daraja simulator's test certificate")
        if self.daraja_consumer_key.get_secret_value() == SIMULATOR_CONSUMER_KEY:
            raise ValueError("production refuses the Daraja simulator's credentials")
        if not self.public_url.startswith("https://"):
            raise ValueError("production callbacks need an https:// NISHATI_PUBLIC_URL")

    @property
    def daraja_base_url(self) -> str:
        """The Daraja the settings select; the simulator only when chosen by name."""
        if self.payments is Payments.simulator:
            if self.daraja_url is None:
                raise ValueError("payments=simulator needs NISHATI_DARAJA_URL")
            return self.daraja_url
        if self.payments is Payments.disabled:
            raise ValueError("payments are disabled (NISHATI_PAYMENTS)")
        return self.daraja_url or DARAJA_URLS[self.payments]
