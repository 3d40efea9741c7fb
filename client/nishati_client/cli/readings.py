"""``nishati meter``, ``nishati reading`` and ``nishati attest``: meter keys, signed readings,
and their attestation on chain by the oracle."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain, SendPolicy, fits_in_packet
from nishati_client.cli.output import emit, rows, stderr, stdout
from nishati_client.cli.params import Json, key_of
from nishati_client.cli.session import CliError, Session, fetch, in_session
from nishati_client.codec import plain
from nishati_client.keys import ed25519_private_key, load_keypair, write_keypair
from nishati_client.pda import household_address
from nishati_client.program import NishatiClient
from nishati_client.readings import (
    Reading,
    SignedReading,
    dump_readings,
    load_readings,
    sign,
    verify_signature,
)
from nishati_client.registration import sign_registration

meter_app = typer.Typer(
    help="Meter keys: make one for a meter you simulate, and sign its registration proof."
)
reading_app = typer.Typer(help="Signed meter readings: sign one as a meter does.")

MarketOpt = Annotated[str, typer.Option(help="Market address or numeric id.")]


@meter_app.command("keygen")
def meter_keygen(
    path: Annotated[Path, typer.Argument(help="Keypair file to write (Solana CLI format).")],
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    as_json: Json = False,
) -> None:
    """Create a meter key and write it as a Solana CLI keypair file."""
    keypair = Keypair()
    write_keypair(path, keypair, overwrite=force)
    data = {"meter": keypair.pubkey(), "path": str(path)}
    emit(as_json, data, lambda: stdout.print(f"meter {keypair.pubkey()} written to {path}"))


@meter_app.command("prove")
@in_session
def meter_prove(
    session: Session,
    market: MarketOpt,
    meter_keypair: Annotated[Path, typer.Option(help="The meter's keypair file.")],
    household: Annotated[
        str | None, typer.Option(help="The household's address (for a meter change).")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="Or the owner of the household to register: public key or keypair."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the signature here, in hex (for --meter-proof).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Act as a meter: sign the registration message binding its key to a household (no
    network); `household register` and `set-meter` take it as --meter-proof."""
    market_key = session.market(market)
    if (household is None) == (owner is None):
        raise CliError("name the household: --household ADDRESS or --owner KEY (one of them)")
    if household is not None:
        address = key_of(household, "--household")
    else:
        assert owner is not None
        address = household_address(session.program_id, market_key, key_of(owner, "--owner"))[0]
    meter = load_keypair(meter_keypair)
    proof = sign_registration(ed25519_private_key(meter), market_key, address)
    if out is not None:
        out.write_text(proof.hex() + "\n", encoding="utf-8")
    data = {"meter": meter.pubkey(), "household": address, "market": market_key, "proof": proof}
    emit(as_json, data, lambda: stdout.print(proof.hex()))


@reading_app.command("sign")
@in_session
def reading_sign(
    session: Session,
    market: MarketOpt,
    meter_keypair: Annotated[Path, typer.Option(help="The meter's keypair file.")],
    counter: Annotated[
        int, typer.Option(min=1, max=2**64 - 1, help="The reading's number, above the last one.")
    ],
    exported_wh: Annotated[
        int, typer.Option(min=0, max=2**64 - 1, help="Energy sent to the grid so far, Wh.")
    ],
    imported_wh: Annotated[
        int, typer.Option(min=0, max=2**64 - 1, help="Energy taken from the grid so far, Wh.")
    ] = 0,
    timestamp: Annotated[
        int | None,
        typer.Option(min=0, help="When the meter read, Unix seconds (default: the local clock)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Readings file; appended to if it exists.")] = Path(
        "readings.json"
    ),
    as_json: Json = False,
) -> None:
    """Act as a meter: sign a reading and add it to a readings file (no network)."""
    key = ed25519_private_key(load_keypair(meter_keypair))
    when = int(time.time()) if timestamp is None else timestamp
    reading = Reading.for_market(session.market(market), counter, when, exported_wh, imported_wh)
    signed = sign(reading, key)
    readings = load_readings(out.read_text(encoding="utf-8")) if out.exists() else []
    readings.append(signed)
    out.write_text(dump_readings(readings), encoding="utf-8")
    data = {"meter": signed.meter, "counter": counter, "file": str(out), "readings": len(readings)}
    emit(
        as_json,
        data,
        lambda: stdout.print(f"reading {counter} of meter {signed.meter} added to {out}"),
    )


def _batches(
    client: NishatiClient,
    oracle: Keypair,
    market: Pubkey,
    located: Sequence[tuple[SignedReading, Pubkey]],
) -> list[list[tuple[SignedReading, Pubkey]]]:
    """Consecutive readings, each meter at most once, as many as one transaction holds."""
    policy = client.chain.policy if isinstance(client.chain, RpcChain) else SendPolicy()
    batches: list[list[tuple[SignedReading, Pubkey]]] = []
    for signed, household in located:
        last = batches[-1] if batches else None
        if last is not None and all(s.meter != signed.meter for s, _ in last):
            candidate = [*last, (signed, household)]
            ixs = client.program.attest_readings(
                oracle=oracle.pubkey(), market=market, readings=candidate
            )
            if len(candidate) <= 255 and fits_in_packet(ixs, [oracle], policy):
                last.append((signed, household))
                continue
        batches.append([(signed, household)])
    return batches


@in_session
async def attest(
    session: Session,
    readings_file: Annotated[Path, typer.Argument(help="Readings file from `reading sign`.")],
    market: MarketOpt,
    as_json: Json = False,
) -> None:
    """Submit a readings file as the oracle (the signer), batching readings per transaction."""
    market_address = session.market(market)
    try:
        readings = load_readings(readings_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"readings file {readings_file} does not exist") from None
    if not readings:
        raise CliError(f"{readings_file} holds no readings")

    client = await session.connect(paying=True)
    oracle = session.signer
    located = []
    for signed in readings:
        verify_signature(signed)
        if not Reading.decode(signed.message).is_for(market_address):
            raise CliError(f"a reading of meter {signed.meter} is for another market")
        record_address = client.program.meter_record_address(market_address, signed.meter)
        record = await fetch("registered meter", signed.meter, client.meter_record(record_address))
        located.append((signed, record.household))
    batches = _batches(client, oracle, market_address, located)
    sent: list[dict[str, Any]] = []
    attested: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("attesting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr,
        disable=as_json or not stderr.is_terminal,
    )
    with progress:
        task = progress.add_task("attest", total=len(readings))
        for batch in batches:
            outcome = await client.meter_attest(
                payer=oracle, oracle=oracle, market=market_address, readings=batch
            )
            sent.append(
                {
                    "signature": outcome.signature,
                    "readings": len(batch),
                    "compute_units": outcome.compute_units,
                }
            )
            for event in client.program.events(outcome.logs):
                if event.name == "MeterAttested":
                    attested.append(plain(event.data))
            progress.advance(task, len(batch))
    minted = sum(int(a["minted_wh"]) for a in attested)
    data = {"transactions": sent, "attested": attested, "minted_wh": minted}

    def human() -> None:
        records = [
            (a["household"], a["counter"], a["exported_wh"], a["minted_wh"]) for a in attested
        ]
        title = f"{len(readings)} readings in {len(sent)} transactions: {minted:,} Wh minted"
        rows(title, ["household", "counter", "exported Wh", "minted Wh"], records)

    emit(as_json, data, human)
