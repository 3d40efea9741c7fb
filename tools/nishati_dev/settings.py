"""Settings of local chains, from the environment (prefix ``NISHATI_``) beside the client's."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field

from nishati_client.config import ClientSettings
from nishati_dev.paths import PROGRAM_SO


class ValidatorKind(StrEnum):
    """Which local JSON-RPC validator tests and the demo start."""

    surfpool = "surfpool"
    solana_test_validator = "solana-test-validator"


class LocalChainSettings(ClientSettings):
    program_so: Path = Field(default=PROGRAM_SO, description="Built program that local chains load")
    validator: ValidatorKind = Field(
        default=ValidatorKind.surfpool,
        description="Local validator; solana-test-validator must be on PATH",
    )
    localnet_rpc_port: int | None = Field(
        default=None,
        ge=1,
        le=65_534,
        description="JSON-RPC port of the local validator, its websocket on the next; free "
        "ports when unset (solana-test-validator: 8899)",
    )
