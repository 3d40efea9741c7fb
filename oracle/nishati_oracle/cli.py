"""``nishati-oracle``: serves the oracle, and lets an operator see and act on the money that
needs a person.

- ``nishati-oracle`` (or ``nishati-oracle serve``): the oracle under uvicorn, configured by the
  environment; settings that are missing or wrong stop it before it starts (one line per
  problem on stderr, naming the variable, exit status 2).
- ``nishati-oracle attention [--json]``: the trades that need a person (``trading.attention``).
- ``nishati-oracle retry TRADE --operator NAME --reason TEXT`` and ``... close ...``: an action
  on one of them, recorded with the operator and the reason. The running oracle's worker picks
  up a retried trade on its next round.
- ``nishati-oracle operator add NAME``: an operator who signs in to the web app with a password
  (asked twice on the terminal, or one line on stdin with ``--password-stdin``), kept as its
  argon2id hash.
- ``nishati-oracle meter login METER --password-file FILE``: a new broker password for a meter,
  written to Mosquitto's password file (its entry replaced if it had one) and printed once as the
  console line the installer types into the meter; ``meter logout`` takes the entry out. The
  broker rereads the file on SIGHUP. ``nishati-oracle broker-acl`` prints the broker's ACL for
  these settings (``nishati_oracle.readings.broker_logins``).

The operator commands work on the oracle's database (``NISHATI_DATABASE_URL``), so they run
where the oracle's settings are; a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from nishati_oracle.accounts.errors import SignInRefused
from nishati_oracle.accounts.lockouts import Lockouts
from nishati_oracle.accounts.operators import Operators, check_username
from nishati_oracle.accounts.secrets import Keyed
from nishati_oracle.app import create_app
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import (
    AuthSettings,
    MqttSettings,
    SettingsError,
    StorageSettings,
    load_settings,
)
from nishati_oracle.readings.broker_logins import (
    NotAMeterKey,
    acl,
    meter_username,
    new_password,
    remove_login,
    set_login,
)
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
    operator = commands.add_parser("operator", help="operators who sign in with a password")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    add = operator_commands.add_parser("add", help="add an operator")
    add.add_argument("username", type=_username)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin, one line"
    )
    meter = commands.add_parser("meter", help="meters' logins to the MQTT broker")
    meter_commands = meter.add_subparsers(dest="meter_command", required=True)
    for name, what in (("login", "issue a meter's broker password"), ("logout", "revoke it")):
        login = meter_commands.add_parser(name, help=what)
        login.add_argument("meter", type=_meter_key, help="the meter's key, base58")
        login.add_argument(
            "--password-file", required=True, type=Path, help="Mosquitto's password_file"
        )
    commands.add_parser("broker-acl", help="print Mosquitto's ACL file for these settings")
    return top


def _meter_key(value: str) -> str:
    try:
        return meter_username(value)
    except NotAMeterKey as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _meter_login(args: argparse.Namespace) -> None:
    if args.meter_command == "login":
        password = new_password()
        set_login(args.password_file, args.meter, password)
        print(f"broker-user {args.meter} {password}")
        print(f"written to {args.password_file}; reload the broker (SIGHUP) to take it")
    elif remove_login(args.password_file, args.meter):
        print(f"{args.meter} removed from {args.password_file}; reload the broker (SIGHUP)")
    else:
        print(f"nishati-oracle: {args.meter} has no login in {args.password_file}", file=sys.stderr)
        sys.exit(REFUSED)


def _broker_acl() -> None:
    mqtt = MqttSettings()
    if mqtt.username is None:
        print(
            "nishati-oracle: the ACL names the oracle's user: set NISHATI_MQTT_USERNAME",
            file=sys.stderr,
        )
        sys.exit(BAD_SETTINGS)
    print(acl(mqtt.topic_root, mqtt.username), end="")


def _username(value: str) -> str:
    try:
        return check_username(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _new_password(from_stdin: bool) -> str | None:
    """The new operator's password; ``None`` when the two typed differ."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    return password if getpass.getpass("again: ") == password else None


async def _add_operator(username: str, password: str) -> None:
    store = await Store.open(StorageSettings().database_url)
    try:
        auth = AuthSettings()
        lockouts = Lockouts(store.engine, auth.code_attempts, auth.lockout_secs)
        await Operators(store.engine, Keyed.from_settings(auth), lockouts).add(username, password)
    finally:
        await store.close()
    print(f"operator {username} added")


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
    if args.command == "meter":
        _meter_login(args)
        return
    if args.command == "broker-acl":
        _broker_acl()
        return
    if args.command == "operator":
        password = _new_password(args.password_stdin)
        if password is None:
            print("nishati-oracle: the passwords differ", file=sys.stderr)
            sys.exit(REFUSED)
        try:
            asyncio.run(_add_operator(args.username, password))
        except SignInRefused as refused:
            print(f"nishati-oracle: {refused.reason}: {refused.detail}", file=sys.stderr)
            sys.exit(REFUSED)
        return
    try:
        asyncio.run(_operate(args))
    except TradeRefused as refused:
        print(f"nishati-oracle: {refused.reason}: {refused.detail}", file=sys.stderr)
        sys.exit(REFUSED)
