"""``nishati``: run a market from a terminal or a script, over JSON-RPC.

Connection and signer come from flags before the command or from the environment:
``--url``/``NISHATI_RPC_URL``, ``--ws-url``/``NISHATI_WS_URL`` (for ``events watch``),
``--keypair``/``NISHATI_KEYPAIR`` (a Solana CLI keypair file: it signs, and pays the fees),
``--program-id``/``NISHATI_PROGRAM_ID``. Every command prints rich tables, or with ``--json``
one JSON document with stable keys (integers for money and energy: KES cents, Wh, lamports).
A failure is one line on stderr (``nishati: error: ...``) and a non-zero exit code;
``NISHATI_DEBUG=1`` adds the traceback of an unexpected one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # not re-exported by typer

from nishati_client import phone as phones
from nishati_client.chain import (
    LAMPORTS_PER_SIGNATURE,
    RpcChain,
    SendPolicy,
    check_program_deployed,
    cluster_time,
    fits_in_packet,
)
from nishati_client.codec import plain
from nishati_client.config import ClientSettings
from nishati_client.errors import (
    AccountNotFound,
    AccountTypeMismatch,
    NishatiClientError,
    NishatiProgramError,
    ProgramNotDeployed,
    RpcError,
    TransactionFailed,
)
from nishati_client.events import watch as watch_events
from nishati_client.events import websocket_url
from nishati_client.household import Household
from nishati_client.keys import ed25519_private_key, load_keypair, write_keypair
from nishati_client.market import Market, MarketConfig, MarketUpdate
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient
from nishati_client.readings import (
    Reading,
    SignedReading,
    dump_readings,
    load_readings,
    sign,
    verify_signature,
)
from nishati_client.trading import Offer, Trade

T = TypeVar("T")

app = typer.Typer(
    name="nishati",
    help="Nishati: a peer-to-peer solar energy market on Solana.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
market_app = typer.Typer(help="Markets: initialise, show, update, pause, resume.")
household_app = typer.Typer(help="Households: register, show, list, change meter.")
meter_app = typer.Typer(help="Meter keys.")
reading_app = typer.Typer(help="Signed meter readings.")
offer_app = typer.Typer(help="Offers of energy: create, list, cancel.")
trade_app = typer.Typer(help="Trades: open, show, list, settle, cancel.")
events_app = typer.Typer(help="Program events.")
for sub, name in [
    (market_app, "market"),
    (household_app, "household"),
    (meter_app, "meter"),
    (reading_app, "reading"),
    (offer_app, "offer"),
    (trade_app, "trade"),
    (events_app, "events"),
]:
    app.add_typer(sub, name=name, no_args_is_help=True)

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


class CliError(Exception):
    """A failure the user can act on; shown as one line."""


def _pubkey(text: str) -> Pubkey:
    try:
        return Pubkey.from_string(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a base58 public key") from None


# Shared parameter types.
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MarketArg = Annotated[str, typer.Argument(help="Market address, or its numeric market id.")]
HouseholdArg = Annotated[Pubkey, typer.Argument(parser=_pubkey, help="Household address.")]
OfferArg = Annotated[Pubkey, typer.Argument(parser=_pubkey, help="Offer address.")]
TradeArg = Annotated[Pubkey, typer.Argument(parser=_pubkey, help="Trade address.")]
MeterOpt = Annotated[
    str, typer.Option("--meter", help="Meter public key, or the meter's keypair file.")
]
Wh = Annotated[int, typer.Option("--wh", min=1, help="Energy in Wh.")]


@dataclass
class Session:
    """What the root options decided, shared by every command."""

    settings: ClientSettings
    keypair_path: Path | None
    _signer: Keypair | None = field(default=None, init=False)

    @property
    def program_id(self) -> Pubkey:
        try:
            return Pubkey.from_string(self.settings.program_id)
        except ValueError:
            raise CliError(f"program id {self.settings.program_id!r} is not a public key") from None

    @property
    def signer(self) -> Keypair:
        if self._signer is None:
            if self.keypair_path is None:
                raise CliError("no keypair: pass --keypair PATH or set NISHATI_KEYPAIR")
            self._signer = load_keypair(self.keypair_path)
        return self._signer

    def market(self, ref: str) -> Pubkey:
        """A market by address or by numeric id."""
        ref = ref.strip()
        if ref.isdigit():
            if int(ref) >= 2**64:
                raise CliError(f"market id {ref} does not fit in 64 bits")
            return market_address(self.program_id, int(ref))[0]
        try:
            return Pubkey.from_string(ref)
        except ValueError:
            raise CliError(f"{ref!r} is neither a market address nor a market id") from None

    @asynccontextmanager
    async def client(self, paying: bool = False) -> AsyncIterator[NishatiClient]:
        """The program on the cluster, after checking it answers and has the program; with
        ``paying``, that the signer can pay a fee there."""
        url, program_id = self.settings.rpc_url, self.program_id
        signer = self.signer if paying else None
        chain = RpcChain(
            url, program_id, self.settings.commitment, SendPolicy.from_settings(self.settings)
        )
        try:
            try:
                await check_program_deployed(chain, program_id)
            except RpcError as error:
                raise CliError(f"no Solana JSON-RPC answers at {url} ({error})") from None
            except ProgramNotDeployed:
                raise CliError(
                    f"program {program_id} is not deployed at {url}: the wrong cluster, "
                    "or the wrong NISHATI_PROGRAM_ID"
                ) from None
            if signer is not None:
                balance = await chain.balance(signer.pubkey())
                if balance < 2 * LAMPORTS_PER_SIGNATURE:
                    raise CliError(_too_little_sol(signer.pubkey(), balance))
            yield NishatiClient(chain, program_id)
        finally:
            await chain.close()


def _too_little_sol(payer: Pubkey, balance: int) -> str:
    return f"{payer} has {balance:,} lamports: too little SOL for this transaction's fees and rent"


def _run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


def _session(ctx: typer.Context) -> Session:
    session = ctx.find_object(Session)
    assert session is not None
    return session


async def _fetch(kind: str, address: Pubkey, fetch: Awaitable[T]) -> T:
    """An account the user named, or a clear error."""
    try:
        return await fetch
    except AccountNotFound:
        raise CliError(f"no {kind} at {address}") from None
    except AccountTypeMismatch:
        raise CliError(f"{address} is not a Nishati {kind}") from None


def _emit(as_json: bool, data: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(plain(data), indent=2, sort_keys=True) + "\n")
    else:
        human()


def _kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def _fields(title: str, rows: Sequence[tuple[str, object]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, str(value))
    stdout.print(table)


def _rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")  # addresses whole, to copy
    for row in rows:
        table.add_row(*(str(value) for value in row))
    stdout.print(table)


def _digest(text: str) -> bytes:
    """The 32-byte hash of a payment reference or receipt as the chain keeps it."""
    return hashlib.sha256(text.encode()).digest()


def _meter_key(value: str) -> Pubkey:
    """A meter public key, or the public key of a meter keypair file."""
    path = Path(value)
    if path.suffix == ".json" or path.exists():
        return load_keypair(path).pubkey()
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise CliError(f"--meter {value!r} is neither a public key nor a keypair file") from None


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", "-u", help="JSON-RPC URL (env NISHATI_RPC_URL).")
    ] = None,
    ws_url: Annotated[
        str | None, typer.Option("--ws-url", help="Websocket URL (env NISHATI_WS_URL).")
    ] = None,
    keypair: Annotated[
        Path | None,
        typer.Option("--keypair", "-k", help="Signer and fee payer (env NISHATI_KEYPAIR)."),
    ] = None,
    program_id: Annotated[
        str | None, typer.Option("--program-id", help="Program (env NISHATI_PROGRAM_ID).")
    ] = None,
) -> None:
    """Nishati: a peer-to-peer solar energy market on Solana."""
    settings = ClientSettings()
    updates = {"rpc_url": url, "ws_url": ws_url, "program_id": program_id, "keypair": keypair}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    ctx.obj = Session(settings, settings.keypair)


# Market


def _market_rows(market: Market, supply_wh: int) -> list[tuple[str, object]]:
    c = market.config
    return [
        ("address", market.address),
        ("market id", market.market_id),
        ("admin", market.admin),
        ("oracle", c.oracle_authority),
        ("fee", f"{c.fee_bps} bps"),
        (
            "price bounds",
            f"{_kes(c.min_price_cents_per_kwh)} to {_kes(c.max_price_cents_per_kwh)} per kWh",
        ),
        ("payment deadline", f"{c.payment_deadline_secs} s"),
        ("paused", "yes" if market.paused else "no"),
        ("energy mint", market.energy_mint),
        ("energy supply", f"{supply_wh:,} Wh"),
    ]


async def _show_market(
    client: NishatiClient, address: Pubkey, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    market = await _fetch("market", address, client.market(address))
    supply = await client.energy_supply(market.energy_mint)
    data = {"market": market, "energy_supply_wh": supply, **(extra or {})}
    _emit(
        as_json, data, lambda: _fields(f"Market {market.market_id}", _market_rows(market, supply))
    )


@market_app.command("init")
def market_init(
    ctx: typer.Context,
    market_id: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="Numeric id.")],
    oracle: Annotated[
        Pubkey | None, typer.Option(parser=_pubkey, help="Oracle authority (default: the signer).")
    ] = None,
    fee_bps: Annotated[int, typer.Option(min=0, help="Market fee, basis points.")] = 150,
    min_price_cents: Annotated[int, typer.Option(min=1, help="KES cents per kWh.")] = 1_000,
    max_price_cents: Annotated[int, typer.Option(min=1, help="KES cents per kWh.")] = 6_000,
    payment_deadline_secs: Annotated[int, typer.Option(min=1)] = 900,
    as_json: Json = False,
) -> None:
    """Initialise a market; the signer becomes its admin."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            admin = session.signer
            config = MarketConfig(
                oracle or admin.pubkey(),
                fee_bps,
                min_price_cents,
                max_price_cents,
                payment_deadline_secs,
            )
            outcome = await client.market_initialize(
                payer=admin, admin=admin, market_id=market_id, config=config
            )
            address = market_address(client.program.program_id, market_id)[0]
            await _show_market(client, address, as_json, {"signature": outcome.signature})

    _run(work())


@market_app.command("show")
def market_show(ctx: typer.Context, market: MarketArg, as_json: Json = False) -> None:
    """Show a market."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            await _show_market(client, session.market(market), as_json)

    _run(work())


@market_app.command("update")
def market_update(
    ctx: typer.Context,
    market: MarketArg,
    oracle: Annotated[Pubkey | None, typer.Option(parser=_pubkey)] = None,
    fee_bps: Annotated[int | None, typer.Option(min=0)] = None,
    min_price_cents: Annotated[int | None, typer.Option(min=1)] = None,
    max_price_cents: Annotated[int | None, typer.Option(min=1)] = None,
    payment_deadline_secs: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: Json = False,
) -> None:
    """Change a market's settings (admin only); unnamed ones stay."""
    session = _session(ctx)
    update = MarketUpdate(oracle, fee_bps, min_price_cents, max_price_cents, payment_deadline_secs)
    if update == MarketUpdate():
        raise CliError("nothing to update: name at least one setting")

    async def work() -> None:
        async with session.client(paying=True) as client:
            address = session.market(market)
            admin = session.signer
            outcome = await client.market_update(
                payer=admin, admin=admin, market=address, update=update
            )
            await _show_market(client, address, as_json, {"signature": outcome.signature})

    _run(work())


def _pause_or_resume(ctx: typer.Context, market: str, as_json: bool, pause: bool) -> None:
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            address, admin = session.market(market), session.signer
            action = client.market_pause if pause else client.market_resume
            outcome = await action(payer=admin, admin=admin, market=address)
            await _show_market(client, address, as_json, {"signature": outcome.signature})

    _run(work())


@market_app.command("pause")
def market_pause(ctx: typer.Context, market: MarketArg, as_json: Json = False) -> None:
    """Pause a market: no new offers or trades (admin only)."""
    _pause_or_resume(ctx, market, as_json, pause=True)


@market_app.command("resume")
def market_resume(ctx: typer.Context, market: MarketArg, as_json: Json = False) -> None:
    """Resume a paused market (admin only)."""
    _pause_or_resume(ctx, market, as_json, pause=False)


# Households and meters


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
    household = await _fetch("household", address, client.household(address))
    energy = await client.energy_balance(household.energy_account)
    data = {"household": household, "energy_wh": energy, **(extra or {})}
    _emit(as_json, data, lambda: _fields("Household", _household_rows(household, energy)))


@household_app.command("register")
def household_register(
    ctx: typer.Context,
    market: MarketArg,
    phone: Annotated[str, typer.Option(help="M-Pesa number, e.g. 0712345678.")],
    meter: MeterOpt,
    owner: Annotated[
        Pubkey | None,
        typer.Option(parser=_pubkey, help="Owner of a custodial household (signer: the oracle)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Register a household: the signer's own, or with --owner a custodial one by the oracle.

    The chain keeps only a salted hash of the phone number (NISHATI_PHONE_SALT, hex)."""
    session = _session(ctx)
    commitment = phones.commitment(phones.salt_from_settings(session.settings), phone)
    meter_key = _meter_key(meter)

    async def work() -> None:
        async with session.client(paying=True) as client:
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

    _run(work())


@household_app.command("show")
def household_show(ctx: typer.Context, household: HouseholdArg, as_json: Json = False) -> None:
    """Show a household and its energy balance."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            await _show_household(client, household, as_json)

    _run(work())


@household_app.command("list")
def household_list(ctx: typer.Context, market: MarketArg, as_json: Json = False) -> None:
    """List a market's households."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            households = await client.households(session.market(market))
            rows = [
                (h.address, h.owner, "yes" if h.custodial else "no", h.meter, h.total_exported_wh)
                for h in households
            ]
            columns = ["household", "owner", "custodial", "meter", "exported Wh"]
            _emit(
                as_json,
                {"households": households},
                lambda: _rows(f"{len(rows)} households", columns, rows),
            )

    _run(work())


@household_app.command("set-meter")
def household_set_meter(
    ctx: typer.Context, household: HouseholdArg, meter: MeterOpt, as_json: Json = False
) -> None:
    """Replace a household's meter (signer: its owner, or the market admin)."""
    session = _session(ctx)
    meter_key = _meter_key(meter)

    async def work() -> None:
        async with session.client(paying=True) as client:
            current = await _fetch("household", household, client.household(household))
            signer = session.signer
            outcome = await client.household_set_meter(
                payer=signer, authority=signer, household=current, meter=meter_key
            )
            await _show_household(client, household, as_json, {"signature": outcome.signature})

    _run(work())


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
    _emit(as_json, data, lambda: stdout.print(f"meter {keypair.pubkey()} written to {path}"))


@reading_app.command("sign")
def reading_sign(
    ctx: typer.Context,
    market: Annotated[str, typer.Option(help="Market address or numeric id.")],
    meter_keypair: Annotated[Path, typer.Option(help="The meter's keypair file.")],
    counter: Annotated[int, typer.Option(min=1, max=2**64 - 1, help="Above the last one.")],
    exported_wh: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="Cumulative Wh.")],
    imported_wh: Annotated[int, typer.Option(min=0, max=2**64 - 1, help="Cumulative Wh.")] = 0,
    timestamp: Annotated[
        int | None, typer.Option(min=0, help="Unix seconds (default: the local clock).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Readings file; appended to if it exists.")] = Path(
        "readings.json"
    ),
    as_json: Json = False,
) -> None:
    """Act as a meter: sign a reading and add it to a readings file (no network)."""
    session = _session(ctx)
    key = ed25519_private_key(load_keypair(meter_keypair))
    when = int(time.time()) if timestamp is None else timestamp
    reading = Reading.for_market(session.market(market), counter, when, exported_wh, imported_wh)
    signed = sign(reading, key)
    readings = load_readings(out.read_text(encoding="utf-8")) if out.exists() else []
    readings.append(signed)
    out.write_text(dump_readings(readings), encoding="utf-8")
    data = {"meter": signed.meter, "counter": counter, "file": str(out), "readings": len(readings)}
    _emit(
        as_json,
        data,
        lambda: stdout.print(f"reading {counter} of meter {signed.meter} added to {out}"),
    )


# Attestation


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


@app.command("attest")
def attest(
    ctx: typer.Context,
    readings_file: Annotated[Path, typer.Argument(help="Readings file from `reading sign`.")],
    market: Annotated[str, typer.Option(help="Market address or numeric id.")],
    as_json: Json = False,
) -> None:
    """Submit a readings file as the oracle (the signer), batching readings per transaction."""
    session = _session(ctx)
    market_address = session.market(market)
    try:
        readings = load_readings(readings_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"readings file {readings_file} does not exist") from None
    if not readings:
        raise CliError(f"{readings_file} holds no readings")

    async def work() -> None:
        async with session.client(paying=True) as client:
            oracle = session.signer
            located = []
            for signed in readings:
                verify_signature(signed)
                if not Reading.decode(signed.message).is_for(market_address):
                    raise CliError(f"a reading of meter {signed.meter} is for another market")
                record_address = client.program.meter_record_address(market_address, signed.meter)
                record = await _fetch(
                    "registered meter", signed.meter, client.meter_record(record_address)
                )
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
                rows = [
                    (a["household"], a["counter"], a["exported_wh"], a["minted_wh"])
                    for a in attested
                ]
                title = (
                    f"{len(readings)} readings in {len(sent)} transactions: {minted:,} Wh minted"
                )
                _rows(title, ["household", "counter", "exported Wh", "minted Wh"], rows)

            _emit(as_json, data, human)

    _run(work())


# Offers


def _offer_rows(o: Offer) -> list[tuple[str, object]]:
    return [
        ("address", o.address),
        ("seller", o.seller),
        ("offer id", o.offer_id),
        ("price", f"{_kes(o.price_cents_per_kwh)} per kWh"),
        ("available", f"{o.unreserved_wh:,} Wh"),
        ("reserved", f"{o.reserved_wh:,} Wh"),
        ("expires at", o.expires_at),
        ("cancelled", "yes" if o.cancelled else "no"),
    ]


@offer_app.command("create")
def offer_create(
    ctx: typer.Context,
    household: HouseholdArg,
    wh: Wh,
    price_cents: Annotated[int, typer.Option(min=1, help="KES cents per kWh.")],
    expires_in: Annotated[int, typer.Option(min=1, help="Seconds from now.")] = 86_400,
    as_json: Json = False,
) -> None:
    """Offer a household's energy (signer: its owner, or the oracle if custodial)."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            seller = await _fetch("household", household, client.household(household))
            signer = session.signer
            created = await client.offer_create(
                payer=signer,
                authority=signer,
                household=seller,
                wh=wh,
                price_cents_per_kwh=price_cents,
                expires_at=await cluster_time(client.chain) + expires_in,
            )
            offer = await client.offer(created.address)
            data = {"offer": offer, "signature": created.outcome.signature}
            _emit(as_json, data, lambda: _fields("Offer", _offer_rows(offer)))

    _run(work())


@offer_app.command("list")
def offer_list(
    ctx: typer.Context,
    market: MarketArg,
    seller: Annotated[
        Pubkey | None, typer.Option(parser=_pubkey, help="Only this household's.")
    ] = None,
    as_json: Json = False,
) -> None:
    """List a market's offers."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            offers = await client.offers(session.market(market), seller)
            rows = [
                (o.address, o.seller, o.price_cents_per_kwh, o.unreserved_wh, o.reserved_wh)
                for o in offers
            ]
            columns = ["offer", "seller", "cents/kWh", "available Wh", "reserved Wh"]
            _emit(as_json, {"offers": offers}, lambda: _rows(f"{len(rows)} offers", columns, rows))

    _run(work())


@offer_app.command("cancel")
def offer_cancel(ctx: typer.Context, offer: OfferArg, as_json: Json = False) -> None:
    """Withdraw an offer's unreserved energy; it closes once no trade is pending."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            current = await _fetch("offer", offer, client.offer(offer))
            signer = session.signer
            outcome = await client.offer_cancel(payer=signer, caller=signer, offer=current)
            [event] = [e for e in client.program.events(outcome.logs) if e.name == "OfferCancelled"]
            data = {
                "offer": offer,
                "signature": outcome.signature,
                "returned_wh": event.data.returned_wh,
                "closed": event.data.closed,
            }
            _emit(
                as_json,
                data,
                lambda: stdout.print(
                    f"offer {offer}: {event.data.returned_wh:,} Wh returned"
                    + (", closed" if event.data.closed else ", open until its trades end")
                ),
            )

    _run(work())


# Trades


def _trade_rows(t: Trade) -> list[tuple[str, object]]:
    return [
        ("address", t.address),
        ("offer", t.offer),
        ("buyer", t.buyer),
        ("energy", f"{t.wh:,} Wh"),
        ("price", f"{_kes(t.price_cents_per_kwh)} per kWh"),
        ("total", _kes(t.total_cents)),
        ("deadline", t.deadline),
    ]


@trade_app.command("open")
def trade_open(
    ctx: typer.Context,
    offer: OfferArg,
    buyer: Annotated[Pubkey, typer.Option(parser=_pubkey, help="Buyer household.")],
    wh: Wh,
    payment_ref: Annotated[
        str, typer.Option(help="Payment reference; the chain keeps its SHA-256.")
    ],
    as_json: Json = False,
) -> None:
    """Reserve energy of an offer for a buyer (signer: the buyer's owner, or the oracle)."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            current = await _fetch("offer", offer, client.offer(offer))
            await _fetch("household", buyer, client.household(buyer))
            signer = session.signer
            created = await client.trade_open(
                payer=signer,
                authority=signer,
                market=current.market,
                offer=offer,
                buyer=buyer,
                wh=wh,
                payment_ref_hash=_digest(payment_ref),
            )
            trade = await client.trade(created.address)
            data = {"trade": trade, "signature": created.outcome.signature}
            _emit(as_json, data, lambda: _fields("Trade", _trade_rows(trade)))

    _run(work())


@trade_app.command("show")
def trade_show(ctx: typer.Context, trade: TradeArg, as_json: Json = False) -> None:
    """Show an open trade."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            found = await _fetch("open trade", trade, client.trade(trade))
            _emit(as_json, {"trade": found}, lambda: _fields("Trade", _trade_rows(found)))

    _run(work())


@trade_app.command("list")
def trade_list(
    ctx: typer.Context,
    market: MarketArg,
    offer: Annotated[Pubkey | None, typer.Option(parser=_pubkey)] = None,
    buyer: Annotated[Pubkey | None, typer.Option(parser=_pubkey)] = None,
    as_json: Json = False,
) -> None:
    """List a market's open trades."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client() as client:
            trades = await client.trades(session.market(market), offer, buyer)
            rows = [(t.address, t.offer, t.buyer, t.wh, t.total_cents) for t in trades]
            columns = ["trade", "offer", "buyer", "Wh", "KES cents"]
            _emit(as_json, {"trades": trades}, lambda: _rows(f"{len(rows)} trades", columns, rows))

    _run(work())


@trade_app.command("settle")
def trade_settle(
    ctx: typer.Context,
    trade: TradeArg,
    receipt: Annotated[str, typer.Option(help="M-Pesa receipt; the chain keeps its SHA-256.")],
    as_json: Json = False,
) -> None:
    """Release a paid trade's energy to its buyer (signer: the oracle)."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            current = await _fetch("open trade", trade, client.trade(trade))
            oracle = session.signer
            outcome = await client.trade_settle(
                payer=oracle, oracle=oracle, trade=current, receipt_hash=_digest(receipt)
            )
            buyer_wh = await client.energy_balance(current.buyer_energy_account)
            data = {
                "trade": trade,
                "signature": outcome.signature,
                "buyer": current.buyer,
                "wh": current.wh,
                "total_cents": current.total_cents,
                "buyer_energy_wh": buyer_wh,
            }
            _emit(
                as_json,
                data,
                lambda: stdout.print(
                    f"trade {trade} settled: {current.wh:,} Wh to {current.buyer} "
                    f"for {_kes(current.total_cents)}; buyer now holds {buyer_wh:,} Wh"
                ),
            )

    _run(work())


@trade_app.command("cancel")
def trade_cancel(ctx: typer.Context, trade: TradeArg, as_json: Json = False) -> None:
    """Cancel an unpaid trade (the oracle any time, anyone after its deadline)."""
    session = _session(ctx)

    async def work() -> None:
        async with session.client(paying=True) as client:
            current = await _fetch("open trade", trade, client.trade(trade))
            signer = session.signer
            outcome = await client.trade_cancel(payer=signer, caller=signer, trade=current)
            data = {"trade": trade, "signature": outcome.signature, "returned_wh": current.wh}
            _emit(
                as_json,
                data,
                lambda: stdout.print(f"trade {trade} cancelled: {current.wh:,} Wh back on offer"),
            )

    _run(work())


# Events


@events_app.command("watch")
def events_watch(
    ctx: typer.Context,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    as_json: Json = False,
) -> None:
    """Follow the program's events as they are confirmed (JSON lines with --json)."""
    session = _session(ctx)
    ws_url = session.settings.ws_url or websocket_url(session.settings.rpc_url)

    async def work() -> None:
        async with session.client() as client:
            seen = 0
            commitment = session.settings.commitment

            def subscribed() -> None:
                stderr.print(f"following {client.program.program_id} events at {ws_url}")

            events = watch_events(ws_url, client.program, commitment, on_subscribed=subscribed)
            async for event in events:
                data = plain(event.data)
                if as_json:
                    line = {"signature": event.signature, "slot": event.slot, "name": event.name}
                    sys.stdout.write(json.dumps(plain({**line, "data": data}), sort_keys=True))
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                else:
                    details = ", ".join(f"{k}={v}" for k, v in data.items())
                    stdout.print(f"[bold]{event.name}[/bold] {details}")
                seen += 1
                if count is not None and seen >= count:
                    return

    _run(work())


# Entry point


def _failure(error: BaseException) -> str:
    """One line for an error a user can meet."""
    if isinstance(error, NishatiProgramError):
        return f"the program refused: {error}"
    if isinstance(error, TransactionFailed):
        text = " ".join([error.reason, *error.logs])
        if any(sign in text for sign in ("insufficient lamports", "InsufficientFunds")):
            return f"too little SOL for this transaction's fees and rent ({error.reason})"
        if "AccountNotFound" in error.reason:
            return "the fee payer has no SOL on this cluster"
        return f"transaction failed: {error.reason}"
    return str(error)


def _fail(message: str, code: int = 1) -> NoReturn:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"nishati: error: {first_line}\n")
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: typer in non-standalone mode, every error as one line."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args, prog_name="nishati", standalone_mode=False)
    except NoArgsIsHelpError as error:
        error.show()
        raise SystemExit(2) from None
    except ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except (CliError, NishatiClientError) as error:
        _fail(_failure(error))
    except Exception as error:
        if os.environ.get("NISHATI_DEBUG"):
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (NISHATI_DEBUG=1 shows where)")
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
