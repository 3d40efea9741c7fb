"""``nishati household``: register, show, list, change meter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client import phone as phones
from nishati_client.cli.output import emit, fields, rows, utc
from nishati_client.cli.params import HouseholdArg, Json, MarketArg, key_of, signature_of
from nishati_client.cli.session import CliError, Session, fetch, in_session
from nishati_client.household import Household
from nishati_client.keys import ed25519_private_key, load_keypair
from nishati_client.pda import household_address
from nishati_client.program import NishatiClient
from nishati_client.registration import InvalidMeterProof, sign_registration, verify_meter_proof

app = typer.Typer(help="Households: register, show, list, change meter.")

MeterOpt = Annotated[
    str | None,
    typer.Option(
        "--meter",
        help="Meter public key, or the meter's keypair file (default: --meter-keypair's).",
    ),
]
MeterProofOpt = Annotated[
    str | None,
    typer.Option(
        "--meter-proof",
        help="The meter's signature over its registration to this household, as the meter "
        "made it: hex, or a file holding it (`nishati meter prove` makes one).",
    ),
]
MeterKeypairOpt = Annotated[
    Path | None,
    typer.Option(
        "--meter-keypair",
        help="A test meter's keypair file: the meter's key and its proof, signed here.",
    ),
]
InstallerOpt = Annotated[
    Path,
    typer.Option(
        "--installer-keypair", help="Keypair file of an installer the market approves: it signs."
    ),
]


def _household_rows(h: Household, energy_wh: int) -> list[tuple[str, object]]:
    return [
        ("address", h.address),
        ("market", h.market),
        ("owner", h.owner),
        ("custodial", "yes" if h.custodial else "no"),
        ("meter", h.meter),
        ("installer", h.installer),
        ("meter since", utc(h.meter_since)),
        ("energy", f"{energy_wh:,} Wh"),
        ("exported", f"{h.total_exported_wh:,} Wh"),
        ("imported", f"{h.total_imported_wh:,} Wh"),
        ("redeemed", f"{h.redeemed_wh:,} Wh"),
        ("last reading", h.last_counter if h.has_baseline else "none yet"),
        ("last attested", utc(h.last_attested_at)),
        ("offers made", h.next_offer_id),
        ("open trades", h.open_trades),
    ]


async def _show_household(
    client: NishatiClient, address: Pubkey, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    household = await fetch("household", address, client.household(address))
    energy = await client.energy_balance(household.energy_account)
    data = {"household": household, "energy_wh": energy, **(extra or {})}
    emit(as_json, data, lambda: fields("Household", _household_rows(household, energy)))


def meter_and_proof(
    market: Pubkey,
    household: Pubkey,
    meter: str | None,
    meter_proof: str | None,
    meter_keypair: Path | None,
) -> tuple[Pubkey, bytes]:
    """The meter's key and its proof for ``household``, from the options, checked here so a
    wrong one is told before anything is sent."""
    test_meter = load_keypair(meter_keypair) if meter_keypair else None
    if meter is not None:
        key = key_of(meter, "--meter")
        if test_meter is not None and key != test_meter.pubkey():
            raise CliError(f"--meter {key} is not --meter-keypair's key {test_meter.pubkey()}")
    elif test_meter is not None:
        key = test_meter.pubkey()
    else:
        raise CliError("name the meter: --meter KEY, or --meter-keypair PATH for a test meter")
    if meter_proof is not None:
        proof = signature_of(meter_proof, "--meter-proof")
    elif test_meter is not None:
        proof = sign_registration(ed25519_private_key(test_meter), market, household)
    else:
        raise CliError(
            "the meter must prove it holds its key: --meter-proof (its signature, hex or a "
            "file), or --meter-keypair PATH for a test meter"
        )
    try:
        verify_meter_proof(market, household, key, proof)
    except InvalidMeterProof as error:
        raise CliError(str(error)) from None
    return key, proof


@app.command("register")
@in_session
async def household_register(
    session: Session,
    market: MarketArg,
    phone: Annotated[str, typer.Option(help="M-Pesa number, e.g. 0712345678.")],
    installer_keypair: InstallerOpt,
    meter: MeterOpt = None,
    meter_proof: MeterProofOpt = None,
    meter_keypair: MeterKeypairOpt = None,
    owner_keypair: Annotated[
        Path | None,
        typer.Option(
            "--owner-keypair",
            help="The owner's keypair file, for a custodial household the signer (the "
            "oracle) registers; it signs too (default: the signer's own household).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Register a household: the signer's own, or with --owner-keypair a custodial one by the
    oracle. An approved installer signs, and the meter proves it holds its key.

    The chain keeps only a salted hash of the phone number (NISHATI_PHONE_SALT, hex)."""
    commitment = phones.commitment(phones.salt_from_settings(session.settings), phone)
    signer = session.signer
    owner: Keypair = load_keypair(owner_keypair) if owner_keypair else signer
    installer = load_keypair(installer_keypair)
    market_key = session.market(market)
    household = household_address(session.program_id, market_key, owner.pubkey())[0]
    meter_key, proof = meter_and_proof(market_key, household, meter, meter_proof, meter_keypair)
    client = await session.connect(paying=True)
    created = await client.household_register(
        payer=signer,
        owner=owner,
        authority=signer,
        installer=installer,
        market=market_key,
        meter=meter_key,
        meter_proof=proof,
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
    session: Session,
    household: HouseholdArg,
    installer_keypair: InstallerOpt,
    meter: MeterOpt = None,
    meter_proof: MeterProofOpt = None,
    meter_keypair: MeterKeypairOpt = None,
    as_json: Json = False,
) -> None:
    """Replace a household's meter (signer: its owner, the market admin, or the oracle if
    custodial), vouched for by an approved installer, the new meter proving its key."""
    installer = load_keypair(installer_keypair)
    client = await session.connect(paying=True)
    current = await fetch("household", household, client.household(household))
    meter_key, proof = meter_and_proof(current.market, household, meter, meter_proof, meter_keypair)
    signer = session.signer
    outcome = await client.household_set_meter(
        payer=signer,
        authority=signer,
        installer=installer,
        household=current,
        meter=meter_key,
        meter_proof=proof,
    )
    await _show_household(client, household, as_json, {"signature": outcome.signature})
