"""What guards payments without a chain or Daraja: settings that refuse unsafe production
configurations, the callback caller's address behind proxies, and the money arithmetic."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from nishati_dev.paths import TEST_KEYS_DIR
from nishati_oracle.core.settings import OracleSettings, Payments, PaymentSettings
from nishati_oracle.trading.api import client_address
from nishati_oracle.trading.desk import payout_split, total_cents
from nishati_oracle.trading.vault import PhoneKeyError, PhoneVault

PRODUCTION = {
    "mode": "production",
    "market": "11111111111111111111111111111111",
    "payments": "production",
    "daraja_consumer_key": "live-key",
    "daraja_consumer_secret": "live-secret",
    "daraja_passkey": "live-passkey",
    "daraja_initiator_password": "live-initiator",
    "daraja_certificate": "/etc/nishati/production.cer",
    "callback_token": "a-long-random-secret-token",
    "phone_salt": "00" * 32,
    "phone_key": "11" * 32,
    "public_url": "https://oracle.example.co.ke",
}


@pytest.fixture
def keypair(tmp_path: Path) -> str:
    path = tmp_path / "oracle.json"
    path.write_text("[]")
    return str(path)


def production(
    monkeypatch: pytest.MonkeyPatch, keypair: str, **changes: str | None
) -> OracleSettings:
    """Production settings from the environment, as an operator sets them (None: unset)."""
    for name, value in {**PRODUCTION, "oracle_keypair": keypair, **changes}.items():
        if value is None:
            monkeypatch.delenv(f"NISHATI_{name.upper()}", raising=False)
        else:
            monkeypatch.setenv(f"NISHATI_{name.upper()}", value)
    return OracleSettings()


def test_production_with_real_credentials_starts(
    monkeypatch: pytest.MonkeyPatch, keypair: str
) -> None:
    settings = production(monkeypatch, keypair)
    assert settings.payments.daraja_base_url == "https://api.safaricom.co.ke"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payments": "simulator", "daraja_url": "http://127.0.0.1:9"}, "simulator"),
        ({"daraja_consumer_key": "nishati-sim-consumer-key"}, "simulator's credentials"),
        ({"daraja_passkey": None}, "DARAJA_PASSKEY"),
        ({"daraja_certificate": None}, "DARAJA_CERTIFICATE"),
        ({"callback_token": None}, "CALLBACK_TOKEN"),
        ({"phone_key": None}, "PHONE_KEY"),
        (
            {"phone_key": None, "phone_key_file": str(TEST_KEYS_DIR / "phone-encryption.key")},
            "PHONE_KEY",
        ),
        ({"public_url": "http://oracle.example.co.ke"}, "https"),
        ({"sms_provider": "simulator", "sms_url": "http://127.0.0.1:9"}, "SMS simulator"),
        (
            {"sms_provider": "africastalking", "sms_api_key": "nishati-sim-sms-api-key"},
            "simulator's API key",
        ),
        ({"sms_provider": "africastalking", "sms_api_key": "live-key"}, "AUTH_SECRET"),
        ({"sms_provider": "africastalking"}, "SMS_API_KEY"),
        ({"auth_insecure_cookies": "true"}, "INSECURE_COOKIES"),
        ({"mqtt_enabled": "true", "mqtt_host": "broker.example.co.ke"}, "MQTT_TLS"),
        ({"mqtt_enabled": "true", "mqtt_host": "10.0.0.7"}, "MQTT_TLS"),
    ],
)
def test_production_refuses(
    monkeypatch: pytest.MonkeyPatch, keypair: str, changes: dict[str, str | None], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        production(monkeypatch, keypair, **changes)


@pytest.mark.parametrize(
    "broker",
    [
        {"mqtt_host": "127.0.0.1"},
        {"mqtt_host": "localhost"},
        {"mqtt_host": "broker.example.co.ke", "mqtt_tls": "true"},
    ],
)
def test_production_reaches_its_broker_on_loopback_or_over_tls(
    monkeypatch: pytest.MonkeyPatch, keypair: str, broker: dict[str, str]
) -> None:
    settings = production(monkeypatch, keypair, mqtt_enabled="true", **broker)
    assert settings.mqtt.host == broker["mqtt_host"]


def test_the_simulator_is_only_used_when_named() -> None:
    with pytest.raises(ValueError, match="NISHATI_DARAJA_URL"):
        _ = PaymentSettings(provider=Payments.simulator).daraja_base_url
    with pytest.raises(ValueError, match="disabled"):
        _ = PaymentSettings().daraja_base_url
    sandbox = PaymentSettings(provider=Payments.sandbox)
    assert sandbox.daraja_base_url == "https://sandbox.safaricom.co.ke"


def request(peer: str, forwarded: str | None = None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return Request({"type": "http", "client": (peer, 443), "headers": headers})


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    # Straight from the internet, the header is whatever the caller wrote.
    assert client_address(request("196.201.214.200", "1.2.3.4"), proxies) == "196.201.214.200"
    # Through our proxy: the nearest hop the proxy saw, not what the caller prepended.
    forwarded = "6.6.6.6, 196.201.214.200"
    assert client_address(request("10.1.2.3", forwarded), proxies) == "196.201.214.200"
    # Through two of our proxies.
    forwarded = "196.201.214.200, 10.9.9.9"
    assert client_address(request("10.1.2.3", forwarded), proxies) == "196.201.214.200"
    assert client_address(request("10.1.2.3"), proxies) == "10.1.2.3"


def test_money_is_whole_shillings_and_the_fee_keeps_the_remainder() -> None:
    # The chain's rule (Trade::total_cents): rounded up to a whole shilling.
    assert total_cents(2_500, 1_200) == 3_000
    assert total_cents(1, 1_000) == 100
    assert total_cents(1_234, 1_550) == 2_000
    # KES 50 at 1.5 %: 75 cents of fee, so KES 49 goes to the seller and the fee is 100 cents.
    assert payout_split(5_000, 150) == (49, 100)
    assert payout_split(100_000, 0) == (1_000, 0)
    for total in range(100, 100_000, 700):
        payout, fee = payout_split(total, 150)
        assert payout * 100 + fee == total
        assert fee >= total * 150 // 10_000


def test_phone_vault() -> None:
    vault = PhoneVault(bytes(32), bytes(16))
    sealed = vault.seal("0708 374 149")
    assert b"708374149" not in sealed
    assert vault.open(sealed) == "254708374149"
    assert vault.seal("254708374149") != sealed  # a fresh nonce each time
    assert vault.commitment("+254708374149") == vault.commitment("0708374149")
    with pytest.raises(PhoneKeyError):
        PhoneVault(bytes(16), bytes(16))
