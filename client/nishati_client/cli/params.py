"""Argument and option types more than one command group takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from solders.pubkey import Pubkey

from nishati_client.cli.session import CliError
from nishati_client.ed25519 import SIGNATURE_LEN
from nishati_client.keys import load_keypair


def pubkey(text: str) -> Pubkey:
    """A base58 public key, or typer's usage error."""
    try:
        return Pubkey.from_string(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a base58 public key") from None


def key_of(value: str, what: str) -> Pubkey:
    """A public key, or the public key of a keypair file (``what`` names it in the error)."""
    path = Path(value)
    if path.suffix == ".json" or path.exists():
        return load_keypair(path).pubkey()
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise CliError(f"{what} {value!r} is neither a public key nor a keypair file") from None


def signature_of(value: str, what: str) -> bytes:
    """A 64-byte signature: in hex, or a file holding it (the 64 bytes, or their hex)."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # a name too long for a file: hex, then
        is_file = False
    if is_file:
        raw = path.read_bytes()
        if len(raw) == SIGNATURE_LEN:
            return raw
        value = raw.decode("ascii", errors="replace")
    try:
        signature = bytes.fromhex(value.strip())
    except ValueError:
        raise CliError(f"{what} is neither a signature in hex nor a file holding one") from None
    if len(signature) != SIGNATURE_LEN:
        raise CliError(f"{what} is {len(signature)} bytes, not a {SIGNATURE_LEN}-byte signature")
    return signature


Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MarketArg = Annotated[str, typer.Argument(help="Market address, or its numeric market id.")]
HouseholdArg = Annotated[Pubkey, typer.Argument(parser=pubkey, help="Household address.")]
