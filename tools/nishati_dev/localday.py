"""Trading on one machine, for the demo, the benchmarks and the tests: the oracle's settings for
paying through the local Daraja simulator, and households whose phones the oracle knows.

Nothing here is for production: the settings carry the simulator's published test credentials,
which production mode refuses.
"""

from __future__ import annotations

from pathlib import Path

import httpx

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
from nishati_dev.sandbox import Member, OpenMarket


def simulator_settings(
    sim_url: str, public_url: str, phone_salt: bytes, callback_token: str
) -> dict[str, object]:
    """OracleSettings fields that pay through the simulator at ``sim_url`` and take its
    callbacks at ``public_url``."""
    return {
        "phone_salt": phone_salt.hex(),
        "payments": "simulator",
        "daraja_url": sim_url,
        "daraja_consumer_key": TEST_CONSUMER_KEY,
        "daraja_consumer_secret": TEST_CONSUMER_SECRET,
        "daraja_passkey": SANDBOX_PASSKEY,
        "daraja_b2c_shortcode": TEST_B2C_SHORTCODE,
        "daraja_initiator_name": TEST_INITIATOR_NAME,
        "daraja_initiator_password": TEST_INITIATOR_PASSWORD,
        "daraja_certificate": TEST_CERTIFICATE,
        "callback_token": callback_token,
        "public_url": public_url,
        "phone_key_file": PHONE_KEY_FILE,
    }


def as_environment(settings: dict[str, object]) -> dict[str, str]:
    """The same settings as ``NISHATI_*`` environment variables, for an oracle process."""
    return {f"NISHATI_{name.upper()}": str(value) for name, value in settings.items()}


async def household(market: OpenMarket, phone: str, salt: bytes) -> Member:
    """A custodial household whose chain commitment is this phone's."""
    return await market.register(custodial=True, phone_commitment=commitment(salt, phone))


async def enrol(oracle: httpx.AsyncClient, member: Member, phone: str) -> None:
    """Tells the oracle a household's phone (sellers must be enrolled to be paid)."""
    answer = await oracle.put(f"/api/v1/households/{member.address}/phone", json={"phone": phone})
    if answer.status_code != 204:
        raise RuntimeError(f"enrolling {member.address} failed: {answer.text}")


def oracle_database(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'oracle.db'}"
