"""A throwaway PostgreSQL server from Debian's packages, on 127.0.0.1 and a free port.

PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system user (made by
Debian's package) in a data directory that user owns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nishati_dev.processes import HOST, Service, free_port

PG_BIN = Path(os.environ.get("NISHATI_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    """One server in a data directory of its own, which a test may restart (a fast shutdown:
    its clients are cut off, what they committed is kept)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL not found in {PG_BIN}: run scripts/bootstrap.sh")
        self.root = Path(tempfile.mkdtemp(prefix="nishati-pg-"))
        self.data = self.root / "data"
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
        self.port = free_port()
        subprocess.run(
            _as_server_user(
                [
                    str(PG_BIN / "initdb"),
                    *("-D", str(self.data), "-U", "nishati", "--auth=trust", "-E", "UTF8"),
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        serve = ["-D", str(self.data), "-h", HOST, "-p", str(self.port), "-k", str(self.root)]
        self.service = Service(
            "postgres",
            _as_server_user([str(PG_BIN / "postgres"), *serve, "-c", "fsync=on"]),
            log_path=self.root / "postgres.log",
            port=self.port,
            ready=self._accepting,
            start_timeout_secs=30.0,
        )

    @property
    def url(self) -> str:
        """The asyncpg SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://nishati@{HOST}:{self.port}/postgres"

    def _accepting(self, _: Service) -> bool:
        check = [str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(self.port)]
        return subprocess.run(check, stdout=subprocess.DEVNULL).returncode == 0

    def start(self) -> None:
        self.service.start()

    def restart(self) -> None:
        """A fast shutdown (``pg_ctl -m fast``: sessions cut off, no waiting for them to end),
        then the server again on the same port."""
        stop = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(stop), check=True, stdout=subprocess.DEVNULL)
        self.service.stop()
        self.service.start()

    def close(self) -> None:
        self.service.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def restartable_postgres() -> Iterator[PostgresServer]:
    """A started server, stopped and removed afterwards."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields an asyncpg SQLAlchemy URL of a fresh database; stops the server afterwards."""
    with restartable_postgres() as server:
        yield server.url
