"""The simulator's settings, from the environment (prefix ``DARAJA_SIM_``).

Every default is a test value: the consumer key and secret, the initiator and its password are
the simulator's own, the shortcode and passkey are Safaricom's public sandbox ones, and the RSA
key is the test key checked in under ``tests/keys/daraja-sim/``. None of them is a secret.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nishati_dev.paths import TEST_KEYS_DIR as REPO_TEST_KEYS_DIR

TEST_KEYS_DIR = REPO_TEST_KEYS_DIR / "daraja-sim"
TEST_PRIVATE_KEY = TEST_KEYS_DIR / "test-daraja-private-key.pem"
TEST_CERTIFICATE = TEST_KEYS_DIR / "test-daraja-certificate.pem"

SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
TEST_CONSUMER_KEY = "nishati-sim-consumer-key"
TEST_CONSUMER_SECRET = "nishati-sim-consumer-secret"  # noqa: S105 (a published test value)
TEST_INITIATOR_NAME = "testapi"
TEST_INITIATOR_PASSWORD = "Nishati-Sim-Initiator-1!"  # noqa: S105 (a published test value)
TEST_B2C_SHORTCODE = "600996"


class DarajaSimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DARAJA_SIM_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Loopback only: this is a test service")
    port: int = Field(default=8089, ge=0, le=65_535, description="Port; 0 for any free one")

    consumer_key: str = Field(
        default=TEST_CONSUMER_KEY, description="Consumer key OAuth accepts (basic auth user)"
    )
    consumer_secret: SecretStr = Field(
        default=SecretStr(TEST_CONSUMER_SECRET), description="Its consumer secret"
    )
    token_lifetime_secs: float = Field(default=3_600.0, gt=0, description="Access token life")

    shortcode: str = Field(default=SANDBOX_SHORTCODE, description="STK Push BusinessShortCode")
    passkey: SecretStr = Field(
        default=SecretStr(SANDBOX_PASSKEY), description="STK Push passkey the Password is made of"
    )

    b2c_shortcode: str = Field(default=TEST_B2C_SHORTCODE, description="B2C PartyA")
    initiator_name: str = Field(default=TEST_INITIATOR_NAME, description="B2C InitiatorName")
    initiator_password: SecretStr = Field(
        default=SecretStr(TEST_INITIATOR_PASSWORD),
        description="The initiator's password, sealed in SecurityCredential",
    )
    private_key_path: Path = Field(
        default=TEST_PRIVATE_KEY, description="PEM RSA key that SecurityCredential is sealed to"
    )
    certificate_path: Path = Field(
        default=TEST_CERTIFICATE, description="Its certificate, served at /simulator/certificate"
    )
    b2c_initial_funds: int = Field(
        default=1_000_000, ge=0, description="B2C utility account, whole shillings"
    )

    callback_delay_secs: float = Field(
        default=1.0, ge=0, description="From an accepted request to its outcome and callback"
    )
    long_delay_secs: float = Field(
        default=10.0, ge=0, description="Extra wait of the `delay` mode; longest `reorder` hold"
    )
    duplicate_gap_secs: float = Field(default=0.05, ge=0, description="Between a callback's twins")
    callback_timeout_secs: float = Field(default=5.0, gt=0, description="Per callback POST")
    same_amount_window_secs: float = Field(
        default=120.0,
        ge=0,
        description="A paid STK amount repeated to the same phone within this ends in 17; 0: off",
    )
    rate_limit_per_sec: int | None = Field(
        default=None, ge=1, description="Spike arrest over the Daraja APIs; unset: off"
    )
    block_callback_words: bool = Field(
        default=True, description="Refuse CallBackURLs with words Daraja documents as blocked"
    )
    callback_amount_as_float: bool = Field(
        default=True, description="Render the callback Amount as 1.0, as Daraja often does"
    )
    database: Path | None = Field(
        default=None,
        description="SQLite file of the books (payments, payouts, reversals, tokens, callbacks "
        "due); a restart keeps them. Unset: in memory, gone on exit",
    )
    stk_query_pending: Literal["500.001.1001", "4999"] = Field(
        default="500.001.1001",
        description="STK Query of an undecided payment: HTTP 500 500.001.1001, or HTTP 200 "
        "ResultCode 4999 as the sandbox answers",
    )
    b2c_result_ids: Literal["ours", "daraja"] = Field(
        default="ours",
        description="B2C results' OriginatorConversationID: the request's, or one Daraja made "
        "up (as its result samples show)",
    )
    single_token: bool = Field(
        default=False,
        description="Each new token invalidates the earlier ones, as Daraja documents",
    )
    invalid_token_code: str | None = Field(
        default=None,
        description="errorCode for a bad token on every API; unset: each API's documented one "
        "(404.001.03; Transaction Status 400.003.01)",
        pattern=r"^[0-9]{3}\.[0-9]{3}(\.[0-9]{2,4})?$",
    )

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the Daraja simulator binds to loopback only")
        return host
