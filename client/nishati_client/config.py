"""Settings for reaching the chain, from the environment (prefix ``NISHATI_``) or ``.env``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nishati_client.idl import IDL_PROGRAM_ID

REPO_ROOT = Path(__file__).resolve().parents[2]


class Commitment(StrEnum):
    processed = "processed"
    confirmed = "confirmed"
    finalized = "finalized"


class ValidatorKind(StrEnum):
    """Which local JSON-RPC validator tests and the demo start."""

    surfpool = "surfpool"
    solana_test_validator = "solana-test-validator"


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_", env_file=".env", extra="ignore")

    rpc_url: str = Field(default="http://127.0.0.1:8899", description="Solana JSON-RPC endpoint")
    program_id: str = Field(default=IDL_PROGRAM_ID, description="Nishati program address")
    commitment: Commitment = Commitment.confirmed
    program_so: Path = Field(
        default=REPO_ROOT / "target" / "deploy" / "nishati.so",
        description="Built program that local chains load",
    )
    validator: ValidatorKind = Field(
        default=ValidatorKind.surfpool,
        description="Local validator; solana-test-validator must be on PATH",
    )
