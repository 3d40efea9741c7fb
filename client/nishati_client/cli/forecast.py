"""``nishati forecast``, ``skill``, ``advice``, ``pv-system`` and ``auto-sell``: what the oracle
forecasts for a household and advises it, the PV system it forecasts from, and the offer it may
keep open for the household's surplus. Each asks the oracle (``--oracle-url``), signed with the
keypair: the household's owner's, or an installer's the market approves."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from solders.pubkey import Pubkey

from nishati_client.cli.output import emit, fields, kes, rows, stdout, utc
from nishati_client.cli.params import HouseholdArg, Json, pubkey
from nishati_client.cli.session import Session, in_session

pv_system_app = typer.Typer(help="A household's PV system, kept by the oracle: show, set.")
auto_sell_app = typer.Typer(
    help="Auto-sell: the oracle keeps an offer open for a custodial household's forecast "
    "surplus, within its limits (show, set, stop, offers)."
)

# The PV system's fields, in the order they are shown, with their units.
PV_FIELDS = [
    ("latitude", "°"),
    ("longitude", "°"),
    ("altitude_m", " m"),
    ("capacity_wp", " Wp"),
    ("tilt_deg", "°"),
    ("azimuth_deg", "° (0 north, 180 south)"),
    ("inverter_limit_w", " W"),
]


@in_session
async def forecast(
    session: Session,
    household: HouseholdArg,
    hours: Annotated[int, typer.Option(min=1, max=384, help="Hours of steps to print.")] = 12,
    as_json: Json = False,
) -> None:
    """A household's forecast in 15-minute steps: production, consumption, surplus, p10-p90."""
    outlook = await session.oracle().forecast(household)
    steps = outlook["steps"][: hours * 4]
    records = [
        (
            utc(step["end"]),
            step["production_wh"],
            step["consumption_wh"],
            step["surplus_wh"],
            f"{step['p10_wh']} to {step['p90_wh']}",
        )
        for step in steps
    ]
    columns = ["step ends", "production Wh", "consumption Wh", "surplus Wh", "p10 to p90 Wh"]
    made = utc(int(outlook["made_at"]))
    title = f"Forecast for {household} (from {outlook['source']}, made {made})"
    emit(as_json, {"forecast": outlook}, lambda: rows(title, columns, records))


def _horizon(secs: int) -> str:
    return f"{secs // 3_600} h ahead" if secs % 3_600 == 0 else f"{secs // 60} min ahead"


def _skill_records(found: dict[str, Any]) -> list[tuple[object, ...]]:
    def wh(value: float | None) -> str:
        return "none yet" if value is None else f"{value:,.1f}"

    return [
        (
            _horizon(h["horizon_secs"]),
            h["steps"],
            wh(h["mae_wh"]),
            wh(h["reference_mae_wh"]),
            "none yet" if h["skill"] is None else f"{h['skill']:.3f}",
        )
        for h in found["horizons"]
    ]


SKILL_COLUMNS = ["horizon", "scored steps", "MAE Wh", "smart persistence MAE Wh", "skill"]


@in_session
async def skill(
    session: Session,
    household: Annotated[
        Pubkey | None,
        typer.Argument(parser=pubkey, help="Household address; the whole market without one."),
    ] = None,
    as_json: Json = False,
) -> None:
    """How past forecasts did against the meters: MAE and skill per horizon.

    Skill is against smart persistence: above 0 beats it, 1 is perfect."""
    found = await session.oracle().skill(household)
    whose = "the whole market" if found["household"] is None else found["household"]
    title = f"Forecast skill of {whose} ({found['homes']} homes scored)"
    emit(as_json, {"skill": found}, lambda: rows(title, SKILL_COLUMNS, _skill_records(found)))


def _advice_rows(found: dict[str, Any]) -> list[tuple[str, object]]:
    advisor = found["advisor"]
    if found["fallback_reason"] == "no_key":
        advisor = f"{advisor} (no Gemini key)"
    elif found["fallback_reason"] is not None:
        advisor = f"{advisor} (Gemini's answer not taken: {found['fallback_reason']})"
    listed: list[tuple[str, object]] = [("advisor", advisor), ("do", found["action"])]
    sell, buy = found["sell"], found["buy"]
    if sell is not None:
        listed.append(
            (
                "offer",
                f"{sell['offer_wh']:,} Wh at {kes(sell['price_cents_per_kwh'])} per kWh until "
                f"{utc(sell['until'])}",
            )
        )
    if buy is not None:
        listed.append(
            (
                "shortage",
                f"{buy['shortage_wh']:,} Wh from {utc(buy['shortage_start'])} to "
                f"{utc(buy['shortage_end'])}",
            )
        )
        listed += [
            (
                "buy",
                f"{p['wh']:,} Wh from offer {p['offer']} at {kes(p['price_cents_per_kwh'])} "
                f"per kWh: {kes(p['cost_cents'])}",
            )
            for p in buy["purchases"]
        ] or [("buy", "no offer is open to cover it")]
    listed += [("why", found["explanation_en"]), ("kwa nini", found["explanation_sw"])]
    return listed


@in_session
async def advice(session: Session, household: HouseholdArg, as_json: Json = False) -> None:
    """What a household should sell or buy now, and why (English and Swahili)."""
    found = await session.oracle().advice(household)
    emit(as_json, {"advice": found}, lambda: fields("Advice", _advice_rows(found)))


def _pv_rows(system: dict[str, Any]) -> list[tuple[str, object]]:
    listed: list[tuple[str, object]] = [
        (name.replace("_", " "), f"{system[name]}{unit}") for name, unit in PV_FIELDS
    ]
    if system["defaults"]:
        listed.append(("set", "no: a Nairobi rooftop's defaults"))
    return listed


def _show_pv(as_json: bool, system: dict[str, Any]) -> None:
    emit(as_json, {"pv_system": system}, lambda: fields("PV system", _pv_rows(system)))


@pv_system_app.command("show")
@in_session
async def pv_system_show(session: Session, household: HouseholdArg, as_json: Json = False) -> None:
    """Show a household's PV system (the defaults if none was set)."""
    _show_pv(as_json, await session.oracle().pv_system(household))


@pv_system_app.command("set")
@in_session
async def pv_system_set(
    session: Session,
    household: HouseholdArg,
    latitude: Annotated[float | None, typer.Option(help="Degrees, -90 to 90.")] = None,
    longitude: Annotated[float | None, typer.Option(help="Degrees, -180 to 180.")] = None,
    altitude_m: Annotated[int | None, typer.Option(help="Metres above sea level.")] = None,
    capacity_wp: Annotated[int | None, typer.Option(help="Panels' peak power, W.")] = None,
    tilt_deg: Annotated[float | None, typer.Option(help="Degrees from horizontal.")] = None,
    azimuth_deg: Annotated[
        float | None, typer.Option(help="Degrees clockwise from north (180 faces south).")
    ] = None,
    inverter_limit_w: Annotated[int | None, typer.Option(help="Inverter's AC limit, W.")] = None,
    as_json: Json = False,
) -> None:
    """Change a household's PV system: the options given, the rest kept as they are."""
    oracle = session.oracle()
    current = await oracle.pv_system(household)
    given = {
        "latitude": latitude,
        "longitude": longitude,
        "altitude_m": altitude_m,
        "capacity_wp": capacity_wp,
        "tilt_deg": tilt_deg,
        "azimuth_deg": azimuth_deg,
        "inverter_limit_w": inverter_limit_w,
    }
    system = {name: current[name] for name, _ in PV_FIELDS}
    system |= {name: value for name, value in given.items() if value is not None}
    _show_pv(as_json, await oracle.set_pv_system(household, system))


def _offer_record(offer: dict[str, Any]) -> tuple[object, ...]:
    closed = "open" if offer["closed_at"] is None else f"closed: {offer['closed_why']}"
    return (
        offer["offer"],
        offer["wh"],
        offer["price_cents_per_kwh"],
        utc(offer["expires_at"]),
        offer["why"],
        closed,
    )


OFFER_COLUMNS = ["offer", "Wh", "cents/kWh", "expires at", "why", "state"]


def _auto_sell_rows(state: dict[str, Any]) -> list[tuple[str, object]]:
    limits, offer = state["limits"], state["open_offer"]
    listed: list[tuple[str, object]] = [("enabled", "yes" if state["enabled"] else "no")]
    if limits is not None:
        listed += [
            ("floor price", f"{kes(limits['floor_price_cents_per_kwh'])} per kWh"),
            ("share of surplus", f"{limits['share_percent']} %"),
            ("most per offer", f"{limits['max_wh_per_offer']:,} Wh"),
            ("set by", limits["set_by"]),
        ]
    if offer is not None:
        listed += [
            ("open offer", offer["offer"]),
            ("offered", f"{offer['wh']:,} Wh at {kes(offer['price_cents_per_kwh'])} per kWh"),
            ("why", offer["why"]),
        ]
    return listed


def _show_auto_sell(as_json: bool, state: dict[str, Any]) -> None:
    emit(as_json, {"auto_sell": state}, lambda: fields("Auto-sell", _auto_sell_rows(state)))


@auto_sell_app.command("show")
@in_session
async def auto_sell_show(session: Session, household: HouseholdArg, as_json: Json = False) -> None:
    """Whether auto-sell is on, its limits and its open offer."""
    _show_auto_sell(as_json, await session.oracle().auto_sell(household))


@auto_sell_app.command("set")
@in_session
async def auto_sell_set(
    session: Session,
    household: HouseholdArg,
    floor_price_cents: Annotated[
        int, typer.Option(min=1, help="Never sell below, KES cents per kWh (market's bounds).")
    ],
    share_percent: Annotated[
        int, typer.Option(min=0, max=100, help="Share of the forecast surplus to offer, %.")
    ],
    max_wh: Annotated[int, typer.Option(min=1, help="Most energy one offer holds, Wh.")],
    as_json: Json = False,
) -> None:
    """Let the oracle keep an offer open for the forecast surplus (a custodial household)."""
    state = await session.oracle().set_auto_sell(
        household, floor_price_cents, share_percent, max_wh
    )
    _show_auto_sell(as_json, state)


@auto_sell_app.command("stop")
@in_session
async def auto_sell_stop(session: Session, household: HouseholdArg, as_json: Json = False) -> None:
    """Stop auto-sell and cancel the open automatic offer."""
    stopped = await session.oracle().stop_auto_sell(household)
    closed = stopped["closed_offer"]

    def human() -> None:
        if not stopped["was_enabled"]:
            stdout.print(f"auto-sell was not on for {household}")
        elif closed is None:
            stdout.print(f"auto-sell stopped for {household}; no offer was open")
        else:
            stdout.print(f"auto-sell stopped for {household}; offer {closed['offer']} cancelled")

    emit(as_json, {"stopped": stopped}, human)


@auto_sell_app.command("offers")
@in_session
async def auto_sell_offers(
    session: Session, household: HouseholdArg, as_json: Json = False
) -> None:
    """Every automatic offer, newest first, with why it was made and closed."""
    offers = await session.oracle().auto_sell_offers(household)
    records = [_offer_record(offer) for offer in offers]
    title = f"{len(records)} automatic offers"
    emit(as_json, {"offers": offers}, lambda: rows(title, OFFER_COLUMNS, records))
