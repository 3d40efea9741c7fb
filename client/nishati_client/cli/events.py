"""``nishati events``: the program's events, live."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from nishati_client.cli.output import details, stderr, stdout
from nishati_client.cli.params import Json
from nishati_client.cli.session import Session, in_session
from nishati_client.codec import plain
from nishati_client.events import watch, websocket_url

app = typer.Typer(help="Program events: follow them live.")


@app.command("watch")
@in_session
async def events_watch(
    session: Session,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many (default: until Ctrl-C).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Follow the program's events as they are confirmed (JSON lines with --json)."""
    ws_url = session.settings.ws_url or websocket_url(session.settings.rpc_url)
    client = await session.connect()
    seen = 0

    def subscribed() -> None:
        stderr.print(f"following {client.program.program_id} events at {ws_url}")

    events = watch(ws_url, client.program, session.settings.commitment, on_subscribed=subscribed)
    async for event in events:
        data = plain(event.data)
        if as_json:
            line = {"signature": event.signature, "slot": event.slot, "name": event.name}
            sys.stdout.write(json.dumps(plain({**line, "data": data}), sort_keys=True))
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            stdout.print(f"[bold]{event.name}[/bold] {details(data)}")
        seen += 1
        if count is not None and seen >= count:
            return
