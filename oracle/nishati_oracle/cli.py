"""``nishati-oracle``: serves the oracle, and lets an operator see and act on the money that
needs a person.

- ``nishati-oracle`` (or ``nishati-oracle serve``): the oracle under uvicorn, configured by the
  environment; settings that are missing or wrong stop it before it starts (one line per
  problem on stderr, naming the variable, exit status 2).
- ``nishati-oracle attention [--json]``: the trades that need a person (``trading.attention``).
- ``nishati-oracle retry TRADE --operator NAME --reason TEXT`` and ``... close ...``: an action
  on one of them, recorded with the operator and the reason. The running oracle's worker picks
  up a retried trade on its next round.

The operator commands work on the oracle's database (``NISHATI_DATABASE_URL``), so they run
where the oracle's settings are; a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence

import uvicorn

from nishati_oracle.app import create_app
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import SettingsError, StorageSettings, load_settings
from nishati_oracle.readings.store import Store
from nishati_oracle.trading.attention import OPERATOR_CHARS, REASON_CHARS, Attention
from nishati_oracle.trading.desk import TradeRefused
from nishati_oracle.trading.ledger import Ledger, TradeRecord

BAD_SETTINGS = 2
REFUSED = 1


def serve() -> None:
    configure()
    try:
        settings = load_settings()
        problems = settings.serving_problems()
    except SettingsError as error:
        problems = error.problems
    if problems:
        for problem in problems:
            print(f"nishati-oracle: {problem}", file=sys.stderr)
        sys.exit(BAD_SETTINGS)
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
    )


def _text(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if not 0 < len(value) <= limit:
            raise argparse.ArgumentTypeError(f"1 to {limit} characters")
        return value

    return check


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nishati-oracle", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the oracle (the default)")
    attention = commands.add_parser("attention", help="list the trades that need a person")
    attention.add_argument("--json", action="store_true", help="one JSON document")
    for name, what in (("retry", "hand a trade back to the worker"), ("close", "end a trade")):
        action = commands.add_parser(name, help=what)
        action.add_argument("trade_id")
        action.add_argument("--operator", required=True, type=_text(OPERATOR_CHARS))
        action.add_argument("--reason", required=True, type=_text(REASON_CHARS))
        action.add_argument("--json", action="store_true", help="one JSON document")
    return top


def _row(trade: TradeRecord, detail: str | None) -> dict[str, object]:
    return {
        "trade_id": trade.id,
        "state": str(trade.state),
        "updated_at": trade.updated_at,
        "amount_kes": trade.amount_kes,
        "payout_kes": trade.payout_kes,
        "mpesa_receipt": trade.mpesa_receipt,
        "detail": detail,
    }


def _print(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("nothing needs a person")
    for row in rows:
        print(f"{row['trade_id']}  {row['state']:<16} KES {row['amount_kes']:>7}  {row['detail']}")


async def _operate(args: argparse.Namespace) -> None:
    store = await Store.open(StorageSettings().database_url)
    try:
        ledger = Ledger(store.engine)
        desk = Attention(ledger, time.time)
        if args.command == "attention":
            trades = await desk.waiting()
        elif args.command == "retry":
            trades = [await desk.retry(args.trade_id, args.operator, args.reason)]
        else:
            trades = [await desk.close(args.trade_id, args.operator, args.reason)]
        rows = []
        for trade in trades:
            history = await ledger.history(trade.id)
            rows.append(_row(trade, history[-1].detail if history else None))
        _print(rows, args.json)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command in (None, "serve"):
        serve()
        return
    try:
        asyncio.run(_operate(args))
    except TradeRefused as refused:
        print(f"nishati-oracle: {refused.reason}: {refused.detail}", file=sys.stderr)
        sys.exit(REFUSED)
