"""The bpf-linker command line that rustc drives.

For a target with ``"linker-flavor": "bpf"``, rustc (``BpfLinker`` in rustc_codegen_ssa)
runs the linker as, for example::

    sbf-link --export-symbols <tmp>/symbols <tmp>/symbols.o <crate>.rcgu.o ...
             <dep>.rlib ... -L <tmp>/raw-dylibs --cpu generic [--cpu-features F]
             -o lib<crate>.so -O3 --debug

What each argument does here:

``--export-symbols FILE``
    Symbols to keep public, one per line.  ``entrypoint`` is always kept.
``-o FILE``
    The SBPF v0 shared object to write.
``-O0`` ... ``-O3``, ``-Os``, ``-Oz``
    The opt pipeline level.  llc gets the same digit, or ``-O2`` for s and z.
``--cpu X``, ``--cpu-features X``
    Ignored.  The output must be SBPF v0, so llc always gets ``-mcpu=v2`` with
    misaligned access allowed (see pipeline.py).  rustc passes the target's "generic".
``--debug``
    Ignored.  rustc always passes it, and the loader has no use for debug info.
``-L DIR``
    Ignored.  rustc passes every input by path.
``@FILE``
    A response file, which rustc writes when the command line is too long.  It holds one
    argument per line, with backslash escapes.
inputs
    Bitcode objects and archives.  See :func:`sbf_link.pipeline.gather_bitcode`.

Any other option is an error, so that a flag which matters is never silently dropped.
Environment: ``SBF_LLVM_BIN`` (LLVM 22 tool directory), ``SBF_LINK_KEEP`` (keep the
intermediate files in this directory).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import LinkError
from .pipeline import OPT_LEVELS, LinkJob, link


def _expand_response_files(argv: Sequence[str]) -> list[str]:
    expanded: list[str] = []
    for arg in argv:
        if arg.startswith("@") and len(arg) > 1:
            try:
                lines = Path(arg[1:]).read_text().splitlines()
            except OSError as error:
                raise LinkError(f"cannot read response file {arg[1:]}: {error}") from None
            expanded.extend(re.sub(r"\\(.)", r"\1", line) for line in lines if line)
        else:
            expanded.append(arg)
    return expanded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbf-link",
        description="Link rustc's LLVM bitcode into an SBPF v0 Solana program.",
    )
    parser.add_argument("inputs", nargs="*", type=Path, help="bitcode objects and rlib/.a archives")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .so")
    parser.add_argument(
        "--export-symbols",
        type=Path,
        action="append",
        default=[],
        help="file listing symbols to keep public, one per line",
    )
    parser.add_argument(
        "-O", dest="opt_level", default="3", choices=OPT_LEVELS, help="optimisation level"
    )
    parser.add_argument("--cpu", help="ignored: the CPU is fixed by the SBPF v0 output")
    parser.add_argument("--cpu-features", help="ignored, like --cpu")
    parser.add_argument("--debug", action="store_true", help="ignored: no debug info is emitted")
    parser.add_argument(
        "-L",
        dest="library_dirs",
        action="append",
        default=[],
        help="ignored: inputs are passed by path",
    )
    return parser


def parse_args(argv: Sequence[str]) -> LinkJob:
    """Turn rustc's linker arguments into a :class:`LinkJob`."""
    args = _parser().parse_intermixed_args(_expand_response_files(argv))
    exports: list[str] = []
    for path in args.export_symbols:
        try:
            exports += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as error:
            raise LinkError(f"cannot read export list {path}: {error}") from None
    return LinkJob(
        inputs=tuple(args.inputs),
        output=args.output,
        exports=tuple(exports),
        opt_level=args.opt_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: link, or print one ``sbf-link: error:`` message and return 1."""
    try:
        link(parse_args(sys.argv[1:] if argv is None else argv))
    except LinkError as error:
        print(f"sbf-link: error: {error}", file=sys.stderr)
        return 1
    return 0
