"""The oracle's settings: each environment variable lands in its group, under the name
operators have always set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from nishati_client.config import ClientSettings
from nishati_oracle.core.settings import (
    DarajaSettings,
    HttpSettings,
    MqttSettings,
    OracleSettings,
    Payments,
    PaymentSettings,
    ReadingSettings,
    ServiceSettings,
    StorageSettings,
    environment_name,
)

GROUPS: list[type[BaseSettings]] = [
    ServiceSettings,
    ClientSettings,
    HttpSettings,
    ReadingSettings,
    MqttSettings,
    PaymentSettings,
    DarajaSettings,
    StorageSettings,
]


def test_each_variable_lands_in_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "NISHATI_MQTT_HOST": "broker.example",
        "NISHATI_DARAJA_SHORTCODE": "123456",
        "NISHATI_ATTEST_THRESHOLD_WH": "5",
        "NISHATI_DATABASE_URL": "sqlite+aiosqlite:///elsewhere.db",
        "NISHATI_PAYMENTS": "simulator",
        "NISHATI_HTTP_PORT": "9000",
        "NISHATI_RPC_URL": "http://rpc.example:8899",
        "NISHATI_MARKET": "11111111111111111111111111111111",
    }.items():
        monkeypatch.setenv(name, value)
    settings = OracleSettings()
    assert settings.mqtt.host == "broker.example"
    assert settings.payments.daraja.shortcode == "123456"
    assert settings.readings.attest_threshold_wh == 5
    assert settings.storage.database_url == "sqlite+aiosqlite:///elsewhere.db"
    assert settings.payments.provider is Payments.simulator
    assert settings.http.port == 9000
    assert settings.chain.rpc_url == "http://rpc.example:8899"
    assert settings.market == "11111111111111111111111111111111"


def test_a_group_given_in_code_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NISHATI_PAYMENTS", "simulator")
    given = OracleSettings(payments=PaymentSettings(provider=Payments.sandbox))
    assert given.payments.provider is Payments.sandbox


def test_every_variable_keeps_its_name() -> None:
    names = {environment_name(group, field) for group in GROUPS for field in group.model_fields}
    flat = {
        "NISHATI_MODE", "NISHATI_MARKET", "NISHATI_ORACLE_KEYPAIR", "NISHATI_RPC_URL",
        "NISHATI_PROGRAM_ID", "NISHATI_COMMITMENT", "NISHATI_WS_URL", "NISHATI_KEYPAIR",
        "NISHATI_PHONE_SALT", "NISHATI_COMPUTE_UNIT_MARGIN_PERCENT",
        "NISHATI_PRIORITY_FEE_MICRO_LAMPORTS", "NISHATI_PRIORITY_FEE_PERCENTILE",
        "NISHATI_MAX_PRIORITY_FEE_MICRO_LAMPORTS", "NISHATI_HTTP_HOST", "NISHATI_HTTP_PORT",
        "NISHATI_MAX_BATCH_READINGS", "NISHATI_MAX_CLOCK_SKEW_SECS", "NISHATI_CHAIN_CLOCK_SECS",
        "NISHATI_MARKET_CACHE_SECS",
        "NISHATI_METER_CACHE_SECS", "NISHATI_ATTEST_THRESHOLD_WH", "NISHATI_ATTEST_MAX_AGE_SECS",
        "NISHATI_ATTEST_INTERVAL_SECS", "NISHATI_EXPORT_WAIT_SECS", "NISHATI_ATTEST_LEASE_SECS",
        "NISHATI_ATTEST_LEASE_RENEW_SECS", "NISHATI_MQTT_ENABLED",
        "NISHATI_READINGS_RETENTION_DAYS",
        "NISHATI_MQTT_HOST",
        "NISHATI_MQTT_PORT", "NISHATI_MQTT_USERNAME", "NISHATI_MQTT_PASSWORD",
        "NISHATI_MQTT_TOPIC_ROOT", "NISHATI_MQTT_TLS", "NISHATI_MQTT_CA_FILE",
        "NISHATI_MQTT_SHARE_GROUP", "NISHATI_MQTT_CLIENT_ID",
        "NISHATI_PAYMENTS", "NISHATI_DARAJA_URL",
        "NISHATI_DARAJA_CONSUMER_KEY", "NISHATI_DARAJA_CONSUMER_SECRET",
        "NISHATI_DARAJA_SHORTCODE", "NISHATI_DARAJA_PASSKEY", "NISHATI_DARAJA_TRANSACTION_TYPE",
        "NISHATI_DARAJA_B2C_SHORTCODE", "NISHATI_DARAJA_INITIATOR_NAME",
        "NISHATI_DARAJA_INITIATOR_PASSWORD", "NISHATI_DARAJA_CERTIFICATE", "NISHATI_PUBLIC_URL",
        "NISHATI_CALLBACK_TOKEN", "NISHATI_CALLBACK_ALLOWLIST", "NISHATI_TRUSTED_PROXIES",
        "NISHATI_PHONE_KEY", "NISHATI_PHONE_KEY_FILE", "NISHATI_STK_QUERY_AFTER_SECS",
        "NISHATI_PAYOUT_STATUS_AFTER_SECS", "NISHATI_PAYMENT_WORKER_INTERVAL_SECS",
        "NISHATI_IDEMPOTENCY_KEY_SECS", "NISHATI_ORDER_REPEAT_WINDOW_SECS",
        "NISHATI_DATABASE_URL", "NISHATI_SLOW_LOG_SECS",
        "NISHATI_HTTP_ORDER_BODY_BYTES", "NISHATI_HTTP_CALLBACK_BODY_BYTES", "NISHATI_HTTP_WEB_DIR",
        "NISHATI_PAYOUT_STATUS_ATTEMPTS", "NISHATI_PAYOUT_ATTEMPTS", "NISHATI_PAYOUT_RETRY_SECS",
        "NISHATI_REFUND_ATTEMPTS", "NISHATI_UNCONFIRMED_HOLD_SECS",
        "NISHATI_RECONCILE_INTERVAL_SECS", "NISHATI_OPERATOR_TOKEN",
        "NISHATI_HTTP_SIGNATURE_WINDOW_SECS", "NISHATI_ORACLE_URL",
        "NISHATI_HTTP_EVENTS_POLL_SECS", "NISHATI_HTTP_EVENTS_HEARTBEAT_SECS",
    }  # fmt: skip
    # The groups themselves are no variables: NISHATI_DARAJA is the Daraja group.
    assert names - {"NISHATI_DARAJA"} == flat


@pytest.mark.parametrize("group", GROUPS)
def test_every_setting_is_described(group: type[BaseSettings]) -> None:
    assert all(field.description for field in group.model_fields.values())


@pytest.mark.parametrize("group", ["a/b", "a+", "#"])
def test_a_share_group_is_one_topic_level_without_wildcards(group: str) -> None:
    with pytest.raises(ValidationError, match="share_group"):
        MqttSettings(share_group=group)
