"""A local JSON-RPC validator with the program deployed, for tests and the demo.

``python -m nishati_dev.localnet`` runs one in the foreground and prints
``READY rpc=<url> ws=<url>`` once it serves; pytest-xprocess and :class:`LocalValidator` both
start it that way. The validator is surfpool's embedded runtime (npm, offline, loopback only), or
``solana-test-validator`` when the settings select it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from types import TracebackType

import httpx

from nishati_dev.paths import REPO_ROOT
from nishati_dev.settings import LocalChainSettings, ValidatorKind

READY_PATTERN = re.compile(r"READY rpc=(\S+) ws=(\S+)")
SURFNET_SCRIPT = REPO_ROOT / "scripts" / "surfnet.js"
# Environment variable carrying "<pubkey>=<lamports>,..." accounts to fund before READY.
FUND_ENV = "NISHATI_LOCALNET_FUND"


class LocalnetError(RuntimeError):
    """The local validator could not be started."""


def _fund_spec(fund: Mapping[str, int]) -> str:
    return ",".join(f"{address}={lamports}" for address, lamports in fund.items())


def _parse_fund(spec: str) -> dict[str, int]:
    pairs = (item.split("=", 1) for item in spec.split(",") if item)
    return {address: int(lamports) for address, lamports in pairs}


def _run_surfpool(settings: LocalChainSettings, fund: str) -> None:
    env = dict(os.environ, PROGRAMS=f"{settings.program_id}={settings.program_so}", FUND=fund)
    os.execvpe("node", ["node", str(SURFNET_SCRIPT)], env)


def _rpc(url: str, method: str, params: list[object]) -> object:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(url, json=body, timeout=2).json().get("result")


def _run_solana_test_validator(settings: LocalChainSettings, fund: Mapping[str, int]) -> None:
    binary = shutil.which("solana-test-validator")
    if binary is None:
        raise LocalnetError("NISHATI_VALIDATOR=solana-test-validator but it is not on PATH")
    port = 8899
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


class LocalValidator:
    """Starts the validator as a child process and stops it (by PID) on exit."""

    def __init__(self, settings: LocalChainSettings, fund: Mapping[str, int], timeout: float = 90):
        self.settings = settings
        self.fund = dict(fund)
        self.timeout = timeout
        self.rpc_url = ""
        self.ws_url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LocalValidator:
        env = dict(os.environ, **{FUND_ENV: _fund_spec(self.fund)})
        self._process = subprocess.Popen(
            [sys.executable, "-m", "nishati_dev.localnet"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + self.timeout
        for line in self._process.stdout:
            match = READY_PATTERN.search(line)
            if match:
                self.rpc_url, self.ws_url = match.groups()
                return self
            if time.monotonic() > deadline:
                break
        self.__exit__(None, None, None)
        raise LocalnetError("the local validator exited or never reported READY")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def main() -> None:
    try:
        run(LocalChainSettings(), os.environ.get(FUND_ENV, ""))
    except LocalnetError as e:
        sys.exit(f"localnet: {e}")


if __name__ == "__main__":
    main()
