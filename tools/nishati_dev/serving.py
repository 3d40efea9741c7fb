"""``python -m`` entry points of the local simulators: settings from the command line over the
environment, refused with the variable's name, then uvicorn until Ctrl-C, printing its URL once
it serves."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError


class Bound(Protocol):
    """A simulator's settings: where it listens."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


S = TypeVar("S", bound=Bound)


class _Server(uvicorn.Server):
    """uvicorn that says where it listens once it does (port 0 included)."""

    def __init__(self, config: uvicorn.Config, name: str) -> None:
        super().__init__(config)
        self.name = name

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"{self.name} on http://{host}:{port} (Ctrl-C stops it)", flush=True)


def serve_simulator(
    *,
    module: str,
    description: str,
    name: str,
    env_prefix: str,
    default_port: int,
    settings: Callable[..., S],
    create_app: Callable[[S], FastAPI],
    argv: Sequence[str] | None = None,
) -> None:
    """Runs the simulator ``module`` (``python -m nishati_dev.<module>``), named ``name`` when
    it says where it serves; its settings are ``env_prefix`` variables."""
    parser = argparse.ArgumentParser(
        prog=f"python -m nishati_dev.{module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help=f"loopback address to bind ({env_prefix}HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help=f"port, 0 for any free one ({env_prefix}PORT, {default_port})"
    )
    args = parser.parse_args(argv)
    given = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        chosen = settings(**given)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        tool = f"nishati-{module.replace('_', '-')}"
        sys.exit(f"{tool}: {env_prefix}{where.upper()}: {error['msg']}")
    config = uvicorn.Config(
        create_app(chosen),
        host=chosen.host,
        port=chosen.port,
        log_level="warning",
        access_log=False,
    )
    # uvicorn stops cleanly on SIGINT, then raises it again for the caller.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, name).run()
