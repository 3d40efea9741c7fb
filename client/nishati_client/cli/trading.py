"""``nishati offer`` and ``nishati trade``: energy on offer, and its trades until settled or
cancelled."""

from __future__ import annotations

import hashlib
from typing import Annotated

import typer
from solders.pubkey import Pubkey

from nishati_client.chain import cluster_time
from nishati_client.cli.output import emit, fields, kes, rows, stdout, utc
from nishati_client.cli.params import HouseholdArg, Json, MarketArg, pubkey
from nishati_client.cli.session import Session, fetch, in_session
from nishati_client.trading import Offer, Trade

offer_app = typer.Typer(help="Offers of energy: create, list, cancel.")
trade_app = typer.Typer(help="Trades: open, show, list, settle, cancel.")

OfferArg = Annotated[Pubkey, typer.Argument(parser=pubkey, help="Offer address.")]
TradeArg = Annotated[Pubkey, typer.Argument(parser=pubkey, help="Trade address.")]


def _digest(text: str) -> bytes:
    """The 32-byte hash of a payment reference or receipt as the chain keeps it."""
    return hashlib.sha256(text.encode()).digest()


def _offer_rows(o: Offer) -> list[tuple[str, object]]:
    return [
        ("address", o.address),
        ("seller", o.seller),
        ("offer id", o.offer_id),
        ("price", f"{kes(o.price_cents_per_kwh)} per kWh"),
        ("available", f"{o.unreserved_wh:,} Wh"),
        ("reserved", f"{o.reserved_wh:,} Wh"),
        ("expires at", utc(o.expires_at)),
        ("cancelled", "yes" if o.cancelled else "no"),
    ]


@offer_app.command("create")
@in_session
async def offer_create(
    session: Session,
    household: HouseholdArg,
    wh: Annotated[int, typer.Option(min=1, help="Energy to offer from its balance, Wh.")],
    price_cents: Annotated[
        int, typer.Option(min=1, help="Price, KES cents per kWh, within the market's bounds.")
    ],
    expires_in: Annotated[
        int, typer.Option(min=1, help="Seconds the offer stands, from the cluster's clock.")
    ] = 86_400,
    as_json: Json = False,
) -> None:
    """Offer a household's energy (signer: its owner, or the oracle if custodial)."""
    client = await session.connect(paying=True)
    seller = await fetch("household", household, client.household(household))
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
    emit(as_json, data, lambda: fields("Offer", _offer_rows(offer)))


@offer_app.command("list")
@in_session
async def offer_list(
    session: Session,
    market: MarketArg,
    seller: Annotated[
        Pubkey | None, typer.Option(parser=pubkey, help="Only this seller household's offers.")
    ] = None,
    as_json: Json = False,
) -> None:
    """List a market's offers."""
    client = await session.connect()
    offers = await client.offers(session.market(market), seller)
    records = [
        (
            o.address,
            o.seller,
            o.price_cents_per_kwh,
            o.unreserved_wh,
            o.reserved_wh,
            utc(o.expires_at),
        )
        for o in offers
    ]
    columns = ["offer", "seller", "cents/kWh", "available Wh", "reserved Wh", "expires at"]
    emit(as_json, {"offers": offers}, lambda: rows(f"{len(records)} offers", columns, records))


@offer_app.command("cancel")
@in_session
async def offer_cancel(session: Session, offer: OfferArg, as_json: Json = False) -> None:
    """Withdraw an offer's unreserved energy; it closes once no trade is pending."""
    client = await session.connect(paying=True)
    current = await fetch("offer", offer, client.offer(offer))
    signer = session.signer
    outcome = await client.offer_cancel(payer=signer, caller=signer, offer=current)
    [event] = [e for e in client.program.events(outcome.logs) if e.name == "OfferCancelled"]
    data = {
        "offer": offer,
        "signature": outcome.signature,
        "returned_wh": event.data.returned_wh,
        "closed": event.data.closed,
    }
    emit(
        as_json,
        data,
        lambda: stdout.print(
            f"offer {offer}: {event.data.returned_wh:,} Wh returned"
            + (", closed" if event.data.closed else ", open until its trades end")
        ),
    )


def _trade_rows(t: Trade) -> list[tuple[str, object]]:
    return [
        ("address", t.address),
        ("offer", t.offer),
        ("buyer", t.buyer),
        ("energy", f"{t.wh:,} Wh"),
        ("price", f"{kes(t.price_cents_per_kwh)} per kWh"),
        ("total", kes(t.total_cents)),
        ("deadline", utc(t.deadline)),
        ("trade index", t.trade_index),
    ]


@trade_app.command("open")
@in_session
async def trade_open(
    session: Session,
    offer: OfferArg,
    buyer: Annotated[Pubkey, typer.Option(parser=pubkey, help="The buyer's household.")],
    wh: Annotated[int, typer.Option(min=1, help="Energy to reserve for the buyer, Wh.")],
    payment_ref: Annotated[
        str,
        typer.Option(
            help="The payment's reference (e.g. M-Pesa's CheckoutRequestID); the chain keeps "
            "its SHA-256."
        ),
    ],
    as_json: Json = False,
) -> None:
    """Reserve energy of an offer for a buyer (signer: the buyer's owner, or the oracle)."""
    client = await session.connect(paying=True)
    current = await fetch("offer", offer, client.offer(offer))
    await fetch("household", buyer, client.household(buyer))
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
    emit(as_json, data, lambda: fields("Trade", _trade_rows(trade)))


@trade_app.command("show")
@in_session
async def trade_show(session: Session, trade: TradeArg, as_json: Json = False) -> None:
    """Show an open trade."""
    client = await session.connect()
    found = await fetch("open trade", trade, client.trade(trade))
    emit(as_json, {"trade": found}, lambda: fields("Trade", _trade_rows(found)))


@trade_app.command("list")
@in_session
async def trade_list(
    session: Session,
    market: MarketArg,
    offer: Annotated[
        Pubkey | None, typer.Option(parser=pubkey, help="Only this offer's trades.")
    ] = None,
    buyer: Annotated[
        Pubkey | None, typer.Option(parser=pubkey, help="Only this buyer household's trades.")
    ] = None,
    as_json: Json = False,
) -> None:
    """List a market's open trades."""
    client = await session.connect()
    trades = await client.trades(session.market(market), offer, buyer)
    records = [(t.address, t.offer, t.buyer, t.wh, t.total_cents, utc(t.deadline)) for t in trades]
    columns = ["trade", "offer", "buyer", "Wh", "KES cents", "deadline"]
    emit(as_json, {"trades": trades}, lambda: rows(f"{len(records)} trades", columns, records))


@trade_app.command("settle")
@in_session
async def trade_settle(
    session: Session,
    trade: TradeArg,
    receipt: Annotated[str, typer.Option(help="M-Pesa receipt; the chain keeps its SHA-256.")],
    buyer: Annotated[
        Pubkey, typer.Option(parser=pubkey, help="The buyer household the payment was for.")
    ],
    wh: Annotated[int, typer.Option(min=1, help="The energy the payment was for, Wh.")],
    total_cents: Annotated[
        int, typer.Option(min=1, help="What the buyer paid, KES cents (the trade's total).")
    ],
    as_json: Json = False,
) -> None:
    """Release a paid trade's energy to its buyer (signer: the oracle). Name what the payment
    was for: the program refuses a trade holding another buyer, Wh or total."""
    client = await session.connect(paying=True)
    current = await fetch("open trade", trade, client.trade(trade))
    oracle = session.signer
    outcome = await client.trade_settle(
        payer=oracle,
        oracle=oracle,
        trade=current,
        receipt_hash=_digest(receipt),
        buyer=buyer,
        wh=wh,
        total_cents=total_cents,
    )
    buyer_wh = await client.energy_balance(client.program.energy_account(buyer))
    data = {
        "trade": trade,
        "signature": outcome.signature,
        "buyer": buyer,
        "wh": wh,
        "total_cents": total_cents,
        "buyer_energy_wh": buyer_wh,
    }
    emit(
        as_json,
        data,
        lambda: stdout.print(
            f"trade {trade} settled: {wh:,} Wh to {buyer} "
            f"for {kes(total_cents)}; buyer now holds {buyer_wh:,} Wh"
        ),
    )


@trade_app.command("cancel")
@in_session
async def trade_cancel(session: Session, trade: TradeArg, as_json: Json = False) -> None:
    """Cancel an unpaid trade (the oracle any time, anyone once its deadline and the market's
    cancel grace have passed)."""
    client = await session.connect(paying=True)
    current = await fetch("open trade", trade, client.trade(trade))
    signer = session.signer
    outcome = await client.trade_cancel(payer=signer, caller=signer, trade=current)
    data = {"trade": trade, "signature": outcome.signature, "returned_wh": current.wh}
    emit(
        as_json,
        data,
        lambda: stdout.print(f"trade {trade} cancelled: {current.wh:,} Wh back on offer"),
    )
