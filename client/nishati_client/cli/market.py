"""``nishati market``: initialise, show, update, pause, resume."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from solders.pubkey import Pubkey

from nishati_client.cli.output import emit, fields, kes
from nishati_client.cli.params import Json, MarketArg, pubkey
from nishati_client.cli.session import CliError, Session, fetch, in_session
from nishati_client.market import Market, MarketConfig, MarketUpdate
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient

app = typer.Typer(help="Markets: initialise, show, update, pause, resume.")

ORACLE = "Oracle authority: settles trades and attests readings"
FEE = "Market fee in basis points (150 = 1.5 %), kept back from each payout"
MIN_PRICE = "Lowest price an offer may ask, KES cents per kWh"
MAX_PRICE = "Highest price an offer may ask, KES cents per kWh"
DEADLINE = "Seconds a buyer has to pay a trade"
GRACE = "Seconds after a trade's deadline in which only the oracle may cancel it (60 to 86,400)"
EXPORT = (
    "Most power a meter may export, W: no attestation mints more than it over the chain time "
    "since the meter's last one"
)
MINT_CAP = "Most Wh the whole market mints in a UTC day of the chain clock"
OPEN_TRADES = "Most pending trades one buyer household may hold at once"
UNCHANGED = " (unchanged if not given)."
U64 = 2**64 - 1
U16 = 2**16 - 1


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
            f"{kes(c.min_price_cents_per_kwh)} to {kes(c.max_price_cents_per_kwh)} per kWh",
        ),
        ("payment deadline", f"{c.payment_deadline_secs} s"),
        ("cancel grace", f"{c.cancel_grace_secs} s"),
        ("meter export limit", f"{c.max_export_watts:,} W"),
        ("daily mint cap", f"{c.daily_mint_cap_wh:,} Wh"),
        ("minted today", f"{market.minted_today_wh:,} Wh (UTC day {market.mint_day})"),
        ("open trades per buyer", c.max_open_trades_per_buyer),
        ("paused", "yes" if market.paused else "no"),
        ("energy mint", market.energy_mint),
        ("energy supply", f"{supply_wh:,} Wh"),
    ]


async def _show_market(
    client: NishatiClient, address: Pubkey, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    market = await fetch("market", address, client.market(address))
    supply = await client.energy_supply(market.energy_mint)
    data = {"market": market, "energy_supply_wh": supply, **(extra or {})}
    emit(as_json, data, lambda: fields(f"Market {market.market_id}", _market_rows(market, supply)))


@app.command("init")
@in_session
async def market_init(
    session: Session,
    market_id: Annotated[
        int,
        typer.Option(min=0, max=2**64 - 1, help="The market's numeric id; its address follows."),
    ],
    oracle: Annotated[
        Pubkey | None, typer.Option(parser=pubkey, help=f"{ORACLE} (default: the signer).")
    ] = None,
    fee_bps: Annotated[int, typer.Option(min=0, help=f"{FEE}.")] = 150,
    min_price_cents: Annotated[int, typer.Option(min=1, help=f"{MIN_PRICE}.")] = 1_000,
    max_price_cents: Annotated[int, typer.Option(min=1, help=f"{MAX_PRICE}.")] = 6_000,
    payment_deadline_secs: Annotated[int, typer.Option(min=1, help=f"{DEADLINE}.")] = 900,
    cancel_grace_secs: Annotated[int, typer.Option(min=0, max=U64, help=f"{GRACE}.")] = 600,
    max_export_watts: Annotated[int, typer.Option(min=0, max=U64, help=f"{EXPORT}.")] = 10_000,
    daily_mint_cap_wh: Annotated[
        int, typer.Option(min=0, max=U64, help=f"{MINT_CAP}.")
    ] = 10_000_000,
    max_open_trades_per_buyer: Annotated[
        int, typer.Option(min=0, max=U16, help=f"{OPEN_TRADES}.")
    ] = 8,
    as_json: Json = False,
) -> None:
    """Initialise a market; the signer becomes its admin."""
    client = await session.connect(paying=True)
    admin = session.signer
    config = MarketConfig(
        oracle_authority=oracle or admin.pubkey(),
        fee_bps=fee_bps,
        min_price_cents_per_kwh=min_price_cents,
        max_price_cents_per_kwh=max_price_cents,
        payment_deadline_secs=payment_deadline_secs,
        cancel_grace_secs=cancel_grace_secs,
        max_export_watts=max_export_watts,
        daily_mint_cap_wh=daily_mint_cap_wh,
        max_open_trades_per_buyer=max_open_trades_per_buyer,
    )
    outcome = await client.market_initialize(
        payer=admin, admin=admin, market_id=market_id, config=config
    )
    address = market_address(client.program.program_id, market_id)[0]
    await _show_market(client, address, as_json, {"signature": outcome.signature})


@app.command("show")
@in_session
async def market_show(session: Session, market: MarketArg, as_json: Json = False) -> None:
    """Show a market."""
    client = await session.connect()
    await _show_market(client, session.market(market), as_json)


@app.command("update")
@in_session
async def market_update(
    session: Session,
    market: MarketArg,
    oracle: Annotated[Pubkey | None, typer.Option(parser=pubkey, help=ORACLE + UNCHANGED)] = None,
    fee_bps: Annotated[int | None, typer.Option(min=0, help=FEE + UNCHANGED)] = None,
    min_price_cents: Annotated[int | None, typer.Option(min=1, help=MIN_PRICE + UNCHANGED)] = None,
    max_price_cents: Annotated[int | None, typer.Option(min=1, help=MAX_PRICE + UNCHANGED)] = None,
    payment_deadline_secs: Annotated[
        int | None, typer.Option(min=1, help=DEADLINE + UNCHANGED)
    ] = None,
    cancel_grace_secs: Annotated[
        int | None, typer.Option(min=0, max=U64, help=GRACE + UNCHANGED)
    ] = None,
    max_export_watts: Annotated[
        int | None, typer.Option(min=0, max=U64, help=EXPORT + UNCHANGED)
    ] = None,
    daily_mint_cap_wh: Annotated[
        int | None, typer.Option(min=0, max=U64, help=MINT_CAP + UNCHANGED)
    ] = None,
    max_open_trades_per_buyer: Annotated[
        int | None, typer.Option(min=0, max=U16, help=OPEN_TRADES + UNCHANGED)
    ] = None,
    as_json: Json = False,
) -> None:
    """Change a market's settings (admin only); unnamed ones stay."""
    update = MarketUpdate(
        oracle_authority=oracle,
        fee_bps=fee_bps,
        min_price_cents_per_kwh=min_price_cents,
        max_price_cents_per_kwh=max_price_cents,
        payment_deadline_secs=payment_deadline_secs,
        cancel_grace_secs=cancel_grace_secs,
        max_export_watts=max_export_watts,
        daily_mint_cap_wh=daily_mint_cap_wh,
        max_open_trades_per_buyer=max_open_trades_per_buyer,
    )
    if update == MarketUpdate():
        raise CliError("nothing to update: name at least one setting")
    client = await session.connect(paying=True)
    address = session.market(market)
    admin = session.signer
    outcome = await client.market_update(payer=admin, admin=admin, market=address, update=update)
    await _show_market(client, address, as_json, {"signature": outcome.signature})


async def _pause_or_resume(session: Session, market: str, as_json: bool, pause: bool) -> None:
    client = await session.connect(paying=True)
    address, admin = session.market(market), session.signer
    action = client.market_pause if pause else client.market_resume
    outcome = await action(payer=admin, admin=admin, market=address)
    await _show_market(client, address, as_json, {"signature": outcome.signature})


@app.command("pause")
@in_session
async def market_pause(session: Session, market: MarketArg, as_json: Json = False) -> None:
    """Pause a market: no new offers or trades (admin only)."""
    await _pause_or_resume(session, market, as_json, pause=True)


@app.command("resume")
@in_session
async def market_resume(session: Session, market: MarketArg, as_json: Json = False) -> None:
    """Resume a paused market (admin only)."""
    await _pause_or_resume(session, market, as_json, pause=False)
