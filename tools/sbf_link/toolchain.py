"""Locating and running the LLVM 22 command-line tools.

sbf-link drives LLVM through its command-line tools (llvm-link, opt, llc, ...) rather than
through bindings: the tools ship with Debian's ``llvm-22`` package, the Python standard
library can run them, and their behaviour is what the rest of the pipeline was tested
against.  The tools must be LLVM 22, the version Debian's rustc 1.96 writes bitcode for;
an older LLVM cannot read that bitcode.

The directory holding them is ``$SBF_LLVM_BIN``, by default ``/usr/lib/llvm-22/bin``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import LinkError

ENV_VAR = "SBF_LLVM_BIN"
DEFAULT_BIN_DIR = Path("/usr/lib/llvm-22/bin")


class ToolError(LinkError):
    """An LLVM tool exited non-zero; ``stderr`` holds its diagnostics."""

    def __init__(self, tool: str, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.tool = tool
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(
            f"{tool} failed with exit status {returncode}\n"
            f"  command: {' '.join(argv)}\n{stderr.rstrip()}"
        )


@dataclass(frozen=True)
class Toolchain:
    """The directory of LLVM tools and how to call them."""

    bin_dir: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Toolchain:
        """Use ``$SBF_LLVM_BIN`` when set, else Debian's LLVM 22 directory."""
        env = os.environ if environ is None else environ
        return cls(Path(env.get(ENV_VAR) or DEFAULT_BIN_DIR))

    def path(self, tool: str) -> Path:
        """The tool's path; a clear error when it is missing."""
        candidate = self.bin_dir / tool
        if not os.access(candidate, os.X_OK):
            raise LinkError(
                f"LLVM tool {tool!r} not found in {self.bin_dir}; install Debian's llvm-22 "
                f"package or set {ENV_VAR} to the directory holding the LLVM 22 tools"
            )
        return candidate

    def run(self, tool: str, *args: str | Path, stdin: str | None = None) -> str:
        """Run ``tool`` and return its stdout; raise :class:`ToolError` if it fails.

        Warnings a successful tool prints are passed on to our stderr.
        """
        argv = [str(self.path(tool)), *map(str, args)]
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, errors="replace", check=False
        )
        if proc.returncode != 0:
            raise ToolError(tool, argv, proc.returncode, proc.stderr)
        if proc.stderr.strip():
            sys.stderr.write(proc.stderr)
        return proc.stdout

    def demangle(self, names: Sequence[str]) -> dict[str, str]:
        """Map symbol names to readable ones with llvm-cxxfilt (it knows Rust v0 and legacy)."""
        unique = list(dict.fromkeys(names))
        if not unique:
            return {}
        lines = self.run("llvm-cxxfilt", stdin="\n".join(unique) + "\n").splitlines()
        if len(lines) != len(unique):
            return {name: name for name in unique}
        return dict(zip(unique, lines, strict=True))
