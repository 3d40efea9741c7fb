"""The oracle's settings, from the environment (prefix ``NISHATI_``) or ``.env``.

Grouped by domain: ``chain`` (the client's settings: RPC, program, keys), ``http``,
``readings``, ``mqtt``, ``payments`` (with its ``daraja`` group), ``storage``, ``forecast``,
``sms`` and ``auth``.
Each group reads its own variables, so one environment configures the client and the oracle alike; a
group's variables are its prefix and the field's name in capitals (``NISHATI_MQTT_HOST``,
``NISHATI_DARAJA_SHORTCODE``), and ``environment_name`` spells them.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from nishati_client.config import ClientSettings
from nishati_client.keys import is_test_key
from nishati_client.readings import MAX_CLOCK_SKEW_SECS


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


class EnvSettings(BaseSettings):
    """What every group shares: the ``NISHATI_`` prefix and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="NISHATI_", env_file=".env", extra="ignore", populate_by_name=True
    )


def environment_name(group: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``group``."""
    alias = group.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{group.model_config.get('env_prefix', '')}{field}".upper()


class HttpSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_HTTP_")

    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(default=8080, ge=0, le=65_535, description="Port the HTTP API listens on")
    # An order or an enrolment is under 300 bytes; Daraja's largest callback (a Transaction
    # Status or B2C result with its parameters and reference data) under 2 KB. The readings
    # route's cap follows from NISHATI_MAX_BATCH_READINGS.
    order_body_bytes: int = Field(
        default=16 * 1024, ge=1, description="Largest body of an order or a phone enrolment"
    )
    callback_body_bytes: int = Field(
        default=8 * 1024, ge=1, description="Largest body of a Daraja callback"
    )
    web_dir: Path = Field(
        default=Path("web/dist"),
        description="The web app's build (scripts/build-web.sh), served under /",
    )
    signature_window_secs: int = Field(
        default=300,
        ge=1,
        le=3_600,
        description="How far a signed request's time may be from the oracle's clock; a signed "
        "change is taken once within it",
    )
    events_poll_secs: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often a trade's event stream looks at the ledger for a change",
    )
    events_heartbeat_secs: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="Longest silence on a trade's event stream before a heartbeat comment "
        "(proxies close idle connections)",
    )


# The shortest retention of attested readings: longer than the forecasts learn from (at most
# 60 days of history), with a month to spare.
MIN_READINGS_RETENTION_DAYS = 90


class ReadingSettings(EnvSettings):
    max_batch_readings: int = Field(
        default=1_000, ge=1, description="Most readings one HTTP request may carry"
    )
    max_clock_skew_secs: int = Field(
        default=MAX_CLOCK_SKEW_SECS,
        ge=0,
        le=MAX_CLOCK_SKEW_SECS,
        description="How far a reading's time may be ahead of the chain's clock (at most the "
        "program's)",
    )
    chain_clock_secs: float = Field(
        default=1.0,
        gt=0,
        description="How often the chain's clock is read; readings are checked against the "
        "last read, never carried forward on the oracle's own clock",
    )
    market_cache_secs: float = Field(
        default=30.0,
        gt=0,
        description="How long the market's export limit and daily mint cap are trusted unread "
        "for readings coming in (the batcher reads them every round)",
    )
    meter_cache_secs: int = Field(
        default=300, ge=0, description="How long a meter's registration is trusted unread"
    )
    attest_threshold_wh: int = Field(
        default=1_000, ge=0, description="Attest a meter once this much export is unattested"
    )
    attest_max_age_secs: int = Field(
        default=6 * 3_600, ge=1, description="...or once its oldest unattested reading is this old"
    )
    attest_interval_secs: float = Field(default=2.0, gt=0, description="Batcher wake-up period")
    export_wait_secs: int = Field(
        default=10,
        ge=0,
        description="Chain time a reading may still need before the export limit allows it and "
        "be taken all the same (the batcher holds it until then); one needing more is refused "
        "ExportAboveMeterLimit",
    )
    attest_lease_secs: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long the attester lease lasts unrenewed: a replica that dies is taken "
        "over as attester after this (and one renewal interval) at most",
    )
    attest_lease_renew_secs: float = Field(
        default=3.0,
        gt=0,
        description="How often the attester renews its lease, and the other replicas ask for it "
        "(at most half the lease)",
    )
    readings_retention_days: int | None = Field(
        default=None,
        ge=MIN_READINGS_RETENTION_DAYS,
        description="Days a raw reading is kept once attested, by its timestamp (unset: "
        "forever); an unattested reading is never deleted (docs/storage.md)",
    )

    @model_validator(mode="after")
    def _renewed_within_the_lease(self) -> ReadingSettings:
        if self.attest_lease_renew_secs * 2 > self.attest_lease_secs:
            raise ValueError(
                "NISHATI_ATTEST_LEASE_RENEW_SECS must be at most half of NISHATI_ATTEST_LEASE_SECS"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MqttSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_MQTT_")

    enabled: bool = Field(default=False, description="Take readings from an MQTT broker too")
    host: str = Field(default="127.0.0.1", description="MQTT broker address")
    port: int = Field(default=1883, ge=0, le=65_535, description="MQTT broker port")
    username: str | None = Field(default=None, description="MQTT user name")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    topic_root: str = Field(default="nishati", description="Topics: <root>/<market>/...")
    tls: bool = Field(default=False, description="Connect to the broker over TLS")
    ca_file: Path | None = Field(
        default=None,
        description="PEM certificates the broker's certificate must chain to (TLS); "
        "the system's if unset",
    )
    share_group: str = Field(
        default="nishati-oracle",
        pattern=r"^[^/+#]*$",
        description="Shared subscription group: each reading goes to one replica; empty: none",
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        description="This replica's own client id, the same across its restarts "
        "(default nishati-oracle-<market>-<host name>)",
    )


class DarajaSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_DARAJA_")

    url: str | None = Field(
        default=None, description="Daraja base URL; the simulator's address when payments=simulator"
    )
    consumer_key: SecretStr | None = Field(default=None, description="Daraja app consumer key")
    consumer_secret: SecretStr | None = Field(
        default=None, description="Daraja app consumer secret"
    )
    shortcode: str = Field(default="174379", description="Paybill or till (STK Push)")
    passkey: SecretStr | None = Field(default=None, description="Lipa na M-Pesa Online passkey")
    transaction_type: str = Field(
        default="CustomerPayBillOnline", description="STK Push TransactionType"
    )
    b2c_shortcode: str = Field(default="600000", description="Shortcode paying sellers")
    initiator_name: str = Field(default="nishati", description="B2C initiator (API operator)")
    initiator_password: SecretStr | None = Field(
        default=None, description="B2C initiator's password, encrypted into SecurityCredential"
    )
    certificate: Path | None = Field(
        default=None, description="PEM certificate that encrypts the B2C SecurityCredential"
    )

    def missing_credentials(self) -> list[str]:
        """The variables of the credentials every Daraja request needs that are unset."""
        return [
            environment_name(DarajaSettings, name)
            for name in ("consumer_key", "consumer_secret", "passkey")
            if getattr(self, name) is None
        ]


class PaymentSettings(EnvSettings):
    provider: Payments = Field(
        default=Payments.disabled,
        validation_alias="NISHATI_PAYMENTS",
        description="disabled, simulator, sandbox or production",
    )
    daraja: DarajaSettings = Field(
        default_factory=DarajaSettings, description="The Daraja API (NISHATI_DARAJA_*)"
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
    payment_worker_interval_secs: float = Field(
        default=1.0, gt=0, description="Payment worker wake-up period"
    )
    payout_status_attempts: int = Field(
        default=6,
        ge=1,
        description="Transaction Status queries for a payout or refund with no result before it "
        "needs a person",
    )
    payout_attempts: int = Field(
        default=3, ge=1, description="B2C attempts at a payout that fails before it needs a person"
    )
    payout_retry_secs: float = Field(
        default=300.0,
        gt=0,
        description="Wait before paying a failed payout again, doubling with each attempt",
    )
    refund_attempts: int = Field(
        default=4,
        ge=1,
        description="Sends of a refund whose answer is lost before it needs a person (M-Pesa "
        "refuses a second reversal and a repeated B2C id, so a resend never refunds twice)",
    )
    unconfirmed_hold_secs: float = Field(
        default=3_600.0,
        ge=0,
        description="How long past its deadline a trade with a stored success callback the STK "
        "Query can neither confirm nor refute is held from the cancel before it needs a person",
    )
    reconcile_interval_secs: float = Field(
        default=86_400.0,
        gt=0,
        description="How often every payment, payout and refund whose outcome is not final is "
        "asked of Daraja and compared with the ledger",
    )
    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the operator routes (/api/v1/operator/...); unset: they "
        "answer 403",
    )
    idempotency_key_secs: float = Field(
        default=24 * 3_600,
        gt=0,
        description="How long an order's Idempotency-Key is kept: a repeat within it is "
        "answered as the first order was",
    )
    order_repeat_window_secs: float = Field(
        default=120.0,
        ge=0,
        description="An order without an Idempotency-Key with the same phone, offer and total "
        "as one this recent is refused as a probable repeat (0: never)",
    )

    @property
    def daraja_base_url(self) -> str:
        """The Daraja the settings select; the simulator only when chosen by name."""
        if self.provider is Payments.simulator:
            if self.daraja.url is None:
                raise ValueError("payments=simulator needs NISHATI_DARAJA_URL")
            return self.daraja.url
        if self.provider is Payments.disabled:
            raise ValueError("payments are disabled (NISHATI_PAYMENTS)")
        return self.daraja.url or DARAJA_URLS[self.provider]


class StorageSettings(EnvSettings):
    database_url: str = Field(
        default="sqlite+aiosqlite:///nishati-oracle.db",
        description="SQLite (WAL) by default; postgresql+asyncpg://... for PostgreSQL",
    )
    slow_log_secs: float = Field(
        default=0.05,
        gt=0,
        description="A submit, SQLite write or checkpoint slower than this is logged, with where "
        "its time went",
    )


OPEN_METEO_URL = "https://api.open-meteo.com"
# The commercial tier answers on its own host, with the key as ``apikey``.
OPEN_METEO_CUSTOMER_URL = "https://customer-api.open-meteo.com"


class ForecastSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_FORECAST_")

    weather_url: str | None = Field(
        default=None,
        description="Open-Meteo base URL; unset: the free tier's, or the commercial tier's "
        "when an API key is set",
    )
    weather_api_key: SecretStr | None = Field(
        default=None, description="Open-Meteo commercial API key (sent as apikey)"
    )
    grid_degrees: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Homes within one cell of this many degrees (0.05: about 5.5 km at the "
        "equator) share one weather request",
    )
    cache_secs: float = Field(
        default=900.0, ge=0, description="How long a cell's weather is reused before asked again"
    )
    timeout_secs: float = Field(default=10.0, gt=0, description="One weather request's timeout")
    rate_limit_retries: int = Field(
        default=3, ge=0, description="Retries of a weather request answered 429 before giving up"
    )
    rate_limit_backoff_secs: float = Field(
        default=2.0,
        gt=0,
        description="First wait after a 429 without Retry-After, doubling with each retry",
    )
    horizon_hours: int = Field(default=48, ge=1, le=384, description="How far ahead to forecast")
    default_clear_sky_index: float = Field(
        default=0.7,
        gt=0,
        le=1.2,
        description="Share of clear-sky production assumed without weather for a home with no "
        "measured history",
    )
    auto_sell_interval_secs: float = Field(
        default=300.0,
        gt=0,
        description="How often each opted-in household's automatic offer is brought in line "
        "with its forecast",
    )
    auto_sell_min_offer_wh: int = Field(
        default=100,
        ge=1,
        description="The smallest automatic offer worth its transaction; less is not offered",
    )
    auto_sell_tolerance_percent: int = Field(
        default=10,
        ge=0,
        le=100,
        description="An open automatic offer is kept while its energy is within this share of "
        "what the forecast now advises (at the same price); past it, it is replaced",
    )
    gemini_api_key: SecretStr | None = Field(
        default=None,
        description="Gemini API key; unset: advice comes from the rule-based advisor alone",
    )
    gemini_model: str = Field(
        default="gemini-3.8-flash", min_length=1, description="The Gemini model that writes advice"
    )
    gemini_url: str | None = Field(default=None, description="Gemini API base URL; unset: Google's")
    gemini_timeout_secs: float = Field(
        default=8.0,
        gt=0,
        description="How long Gemini may take to answer before the rule-based advice is given",
    )

    enabled: bool = Field(
        default=True,
        description="Run forecast rounds while the oracle serves (without network they fall "
        "back to clear sky)",
    )
    round_secs: float = Field(
        default=900.0, ge=10, description="Time between forecast rounds over every home"
    )
    timezone: str = Field(
        default="Africa/Nairobi",
        description="The market's time zone (IANA name), for consumption by local hour",
    )
    history_days: int = Field(
        default=14,
        ge=1,
        le=60,
        description="Days of each home's measured steps kept in memory to learn from",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weather_base_url(self) -> str:
        if self.weather_url is not None:
            return self.weather_url
        return OPEN_METEO_URL if self.weather_api_key is None else OPEN_METEO_CUSTOMER_URL


class Sms(StrEnum):
    """Where sign-in codes go: nowhere, the local SMS simulator, or Africa's Talking."""

    disabled = "disabled"
    simulator = "simulator"
    africastalking = "africastalking"


AFRICASTALKING_URL = "https://api.africastalking.com"
# Africa's Talking's sandbox app is the username "sandbox", served on its own host.
AFRICASTALKING_SANDBOX_URL = "https://api.sandbox.africastalking.com"
AFRICASTALKING_SANDBOX_USERNAME = "sandbox"
# The SMS simulator's test API key (``nishati_dev.sms_sim``), refused in production.
SIMULATOR_SMS_API_KEY = "nishati-sim-sms-api-key"


class SmsSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_SMS_")

    provider: Sms = Field(
        default=Sms.disabled,
        description="disabled, simulator or africastalking: where households' sign-in codes go",
    )
    username: str = Field(
        default=AFRICASTALKING_SANDBOX_USERNAME,
        description="Africa's Talking app username (sandbox: its sandbox)",
    )
    api_key: SecretStr | None = Field(default=None, description="Africa's Talking API key")
    sender_id: str | None = Field(
        default=None, description="Registered sender id or short code (from); unset: the default"
    )
    url: str | None = Field(
        default=None,
        description="SMS API base URL; the simulator's address when provider=simulator; unset: "
        "Africa's Talking's (its sandbox host for the sandbox username)",
    )
    timeout_secs: float = Field(default=10.0, gt=0, description="One SMS request's timeout")

    @property
    def base_url(self) -> str:
        """The SMS API the settings select; the simulator only when chosen by name."""
        if self.provider is Sms.disabled:
            raise ValueError("SMS is disabled (NISHATI_SMS_PROVIDER)")
        if self.provider is Sms.simulator:
            if self.url is None:
                raise ValueError("sms provider=simulator needs NISHATI_SMS_URL")
            return self.url
        if self.url is not None:
            return self.url
        sandbox = self.username == AFRICASTALKING_SANDBOX_USERNAME
        return AFRICASTALKING_SANDBOX_URL if sandbox else AFRICASTALKING_URL


class AuthSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_AUTH_")

    secret: SecretStr | None = Field(
        default=None,
        description="Key (any long random text) sign-in codes and phones are hashed with; "
        "unset: a random one per process (codes do not survive a restart)",
    )
    code_secs: int = Field(default=300, ge=30, le=3_600, description="How long a code is valid")
    code_attempts: int = Field(
        default=5, ge=1, description="Wrong codes (or passwords) in a row before a lockout"
    )
    lockout_secs: int = Field(
        default=900, ge=1, description="How long a phone or an operator is locked out"
    )
    code_requests_per_phone: int = Field(
        default=3, ge=1, description="Codes one phone may be sent per rate window"
    )
    requests_per_address: int = Field(
        default=20,
        ge=1,
        description="Sign-in requests (codes asked for, codes and passwords tried) per caller "
        "address per rate window",
    )
    rate_window_secs: int = Field(default=900, ge=1, description="The rate limits' window")
    session_secs: int = Field(
        default=30 * 86_400, ge=60, description="A session's longest life from its sign-in"
    )
    session_idle_secs: int = Field(
        default=7 * 86_400, ge=60, description="A session unused this long is over"
    )
    operator_session_secs: int = Field(
        default=12 * 3_600, ge=60, description="An operator's session's longest life"
    )
    insecure_cookies: bool = Field(
        default=False,
        description="Development only, for http://127.0.0.1: session cookies without Secure "
        "(production refuses it)",
    )


class ServiceSettings(EnvSettings):
    """The oracle's own fields, beside its groups."""

    mode: Mode = Field(default=Mode.development, description="production refuses test keys")
    market: str | None = Field(default=None, description="Market account the oracle serves")
    oracle_keypair: Path | None = Field(
        default=None, description="Solana CLI keypair of the market's oracle authority"
    )


class OracleSettings(ServiceSettings):
    chain: ClientSettings = Field(
        default_factory=ClientSettings, description="The chain: RPC, program, keys (the client's)"
    )
    http: HttpSettings = Field(default_factory=HttpSettings, description="The HTTP API")
    readings: ReadingSettings = Field(
        default_factory=ReadingSettings, description="Accepting and attesting readings"
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="Readings over MQTT")
    payments: PaymentSettings = Field(
        default_factory=PaymentSettings, description="M-Pesa payments and payouts"
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="The oracle's database"
    )
    forecast: ForecastSettings = Field(
        default_factory=ForecastSettings, description="Weather and production forecasts"
    )
    sms: SmsSettings = Field(
        default_factory=SmsSettings, description="SMS for households' sign-in codes"
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="Sign-in, sessions and their limits"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Each group reads its own variables; here the environment sets only the service's own
        # fields (NISHATI_PAYMENTS is the payments provider, not the payments group as JSON).
        return (
            init_settings,
            EnvSettingsSource(ServiceSettings),
            DotEnvSettingsSource(ServiceSettings),
        )

    @model_validator(mode="after")
    def _production_is_real(self) -> OracleSettings:
        if self.mode is Mode.production:
            keys = (("oracle_keypair", self.oracle_keypair), ("keypair", self.chain.keypair))
            for name, path in keys:
                if path is not None and is_test_key(path):
                    raise ValueError(f"{name} is a test key ({path}); production refuses it")
            if self.oracle_keypair is None:
                raise ValueError("production needs NISHATI_ORACLE_KEYPAIR")
            if self.market is None:
                raise ValueError("production needs NISHATI_MARKET")
            self._production_payments()
            self._production_sign_in()
            self._production_broker()
        return self

    def _production_broker(self) -> None:
        mqtt = self.mqtt
        if mqtt.enabled and not mqtt.tls and not is_loopback(mqtt.host):
            raise ValueError(
                f"production reaches a broker on another host ({mqtt.host}) over TLS only: "
                "set NISHATI_MQTT_TLS"
            )

    def _production_sign_in(self) -> None:
        sms, auth = self.sms, self.auth
        if auth.insecure_cookies:
            raise ValueError("production refuses NISHATI_AUTH_INSECURE_COOKIES")
        if sms.provider is Sms.simulator:
            raise ValueError("production never sends sign-in codes through the SMS simulator")
        if sms.provider is Sms.disabled:
            return
        if sms.api_key is None:
            raise ValueError("production SMS needs NISHATI_SMS_API_KEY")
        if sms.api_key.get_secret_value() == SIMULATOR_SMS_API_KEY:
            raise ValueError("production refuses the SMS simulator's API key")
        if auth.secret is None:
            raise ValueError("production sign-in codes need NISHATI_AUTH_SECRET")

    def _production_payments(self) -> None:
        payments, daraja = self.payments, self.payments.daraja
        if payments.provider is Payments.simulator:
            raise ValueError("production never pays through the Daraja simulator")
        if payments.phone_key is None and (
            payments.phone_key_file is None or is_test_key(payments.phone_key_file)
        ):
            raise ValueError("production needs NISHATI_PHONE_KEY (not the test key)")
        if payments.provider is Payments.disabled:
            return
        required = {
            environment_name(DarajaSettings, "consumer_key"): daraja.consumer_key,
            environment_name(DarajaSettings, "consumer_secret"): daraja.consumer_secret,
            environment_name(DarajaSettings, "passkey"): daraja.passkey,
            environment_name(DarajaSettings, "initiator_password"): daraja.initiator_password,
            environment_name(DarajaSettings, "certificate"): daraja.certificate,
            environment_name(PaymentSettings, "callback_token"): payments.callback_token,
            environment_name(ClientSettings, "phone_salt"): self.chain.phone_salt,
        }
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"production payments need {', '.join(missing)}")
        assert daraja.consumer_key is not None
        assert daraja.certificate is not None
        if is_test_key(daraja.certificate):
            raise ValueError("production refuses the Daraja simulator's test certificate")
        if daraja.consumer_key.get_secret_value() == SIMULATOR_CONSUMER_KEY:
            raise ValueError("production refuses the Daraja simulator's credentials")
        if not payments.public_url.startswith("https://"):
            raise ValueError("production callbacks need an https:// NISHATI_PUBLIC_URL")

    def serving_problems(self) -> list[str]:
        """What stops the service from starting with these settings, one line each."""
        problems = [
            f"{environment_name(ServiceSettings, name)} is not set"
            for name in ("market", "oracle_keypair")
            if getattr(self, name) is None
        ]
        problems += self.sms_problems()
        payments = self.payments
        if payments.provider is Payments.disabled:
            return problems
        try:
            _ = payments.daraja_base_url
        except ValueError as error:
            problems.append(str(error))
        problems += [
            f"payments={payments.provider} needs {name}"
            for name in payments.daraja.missing_credentials()
        ]
        if payments.phone_key is None and payments.phone_key_file is None:
            key, key_file = (
                environment_name(PaymentSettings, name) for name in ("phone_key", "phone_key_file")
            )
            problems.append(f"payments={payments.provider} needs {key} or {key_file}")
        return problems

    def sms_problems(self) -> list[str]:
        """What stops sign-in codes from being sent with these settings."""
        sms = self.sms
        if sms.provider is Sms.disabled:
            return []
        problems = []
        try:
            _ = sms.base_url
        except ValueError as error:
            problems.append(str(error))
        if sms.api_key is None:
            problems.append(f"sms provider={sms.provider} needs NISHATI_SMS_API_KEY")
        if self.chain.phone_salt is None:
            problems.append(f"sms provider={sms.provider} needs NISHATI_PHONE_SALT")
        return problems


class SettingsError(Exception):
    """Settings the environment gets wrong, one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings() -> OracleSettings:
    """The settings from the environment, every group read even when another is wrong, so that
    SettingsError lists every problem at once."""
    problems: list[str] = []
    groups: dict[str, Any] = {}
    try:
        ServiceSettings()
    except ValidationError as error:
        problems += describe(error)
    for name, field in OracleSettings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseSettings):
            try:
                groups[name] = group()
            except ValidationError as error:
                problems += describe(error)
    if problems:
        raise SettingsError(problems)
    try:
        return OracleSettings(**groups)
    except ValidationError as error:
        raise SettingsError(describe(error)) from None


def describe(error: ValidationError) -> list[str]:
    """One line per problem of a settings error, naming the environment variable (never the
    value, which may be a secret)."""
    group = _GROUPS.get(error.title)
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        variable = None if group is None else _variable(group, problem["loc"])
        lines.append(message if variable is None else f"{variable}: {message}")
    return lines


def _variable(group: type[BaseSettings], loc: tuple[int | str, ...]) -> str | None:
    """The variable an error's location points at, through the groups it names."""
    for part in loc:
        name = _field_named(group, part)
        if name is None:
            return None
        annotation = group.model_fields[name].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseSettings)):
            return environment_name(group, name)
        group = annotation
    return None


def _field_named(group: type[BaseSettings], part: int | str) -> str | None:
    if not isinstance(part, str):
        return None
    for name, field in group.model_fields.items():
        alias = field.validation_alias
        if part == name or (isinstance(alias, str) and part.lower() == alias.lower()):
            return name
    return None


_GROUPS: dict[str, type[BaseSettings]] = {
    group.__name__: group
    for group in (
        OracleSettings,
        ServiceSettings,
        ClientSettings,
        HttpSettings,
        ReadingSettings,
        MqttSettings,
        PaymentSettings,
        DarajaSettings,
        StorageSettings,
        ForecastSettings,
        SmsSettings,
        AuthSettings,
    )
}
