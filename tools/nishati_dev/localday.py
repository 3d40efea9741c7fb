"""Trading on one machine, for the stack, the demo, the benchmarks and the tests: the oracle's
settings for paying through the local Daraja simulator, households whose phones the oracle knows,
and the market the stack and the demo open.

Nothing here is for production: the settings carry the simulator's published test credentials
and the test phone key, which production mode refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from solders.pubkey import Pubkey

from nishati_client.market import Market, MarketConfig
from nishati_client.phone import commitment
from nishati_dev.daraja_sim.settings import (
    SANDBOX_PASSKEY,
    TEST_B2C_SHORTCODE,
    TEST_CERTIFICATE,
    TEST_CONSUMER_KEY,
    TEST_CONSUMER_SECRET,
    TEST_INITIATOR_NAME,
    TEST_INITIATOR_PASSWORD,
)
from nishati_dev.paths import PHONE_KEY_FILE
from nishati_dev.sandbox import (
    CANCEL_GRACE_SECS,
    DAILY_MINT_CAP_WH,
    MAX_EXPORT_WATTS,
    MAX_OPEN_TRADES_PER_BUYER,
    Member,
    Meter,
    OpenMarket,
)
from nishati_oracle.core.settings import (
    DarajaSettings,
    Payments,
    PaymentSettings,
    environment_name,
)

# The phone salt of the stack and the demo: a fixed, public value (production's is a secret).
LOCAL_PHONE_SALT = bytes.fromhex("6e6973686174692d64656d6f2d73616c742d3230323621")


def simulator_payments(sim_url: str, public_url: str, callback_token: str) -> PaymentSettings:
    """Payments through the simulator at ``sim_url``, with its test credentials and the test
    phone key, taking its callbacks at ``public_url``."""
    return PaymentSettings(
        provider=Payments.simulator,
        daraja=DarajaSettings(
            url=sim_url,
            consumer_key=SecretStr(TEST_CONSUMER_KEY),
            consumer_secret=SecretStr(TEST_CONSUMER_SECRET),
            passkey=SecretStr(SANDBOX_PASSKEY),
            b2c_shortcode=TEST_B2C_SHORTCODE,
            initiator_name=TEST_INITIATOR_NAME,
            initiator_password=SecretStr(TEST_INITIATOR_PASSWORD),
            certificate=TEST_CERTIFICATE,
        ),
        callback_token=SecretStr(callback_token),
        public_url=public_url,
        phone_key_file=PHONE_KEY_FILE,
    )


def as_environment(settings: BaseSettings) -> dict[str, str]:
    """The fields set on these settings and their groups as ``NISHATI_*`` environment
    variables, for an oracle process."""
    env: dict[str, str] = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if isinstance(value, BaseSettings):
            env.update(as_environment(value))
        elif value is not None:
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list):
                value = json.dumps([str(item) for item in value])
            env[environment_name(type(settings), name)] = str(value)
    return env


async def household(
    market: OpenMarket, phone: str, salt: bytes, meter: Meter | None = None
) -> Member:
    """A custodial household whose chain commitment is this phone's, its meter registered by
    the market's installer."""
    return await market.register(
        custodial=True, meter=meter, phone_commitment=commitment(salt, phone)
    )


async def enrol(oracle: httpx.AsyncClient, member: Member, phone: str) -> None:
    """Tells the oracle a household's phone (sellers must be enrolled to be paid)."""
    answer = await oracle.put(f"/api/v1/households/{member.address}/phone", json={"phone": phone})
    if answer.status_code != 204:
        raise RuntimeError(f"enrolling {member.address} failed: {answer.text}")


def oracle_database(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'oracle.db'}"


def local_market_config(oracle: Pubkey) -> MarketConfig:
    """A market as an estate might run it: 1.5 % fee, KES 10 to 60 per kWh, 15 min to pay
    (10 more in which only the oracle cancels), meters exporting at most 10 kW, at most
    10 MWh minted a day, 8 pending trades per buyer."""
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=1_000,
        max_price_cents_per_kwh=6_000,
        payment_deadline_secs=900,
        cancel_grace_secs=CANCEL_GRACE_SECS,
        max_export_watts=MAX_EXPORT_WATTS,
        daily_mint_cap_wh=DAILY_MINT_CAP_WH,
        max_open_trades_per_buyer=MAX_OPEN_TRADES_PER_BUYER,
    )


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def kwh(wh: int) -> str:
    sign = "-" if wh < 0 else ""
    return f"{sign}{abs(wh) // 1000:,}.{abs(wh) % 1000:03d} kWh"


def describe(market: Market) -> str:
    c = market.config
    rows = [
        ("address", str(market.address)),
        ("admin", str(market.admin)),
        ("oracle authority", str(c.oracle_authority)),
        ("energy mint", str(market.energy_mint)),
        ("fee", f"{c.fee_bps // 100}.{c.fee_bps % 100:02d} % ({c.fee_bps} bps)"),
        (
            "price bounds",
            f"{kes(c.min_price_cents_per_kwh)} to {kes(c.max_price_cents_per_kwh)} per kWh",
        ),
        ("payment deadline", f"{c.payment_deadline_secs} s"),
        ("cancel grace", f"{c.cancel_grace_secs} s"),
        ("export limit", f"{c.max_export_watts:,} W per meter"),
        ("daily mint cap", f"{kwh(c.daily_mint_cap_wh)}"),
        ("open trades", f"{c.max_open_trades_per_buyer} per buyer"),
        ("paused", "yes" if market.paused else "no"),
    ]
    lines = [f"Market {market.market_id}"] + [f"  {name:<18}{value}" for name, value in rows]
    return "\n".join(lines)
