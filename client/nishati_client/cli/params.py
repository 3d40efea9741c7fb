"""Argument and option types more than one command group takes."""

from __future__ import annotations

from typing import Annotated

import typer
from solders.pubkey import Pubkey


def pubkey(text: str) -> Pubkey:
    """A base58 public key, or typer's usage error."""
    try:
        return Pubkey.from_string(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a base58 public key") from None


Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MarketArg = Annotated[str, typer.Argument(help="Market address, or its numeric market id.")]
HouseholdArg = Annotated[Pubkey, typer.Argument(parser=pubkey, help="Household address.")]
