"""``nishati household``: register, show, list, change meter."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from solders.pubkey import Pubkey

from nishati_client import phone as phones
from nishati_client.cli.output import emit, fields, rows
from nishati_client.cli.params import HouseholdArg, Json, MarketArg, key_of, pubkey
from nishati_client.cli.session import Session, fetch, in_session
from nishati_client.household import Household
from nishati_client.program import NishatiClient

app = typer.Typer(help="Households: register, show, list, change meter.")

MeterOpt = Annotated[
    str, typer.Option("--meter", help="Meter public key, or the meter's keypair file.")
]


def _household_rows(h: Household, energy_wh: int) -> list[tuple[str, object]]:
    return [
        ("address", h.address),
        ("market", h.market),
        ("owner", h.owner),
        ("custodial", "yes" if h.custodial else "no"),
        ("meter", h.meter),
        ("energy", f"{energy_wh:,} Wh"),
        ("exported", f"{h.total_exported_wh:,} Wh"),
        ("imported", f"{h.total_imported_wh:,} Wh"),
        ("redeemed", f"{h.redeemed_wh:,} Wh"),
        ("last reading", h.last_counter if h.has_baseline else "none yet"),
        ("offers made", h.next_offer_id),
    ]


async def _show_household(
    client: NishatiClient, address: Pubkey, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    household = await fetch("household", address, client.household(address))
    energy = await client.energy_balance(household.energy_account)
    data = {"household": household, "energy_wh": energy, **(extra or {})}
    emit(as_json, data, lambda: fields("Household", _household_rows(household, energy)))


@app.command("register")
@in_session
async def household_register(
    session: Session,
    market: MarketArg,
    phone: Annotated[str, typer.Option(help="M-Pesa number, e.g. 0712345678.")],
    meter: MeterOpt,
    owner: Annotated[
        Pubkey | None,
        typer.Option(parser=pubkey, help="Owner of a custodial household (signer: the oracle)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Register a household: the signer's own, or with --owner a custodial one by the oracle.

    The chain keeps only a salted hash of the phone number (NISHATI_PHONE_SALT, hex)."""
    commitment = phones.commitment(phones.salt_from_settings(session.settings), phone)
    meter_key = key_of(meter, "--meter")
    client = await session.connect(paying=True)
    signer = session.signer
    created = await client.household_register(
        payer=signer,
        authority=signer,
        market=session.market(market),
        owner=owner or signer.pubkey(),
        meter=meter_key,
        phone_commitment=commitment,
    )
    extra = {"signature": created.outcome.signature, "phone": phones.mask(phone)}
    await _show_household(client, created.address, as_json, extra)


@app.command("show")
@in_session
async def household_show(session: Session, household: HouseholdArg, as_json: Json = False) -> None:
    """Show a household and its energy balance."""
    client = await session.connect()
    await _show_household(client, household, as_json)


@app.command("list")
@in_session
async def household_list(session: Session, market: MarketArg, as_json: Json = False) -> None:
    """List a market's households."""
    client = await session.connect()
    households = await client.households(session.market(market))
    records = [
        (h.address, h.owner, "yes" if h.custodial else "no", h.meter, h.total_exported_wh)
        for h in households
    ]
    columns = ["household", "owner", "custodial", "meter", "exported Wh"]
    emit(
        as_json,
        {"households": households},
        lambda: rows(f"{len(records)} households", columns, records),
    )


@app.command("set-meter")
@in_session
async def household_set_meter(
    session: Session, household: HouseholdArg, meter: MeterOpt, as_json: Json = False
) -> None:
    """Replace a household's meter (signer: its owner, or the market admin)."""
    meter_key = key_of(meter, "--meter")
    client = await session.connect(paying=True)
    current = await fetch("household", household, client.household(household))
    signer = session.signer
    outcome = await client.household_set_meter(
        payer=signer, authority=signer, household=current, meter=meter_key
    )
    await _show_household(client, household, as_json, {"signature": outcome.signature})
