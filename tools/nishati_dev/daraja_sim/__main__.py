"""``python -m nishati_dev.daraja_sim``: serves the simulator under uvicorn until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from nishati_dev.daraja_sim.app import create_app
from nishati_dev.daraja_sim.settings import DarajaSimSettings

DESCRIPTION = """\
A Daraja (Safaricom M-Pesa API) simulator on loopback, for the oracle's simulator payments
(NISHATI_PAYMENTS=simulator, NISHATI_DARAJA_URL=<its URL>). The last two digits of a phone pick
an outcome (nishati_dev.daraja_sim.scenarios); /simulator/... steers and inspects it.

Settings come from DARAJA_SIM_* variables (docs/settings.md lists them); every default is a
published test value. It prints its URL once it serves.
"""


class _Server(uvicorn.Server):
    """uvicorn that says where it listens once it does (port 0 included)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"Daraja simulator on http://{host}:{port} (Ctrl-C stops it)", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nishati_dev.daraja_sim",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="loopback address to bind (DARAJA_SIM_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port, 0 for any free one (DARAJA_SIM_PORT, 8089)")
    args = parser.parse_args(argv)
    given = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = DarajaSimSettings(**given)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        sys.exit(f"nishati-daraja-sim: DARAJA_SIM_{where.upper()}: {error['msg']}")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    # uvicorn stops cleanly on SIGINT, then raises it again for the caller.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config).run()


if __name__ == "__main__":
    main()
