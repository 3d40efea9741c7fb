"""A local JSON-RPC validator with the program deployed, for the stack, the tests and the demo.

``python -m nishati_dev.localnet`` runs one in the foreground and prints
``READY rpc=<url> ws=<url>`` once it serves; :class:`LocalValidator` starts it that way as a
child process. The validator is surfpool's embedded runtime (npm, offline, loopback only), or
``solana-test-validator`` when the settings select it. Its JSON-RPC port is
``NISHATI_LOCALNET_RPC_PORT`` (the websocket's the next), or free ports when unset.

Either keeps its Clock sysvar with real time, as a cluster does: ``solana-test-validator`` by
itself, surfpool because ``scripts/surfnet.js`` moves its clock to the wall clock each second
(``tests/test_localnet.py`` holds them to it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from nishati_dev.paths import REPO_ROOT
from nishati_dev.processes import Service, ServiceError, logged
from nishati_dev.settings import LocalChainSettings, ValidatorKind

READY_PATTERN = re.compile(r"READY rpc=(\S+) ws=(\S+)")
SURFNET_SCRIPT = REPO_ROOT / "scripts" / "surfnet.js"
# Environment variable carrying "<pubkey>=<lamports>,..." accounts to fund before READY.
FUND_ENV = "NISHATI_LOCALNET_FUND"
PORT_ENV = "NISHATI_LOCALNET_RPC_PORT"
SOLANA_TEST_VALIDATOR_PORT = 8899


class LocalnetError(RuntimeError):
    """The local validator could not be started."""


def _fund_spec(fund: Mapping[str, int]) -> str:
    return ",".join(f"{address}={lamports}" for address, lamports in fund.items())


def _parse_fund(spec: str) -> dict[str, int]:
    pairs = (item.split("=", 1) for item in spec.split(",") if item)
    return {address: int(lamports) for address, lamports in pairs}


def _run_surfpool(settings: LocalChainSettings, fund: str) -> None:
    env = dict(os.environ, PROGRAMS=f"{settings.program_id}={settings.program_so}", FUND=fund)
    if settings.localnet_rpc_port is not None:
        env["RPC_PORT"] = str(settings.localnet_rpc_port)
    os.execvpe("node", ["node", str(SURFNET_SCRIPT)], env)


def _rpc(url: str, method: str, params: list[object]) -> object:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(url, json=body, timeout=2).json().get("result")


def _run_solana_test_validator(settings: LocalChainSettings, fund: Mapping[str, int]) -> None:
    binary = shutil.which("solana-test-validator")
    if binary is None:
        raise LocalnetError("NISHATI_VALIDATOR=solana-test-validator but it is not on PATH")
    port = settings.localnet_rpc_port or SOLANA_TEST_VALIDATOR_PORT
    ledger = tempfile.mkdtemp(prefix="nishati-ledger-")
    child = subprocess.Popen(
        [
            binary,
            "--reset",
            "--quiet",
            "--ledger",
            ledger,
            "--bind-address",
            "127.0.0.1",
            "--rpc-port",
            str(port),
            "--bpf-program",
            settings.program_id,
            str(settings.program_so),
        ],
    )
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _health(url) != "ok":
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise LocalnetError("solana-test-validator did not become healthy within 60 s")
        time.sleep(0.5)
    for address, lamports in fund.items():
        _rpc(url, "requestAirdrop", [address, lamports])
    print(f"READY rpc={url} ws=ws://127.0.0.1:{port + 1}", flush=True)
    child.wait()
    shutil.rmtree(ledger, ignore_errors=True)


def _health(url: str) -> object:
    try:
        return _rpc(url, "getHealth", [])
    except httpx.HTTPError:
        return None


def run(settings: LocalChainSettings, fund_spec: str) -> None:
    """Runs the selected validator in the foreground until it is terminated."""
    if not settings.program_so.is_file():
        raise LocalnetError(
            f"{settings.program_so} is missing: build it with scripts/build-program.sh"
        )
    if settings.validator is ValidatorKind.surfpool:
        _run_surfpool(settings, fund_spec)
    else:
        _run_solana_test_validator(settings, _parse_fund(fund_spec))


class LocalValidator(Service):
    """``python -m nishati_dev.localnet`` as a child process, ``fund`` (address: lamports)
    credited before it is ready; its endpoints are read from its READY line."""

    def __init__(
        self,
        settings: LocalChainSettings,
        fund: Mapping[str, int],
        log_path: Path | None = None,
        timeout: float = 120,
    ) -> None:
        env = {
            FUND_ENV: _fund_spec(fund),
            "NISHATI_PROGRAM_ID": settings.program_id,
            "NISHATI_PROGRAM_SO": str(settings.program_so),
            "NISHATI_VALIDATOR": settings.validator.value,
        }
        if settings.localnet_rpc_port is not None:
            env[PORT_ENV] = str(settings.localnet_rpc_port)
        super().__init__(
            "local validator",
            [sys.executable, "-m", "nishati_dev.localnet"],
            log_path=log_path,
            port=settings.localnet_rpc_port,
            env=env,
            ready=logged(READY_PATTERN),
            start_timeout_secs=timeout,
            stop_timeout_secs=10.0,
        )
        self.settings = settings

    def _endpoints(self) -> tuple[str, str]:
        found = READY_PATTERN.findall(self.log())
        if not found:
            raise ServiceError("the local validator has not reported READY")
        rpc_url, ws_url = found[-1]
        return rpc_url, ws_url

    @property
    def rpc_url(self) -> str:
        return self._endpoints()[0]

    @property
    def ws_url(self) -> str:
        return self._endpoints()[1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nishati_dev.localnet",
        description="A local JSON-RPC validator with the Nishati program deployed, in the "
        "foreground until Ctrl-C. It prints READY rpc=<url> ws=<url> once it serves. Settings: "
        f"NISHATI_PROGRAM_SO, NISHATI_VALIDATOR, {PORT_ENV}, {FUND_ENV} "
        "(<pubkey>=<lamports>,...); docs/settings.md lists them.",
    )
    parser.parse_args(argv)
    try:
        run(LocalChainSettings(), os.environ.get(FUND_ENV, ""))
    except LocalnetError as e:
        sys.exit(f"localnet: {e}")


if __name__ == "__main__":
    main()
