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


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields an asyncpg SQLAlchemy URL of a fresh database; stops the server afterwards."""
    with postgres_service() as (url, _):
        yield url


@contextmanager
def postgres_service() -> Iterator[tuple[str, Service]]:
    """:func:`postgres_server`'s URL and the server's process (a bench reads its CPU time)."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL not found in {PG_BIN}: run scripts/bootstrap.sh")
    root = Path(tempfile.mkdtemp(prefix="nishati-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        _as_server_user(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "nishati", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )

    def accepting(_: Service) -> bool:
        check = [str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(port)]
        return subprocess.run(check, stdout=subprocess.DEVNULL).returncode == 0

    serve = ["-D", str(data), "-h", HOST, "-p", str(port), "-k", str(root), "-c", "fsync=on"]
    server = Service(
        "postgres",
        _as_server_user([str(PG_BIN / "postgres"), *serve]),
        log_path=root / "postgres.log",
        port=port,
        ready=accepting,
        start_timeout_secs=30.0,
    )
    try:
        with server:
            yield f"postgresql+asyncpg://nishati@{HOST}:{port}/postgres", server
    finally:
        shutil.rmtree(root, ignore_errors=True)
