"""The oracle's settings, from the environment (prefix ``NISHATI_``) or ``.env``.

Grouped by domain: ``chain`` (the client's settings: RPC, program, keys), ``http``,
``readings``, ``mqtt``, ``payments`` (with its ``daraja`` group), ``storage`` and ``forecast``.
Each group reads its own variables, so one environment configures the client and the oracle alike; a
group's variables are its prefix and the field's name in capitals (``NISHATI_MQTT_HOST``,
``NISHATI_DARAJA_SHORTCODE``), and ``environment_name`` spells them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationError, model_validator
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


class MqttSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_MQTT_")

    enabled: bool = Field(default=False, description="Take readings from an MQTT broker too")
    host: str = Field(default="127.0.0.1", description="MQTT broker address")
    port: int = Field(default=1883, ge=0, le=65_535, description="MQTT broker port")
    username: str | None = Field(default=None, description="MQTT user name")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    topic_root: str = Field(default="nishati", description="Topics: <root>/<market>/...")


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

    @property
    def weather_base_url(self) -> str:
        if self.weather_url is not None:
            return self.weather_url
        return OPEN_METEO_URL if self.weather_api_key is None else OPEN_METEO_CUSTOMER_URL


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
        return self

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
    )
}
