"""The oracle's settings, from the environment (prefix ``NISHATI_``) or ``.env``.

One class for the whole service; it extends the client's settings (RPC, program, keys), so one
environment configures both.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from nishati_client.config import REPO_ROOT, ClientSettings

TEST_KEYS_DIR = REPO_ROOT / "tests" / "keys"


class Mode(StrEnum):
    development = "development"
    production = "production"


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
    meter_cache_secs: int = Field(default=300, ge=0, description="How long a meter lookup lives")

    attest_threshold_wh: int = Field(
        default=1_000, ge=0, description="Attest a meter once this much export is unattested"
    )
    attest_max_age_secs: int = Field(
        default=6 * 3_600, ge=1, description="...or once its oldest unattested reading is this old"
    )
    attest_interval_secs: float = Field(default=2.0, gt=0, description="Batcher wake-up period")

    @model_validator(mode="after")
    def _production_is_real(self) -> OracleSettings:
        if self.mode is Mode.production:
            for name, path in (("oracle_keypair", self.oracle_keypair), ("keypair", self.keypair)):
                if path is not None and path.resolve().is_relative_to(TEST_KEYS_DIR):
                    raise ValueError(f"{name} is a test key ({path}); production refuses it")
            if self.oracle_keypair is None:
                raise ValueError("production needs NISHATI_ORACLE_KEYPAIR")
            if self.market is None:
                raise ValueError("production needs NISHATI_MARKET")
        return self
