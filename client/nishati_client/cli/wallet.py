"""``nishati wallet``: SOL for wallets on a local or test cluster."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from nishati_client.cli.output import emit, stdout
from nishati_client.cli.params import Json, key_of
from nishati_client.cli.session import CliError, Session, in_session
from nishati_client.errors import RpcError, RpcUnavailable

app = typer.Typer(help="Wallets: SOL from a local or test cluster's faucet.")

LAMPORTS_PER_SOL = 10**9
# Whole SOL, or SOL to the lamport (nine decimals); digits 0-9 only.
_SOL = re.compile(r"([0-9]+)(?:\.([0-9]{1,9}))?")


def lamports(sol: str) -> int:
    """A SOL amount written in decimal, exactly, in lamports."""
    match = _SOL.fullmatch(sol.strip())
    whole, fraction = match.groups() if match else ("0", None)
    amount = int(whole) * LAMPORTS_PER_SOL + int((fraction or "").ljust(9, "0"))
    if amount <= 0:
        raise typer.BadParameter(
            f"{sol!r} is not an amount of SOL above 0 (e.g. 2 or 0.5, at most 9 decimals)",
            param_hint="'--sol'",
        )
    return amount


def sol(amount: int) -> str:
    """Lamports as SOL, without trailing zeros."""
    whole, fraction = divmod(amount, LAMPORTS_PER_SOL)
    decimals = f"{fraction:09d}".rstrip("0")
    return f"{whole:,}.{decimals} SOL" if decimals else f"{whole:,} SOL"


@app.command("fund")
@in_session
async def wallet_fund(
    session: Session,
    wallet: Annotated[str, typer.Argument(help="Public key, or a Solana CLI keypair file.")],
    amount: Annotated[
        str, typer.Option("--sol", metavar="SOL", help="How much, e.g. 2 or 0.5.")
    ] = "1",
    as_json: Json = False,
) -> None:
    """Airdrop SOL to a wallet from the cluster's faucet (requestAirdrop): local and test
    clusters only; mainnet refuses."""
    address, wanted = key_of(wallet, "wallet"), lamports(amount)
    url = session.settings.rpc_url
    chain = session.chain()
    try:
        await chain.balance(address)
    except RpcError as error:
        raise CliError(f"no Solana JSON-RPC answers at {url} ({error})") from None
    try:
        signature = await chain.airdrop(address, wanted)
    except RpcUnavailable as error:
        raise CliError(f"{url} gave no SOL this time ({error}): faucets limit how often") from None
    except RpcError as error:
        raise CliError(
            f"{url} gives no SOL ({error}): only local and test clusters have a faucet"
        ) from None
    balance = await chain.balance(address)
    data = {
        "wallet": address,
        "lamports": wanted,
        "signature": signature,
        "balance_lamports": balance,
    }
    emit(
        as_json,
        data,
        lambda: stdout.print(f"{address} funded with {sol(wanted)}: it holds {sol(balance)}"),
    )
