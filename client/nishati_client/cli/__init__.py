"""``nishati``: run a market from a terminal or a script, over JSON-RPC.

Connection and signer come from flags before the command or from the environment:
``--url``/``NISHATI_RPC_URL``, ``--ws-url``/``NISHATI_WS_URL`` (for ``events watch``),
``--keypair``/``NISHATI_KEYPAIR`` (a Solana CLI keypair file: it signs, and pays the fees),
``--program-id``/``NISHATI_PROGRAM_ID``, ``--oracle-url``/``NISHATI_ORACLE_URL`` (forecasts,
advice, PV systems, auto-sell: requests the keypair signs). Every command prints rich tables
(times as ISO-8601 UTC dates), or with ``--json`` one JSON document with stable keys (integers
for money and energy: KES cents, Wh, lamports; and for times: Unix seconds).
A failure is one line on stderr (``nishati: error: ...``) and a non-zero exit code;
``NISHATI_DEBUG=1`` adds the traceback of an unexpected one.

Each command group has a module of its own; :mod:`.session` holds what they share.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import structlog
import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # not re-exported by typer

from nishati_client.cli import (
    events,
    forecast,
    household,
    installer,
    market,
    readings,
    trading,
    wallet,
)
from nishati_client.cli.session import CliError, Session
from nishati_client.config import ClientSettings
from nishati_client.errors import NishatiClientError, NishatiProgramError, TransactionFailed

app = typer.Typer(
    name="nishati",
    help=(
        "Nishati: a peer-to-peer solar energy market on Solana.\n\n"
        "The options go before the command; each can come from its NISHATI_ variable instead. "
        "Commands print tables, or one JSON document with --json after the command (integers: "
        "KES cents, Wh, lamports, Unix seconds). A failure is one line on stderr and a "
        "non-zero exit."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group, name in [
    (market.app, "market"),
    (installer.app, "installer"),
    (household.app, "household"),
    (readings.meter_app, "meter"),
    (readings.reading_app, "reading"),
    (trading.offer_app, "offer"),
    (trading.trade_app, "trade"),
    (events.app, "events"),
    (wallet.app, "wallet"),
    (forecast.pv_system_app, "pv-system"),
    (forecast.auto_sell_app, "auto-sell"),
]:
    app.add_typer(group, name=name, no_args_is_help=True)
app.command("attest")(readings.attest)
app.command("forecast")(forecast.forecast)
app.command("skill")(forecast.skill)
app.command("advice")(forecast.advice)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", "-u", help="The cluster's JSON-RPC URL (env NISHATI_RPC_URL)."),
    ] = None,
    ws_url: Annotated[
        str | None,
        typer.Option(
            "--ws-url",
            help="Its websocket URL, for events watch (env NISHATI_WS_URL; default: the "
            "JSON-RPC URL's port plus one).",
        ),
    ] = None,
    keypair: Annotated[
        Path | None,
        typer.Option(
            "--keypair",
            "-k",
            help="Keypair file (Solana CLI format) that signs and pays the fees "
            "(env NISHATI_KEYPAIR).",
        ),
    ] = None,
    program_id: Annotated[
        str | None,
        typer.Option(
            "--program-id", help="The Nishati program's address (env NISHATI_PROGRAM_ID)."
        ),
    ] = None,
    oracle_url: Annotated[
        str | None,
        typer.Option(
            "--oracle-url",
            help="The oracle's HTTP API, for forecast, skill, advice, pv-system and auto-sell "
            "(env NISHATI_ORACLE_URL).",
        ),
    ] = None,
) -> None:
    """The connection and the signer every command uses."""
    settings = ClientSettings()
    updates = {
        "rpc_url": url,
        "ws_url": ws_url,
        "program_id": program_id,
        "keypair": keypair,
        "oracle_url": oracle_url,
    }
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    ctx.obj = Session(settings, settings.keypair)


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


def _logs_through_logging() -> None:
    """The client's log lines (an RPC retried, an event socket reopened) go through the standard
    library's logging: warnings on stderr, never on stdout with the output (structlog alone
    prints there). An application that configured structlog keeps its configuration."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.processors.add_log_level,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: typer in non-standalone mode, every error as one line."""
    _logs_through_logging()
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
