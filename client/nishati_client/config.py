"""Settings for reaching the chain, from the environment (prefix ``NISHATI_``) or ``.env``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from nishati_client.idl import IDL_PROGRAM_ID


class Commitment(StrEnum):
    processed = "processed"
    confirmed = "confirmed"
    finalized = "finalized"


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NISHATI_", env_file=".env", extra="ignore")

    rpc_url: str = Field(default="http://127.0.0.1:8899", description="Solana JSON-RPC endpoint")
    program_id: str = Field(default=IDL_PROGRAM_ID, description="Nishati program address")
    commitment: Commitment = Field(
        default=Commitment.confirmed, description="How settled a transaction must be to count"
    )
    ws_url: str | None = Field(
        default=None, description="RPC websocket endpoint; derived from rpc_url when unset"
    )
    oracle_url: str = Field(
        default="http://127.0.0.1:8080",
        description="The oracle's HTTP API (forecasts, advice, PV systems, auto-sell: the CLI)",
    )
    keypair: Path | None = Field(
        default=None, description="Solana CLI keypair file that signs and pays (the CLI)"
    )
    phone_salt: SecretStr | None = Field(
        default=None, description="Hex salt of phone commitments: a secret, never logged"
    )
    # How transactions are budgeted and priced: see nishati_client.chain.SendPolicy.
    compute_unit_margin_percent: int = Field(
        default=10, ge=0, description="Compute-unit limit: the simulated units plus this share"
    )
    priority_fee_micro_lamports: int = Field(
        default=0, ge=0, description="Priority fee per compute unit, when no percentile is set"
    )
    priority_fee_percentile: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Pay this percentile of the node's recent priority fees instead",
    )
    max_priority_fee_micro_lamports: int = Field(
        default=1_000_000, ge=0, description="Highest priority fee per compute unit ever paid"
    )
