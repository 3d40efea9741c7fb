"""``nishati installer``: the installers a market's admin approves to vouch for meters."""

from __future__ import annotations

from typing import Annotated

import typer

from nishati_client.cli.output import emit, rows, stdout, utc
from nishati_client.cli.params import Json, MarketArg, key_of
from nishati_client.cli.session import Session, fetch, in_session

app = typer.Typer(help="Installers: approve, withdraw, list (the market admin's registry).")

InstallerArg = Annotated[
    str, typer.Argument(help="The installer's public key, or its keypair file.")
]


@app.command("add")
@in_session
async def installer_add(
    session: Session, market: MarketArg, installer: InstallerArg, as_json: Json = False
) -> None:
    """Approve an installer: its signature then vouches for meters it registers (admin only)."""
    key = key_of(installer, "installer")
    address = session.market(market)
    client = await session.connect(paying=True)
    admin = session.signer
    created = await client.installer_add(payer=admin, admin=admin, market=address, installer=key)
    record = await client.installer_record(created.address)
    data = {"installer": record, "signature": created.outcome.signature}
    emit(as_json, data, lambda: stdout.print(f"installer {key} approved for market {address}"))


@app.command("remove")
@in_session
async def installer_remove(
    session: Session, market: MarketArg, installer: InstallerArg, as_json: Json = False
) -> None:
    """Withdraw an installer's approval (admin only); the meters it vouched for stay. The
    record's rent goes back to whoever paid it."""
    key = key_of(installer, "installer")
    address = session.market(market)
    client = await session.connect(paying=True)
    record_address = client.program.installer_record_address(address, key)
    record = await fetch("approved installer", key, client.installer_record(record_address))
    admin = session.signer
    outcome = await client.installer_remove(
        payer=admin, admin=admin, market=address, installer=key, rent_receiver=record.rent_payer
    )
    data = {"installer": key, "market": address, "signature": outcome.signature}
    emit(as_json, data, lambda: stdout.print(f"installer {key} withdrawn from market {address}"))


@app.command("list")
@in_session
async def installer_list(session: Session, market: MarketArg, as_json: Json = False) -> None:
    """List the installers a market approves."""
    client = await session.connect()
    installers = await client.installers(session.market(market))
    records = [(i.installer, utc(i.added_at)) for i in installers]
    emit(
        as_json,
        {"installers": installers},
        lambda: rows(f"{len(records)} installers", ["installer", "added at"], records),
    )
