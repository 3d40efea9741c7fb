"""The link pipeline: rustc's bitcode in, an SBPF v0 shared object out.

1. **Gather** the inputs: bitcode objects, and the bitcode members of archives (rlibs).
   An ELF object without code or data (rustc's ``symbols.o``) is skipped.  Anything else
   is an error, because only bitcode can be compiled for SBPF here.
2. **llvm-link** all of it together with ``memshim.ll`` into one module.
3. **opt**: internalize everything except the exported symbols (``entrypoint`` and
   rustc's ``--export-symbols`` list), then ``globaldce``, ``lower-atomic`` (SBPF is
   single-threaded, and llc crashes on seq_cst atomics), the ``default<O3>`` pipeline,
   and ``globaldce`` again.  Internalizing first lets O3 see the whole program and drop
   the unused parts of core, alloc and compiler_builtins.
4. **Rewrite** the IR that LLVM 22's BPF backend cannot lower (:mod:`.ir_rewrite`).  The
   ``memshim.ll`` helpers it calls are then linked in (``--only-needed``) and inlined
   (``always-inline,globaldce``; nothing else runs, see :mod:`.ir_rewrite`).
5. **Check limits** (:mod:`.limits`): stop with an explanation of each function that
   breaks a backend limit, instead of llc's cryptic diagnostics.
6. **llc** ``-march=bpfel -mcpu=v2 -mattr=+allows-misaligned-mem-access
   -bpf-stack-size=4096``.  v2 is the newest ISA level SBPF v0 executes, since v3 adds
   JMP32 and v4 adds signed division and sign extension.  Misaligned access is legal in
   SBPF, and allowing it lets llc copy with 8-byte loads and stores.  4096 is SBPF's
   frame size.  ``--bpf-expand-memcpy-in-order`` is *not* passed: in LLVM 22 it turns
   every memset, however small, into a libcall.
7. **Keep needed libcalls**: a symbol that llc's object calls and that only the linked
   module defines was internalized and dropped in step 3.  That happens when llc's own
   IR passes (MergeICmps, ExpandMemCmp) add calls to memcmp/bcmp.  Such symbols are added
   to the public list and steps 3-6 run again, so only libcalls actually used stay.
8. **Write** the SBPF v0 ELF (:mod:`.elf`), after rejecting writable statics and calls to
   undefined symbols that are not Solana syscalls, naming the demangled symbols.

``$SBF_LINK_KEEP=<dir>`` keeps the intermediate files in that directory: the linked,
optimised and rewritten modules, their ``.ll`` text, and llc's object.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import elf, limits, syscalls
from .errors import LinkError
from .ir_rewrite import rewrite_module
from .toolchain import Toolchain, ToolError

KEEP_ENV_VAR = "SBF_LINK_KEEP"
SHIM = Path(__file__).with_name("memshim.ll")
LLC_FLAGS = (
    "-march=bpfel",
    "-mcpu=v2",
    "-mattr=+allows-misaligned-mem-access",
    f"-bpf-stack-size={limits.STACK_FRAME_BYTES}",
)
OPT_LEVELS = ("0", "1", "2", "3", "s", "z")
MAX_ROUNDS = 4

_BITCODE_MAGIC = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")  # raw bitcode, bitcode wrapper
_ARCHIVE_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class LinkJob:
    """What to link: inputs as rustc passes them, the output and the public symbols."""

    inputs: tuple[Path, ...]
    output: Path
    exports: tuple[str, ...] = ()
    opt_level: str = "3"


@contextmanager
def _work_directory() -> Iterator[Path]:
    keep = os.environ.get(KEEP_ENV_VAR)
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="sbf-link-") as tmp:
            yield Path(tmp)


def _kind(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(8)
    if head[:4] in _BITCODE_MAGIC:
        return "bitcode"
    if head == _ARCHIVE_MAGIC:
        return "archive"
    if head[:4] == b"\x7fELF":
        return "elf"
    return "unknown"


def _check_native_object(path: Path, origin: str) -> None:
    _, _, sections = elf.read_sections(path.read_bytes())
    if elf.has_allocated_content(sections):
        raise LinkError(
            f"{origin} is a native object with code or data; sbf-link links LLVM bitcode only "
            "(the target must have obj-is-bitcode)"
        )


def gather_bitcode(inputs: Sequence[Path], workdir: Path, toolchain: Toolchain) -> list[Path]:
    """The bitcode files to link, archive members extracted into ``workdir``."""
    bitcode: list[Path] = []
    for number, path in enumerate(inputs):
        if not path.is_file():
            raise LinkError(f"input {path} does not exist")
        kind = _kind(path)
        if kind == "bitcode":
            bitcode.append(path)
        elif kind == "elf":
            _check_native_object(path, str(path))
        elif kind == "archive":
            members = toolchain.run("llvm-ar", "t", path).splitlines()
            destination = workdir / f"archive{number}"
            destination.mkdir(exist_ok=True)
            toolchain.run("llvm-ar", "x", "--output", destination, path)
            for member in dict.fromkeys(members):
                member_path = destination / member
                member_kind = _kind(member_path)
                if member_kind == "bitcode":
                    bitcode.append(member_path)
                elif member_kind == "elf":
                    _check_native_object(member_path, f"{path}({member})")
        else:
            raise LinkError(f"input {path} is neither LLVM bitcode, an archive nor an ELF object")
    if not bitcode:
        raise LinkError("no LLVM bitcode among the inputs")
    return bitcode


class _Linker:
    """One link job's state: tools, work directory, public symbols."""

    def __init__(self, job: LinkJob, toolchain: Toolchain, workdir: Path) -> None:
        if job.opt_level not in OPT_LEVELS:
            raise LinkError(f"unknown optimisation level -O{job.opt_level}")
        self.job = job
        self.tools = toolchain
        self.workdir = workdir
        self.shim = workdir / "memshim.bc"
        self.public = {elf.ENTRYPOINT, *job.exports}

    def file(self, name: str) -> Path:
        return self.workdir / name

    def link(self) -> None:
        self.tools.run("llvm-as", SHIM, "-o", self.shim)
        linked = self.file("linked.bc")
        inputs = gather_bitcode(self.job.inputs, self.workdir, self.tools)
        self.tools.run("llvm-link", "-o", linked, *inputs, self.shim)
        defined = set(
            self.tools.run(
                "llvm-nm", "--defined-only", "--extern-only", "--format=just-symbols", linked
            ).split()
        )
        for _ in range(MAX_ROUNDS):
            obj = self.compile(linked)
            dropped = (set(obj.undefined_symbols()) & defined) - self.public
            if not dropped:
                break
            self.public |= dropped
        else:
            raise LinkError(f"symbols still undefined after {MAX_ROUNDS} rounds: {sorted(dropped)}")
        self.check_object(obj)
        self.job.output.write_bytes(elf.write_sbpf_v0(obj))

    def compile(self, linked: Path) -> elf.RelocatableObject:
        """Steps 3-6 with the current public symbols; llc's object."""
        public_list = self.file("public.txt")
        public_list.write_text("".join(f"{name}\n" for name in sorted(self.public)))
        optimized = self.file("optimized.bc")
        self.tools.run(
            "opt",
            f"-internalize-public-api-file={public_list}",
            f"-passes=internalize,globaldce,function(lower-atomic),default<O{self.job.opt_level}>,globaldce",
            "-o",
            optimized,
            linked,
        )
        final = self.rewrite(optimized)
        program = self.file("program.o")
        llc_level = self.job.opt_level if self.job.opt_level.isdigit() else "2"
        try:
            self.tools.run(
                "llc", *LLC_FLAGS, f"-O{llc_level}", "-filetype=obj", "-o", program, final
            )
        except ToolError as error:
            violations = limits.translate_llc_errors(error.stderr)
            if violations is None:
                raise
            raise LinkError(limits.format_violations(violations, self.tools.demangle)) from None
        return elf.read_relocatable(program.read_bytes())

    def rewrite(self, optimized: Path) -> Path:
        """Step 4 and 5: the bitcode file llc should compile."""
        text = self.tools.run("llvm-dis", optimized, "-o", "-")
        result = rewrite_module(text)
        violations = limits.check_module(result.text)
        if violations:
            raise LinkError(limits.format_violations(violations, self.tools.demangle))
        if not result.changed:
            return optimized
        rewritten_ll = self.file("rewritten.ll")
        rewritten_ll.write_text(result.text)
        rewritten, with_helpers, final = (
            self.file(n) for n in ("rewritten.bc", "helpers.bc", "final.bc")
        )
        self.tools.run("llvm-as", rewritten_ll, "-o", rewritten)
        self.tools.run("llvm-link", rewritten, "--only-needed", self.shim, "-o", with_helpers)
        self.tools.run("opt", "-passes=always-inline,globaldce", "-o", final, with_helpers)
        return final

    def check_object(self, obj: elf.RelocatableObject) -> None:
        """Step 8's checks, with demangled names."""
        problems: list[str] = []
        writable = obj.writable_data()
        unresolved = [name for name in obj.undefined_symbols() if not syscalls.is_syscall(name)]
        names = self.tools.demangle([s for _, symbols in writable for s in symbols] + unresolved)
        for section, symbols in writable:
            shown = ", ".join(f"`{names.get(s, s)}`" for s in symbols) or "no named symbol"
            problems.append(
                f"writable data in {section.name} ({section.size} bytes: {shown}): the Solana "
                "runtime rejects writable statics (static mut, statics with interior "
                "mutability, .data/.bss); keep state in accounts"
            )
        if unresolved:
            shown = ", ".join(f"`{names.get(s, s)}`" for s in unresolved)
            problems.append(
                f"undefined symbols {shown}: not defined by any input and not Solana "
                "syscalls, so the loader would reject the program"
            )
        if problems:
            raise LinkError("\n\n".join(problems))


def link(job: LinkJob, toolchain: Toolchain | None = None) -> None:
    """Link ``job`` and write ``job.output``; raise :class:`LinkError` on failure."""
    with _work_directory() as workdir:
        _Linker(job, toolchain or Toolchain.from_environment(), workdir).link()
