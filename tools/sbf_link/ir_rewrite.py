"""Rewrite the optimised IR where LLVM 22's BPF backend cannot lower it.

Each rewrite below turns an instruction llc rejects into one it accepts, mostly a call to a
helper from ``memshim.ll``.  The helpers are ``linkonce_odr alwaysinline``: the pipeline
links in only those used and inlines them at every call site.

* ``llvm.memcpy`` / ``llvm.memmove`` / ``llvm.memset`` whose size is not a constant, or is
  a constant above :data:`MEM_INLINE_MAX`, become ``__sbf_memcpy`` / ``__sbf_memmove`` /
  ``__sbf_memset``, which call the ``sol_memcpy_`` / ``sol_memmove_`` / ``sol_memset_``
  syscalls.  llc expands small constant sizes into loads and stores.  For any other size it
  wants to call libc's ``memcpy``, and the BPF backend refuses every libcall ("A call to
  built-in function 'memcpy' is not supported").  Above 32 bytes the syscall (10 CU) is
  also cheaper than the 8-byte load/store pairs it replaces.
* ``llvm.umul.with.overflow.i64`` and ``llvm.smul.with.overflow.i64`` (``checked_mul``,
  overflow checks) become ``__sbf_umulo64`` / ``__sbf_smulo64``.  LLVM lowers them to a
  128-bit multiply, i.e. a call to ``__multi3``.  The helpers detect the overflow with one
  64-bit division instead.
* ``sdiv`` / ``srem`` on integers of up to 64 bits become ``__sbf_sdiv64`` /
  ``__sbf_srem64``, which divide the magnitudes with ``udiv``/``urem``.  BPF before v4 has
  no signed division ("unsupported signed division").  Narrower operands are
  sign-extended and the result truncated.  A divisor of plus or minus a power of two stays
  as it is, because llc lowers it to shifts.
* The ``sret`` parameter attribute is removed from definitions, declarations and calls.
  LLVM 22's BPF backend rejects every function *defining* an sret parameter ("aggregate
  returns are not supported"), yet the convention is a plain pointer in r1 on both sides,
  and callers already pass it that way.  rustc uses sret for every function that returns
  more than 8 bytes, such as ``Result<(), ProgramError>``.

After the rewrite the pipeline runs only always-inline and globaldce.  InstCombine would
fold the helpers' ``(a*b)/a != b`` check back into ``llvm.umul.with.overflow``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from . import ir

MEM_INLINE_MAX = 32
"""Largest constant llvm.mem* size left to llc's inline expansion, in bytes."""

_MEM_HELPERS: dict[str, tuple[str, str]] = {
    "llvm.memcpy.p0.p0.i64": ("memcpy", "__sbf_memcpy"),
    "llvm.memmove.p0.p0.i64": ("memmove", "__sbf_memmove"),
    "llvm.memset.p0.i64": ("memset", "__sbf_memset"),
}
_RENAMED_INTRINSICS: dict[str, tuple[str, str]] = {
    "llvm.umul.with.overflow.i64": ("umulo64", "__sbf_umulo64"),
    "llvm.smul.with.overflow.i64": ("smulo64", "__sbf_smulo64"),
}
_HELPER_DECLARATIONS: dict[str, str] = {
    "__sbf_memcpy": "declare void @__sbf_memcpy(ptr, ptr, i64)",
    "__sbf_memmove": "declare void @__sbf_memmove(ptr, ptr, i64)",
    "__sbf_memset": "declare void @__sbf_memset(ptr, i8, i64)",
    "__sbf_sdiv64": "declare i64 @__sbf_sdiv64(i64, i64)",
    "__sbf_srem64": "declare i64 @__sbf_srem64(i64, i64)",
}
_INTEGER_LITERAL = re.compile(r"-?\d+")


@dataclass
class RewriteResult:
    """The rewritten module text and how many sites each rewrite changed."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _is_power_of_two_literal(value: str) -> bool:
    if not _INTEGER_LITERAL.fullmatch(value):
        return False
    magnitude = abs(int(value))
    return magnitude > 0 and magnitude & (magnitude - 1) == 0


def _drop_sret(line: str) -> tuple[str, int]:
    """Remove every ``sret(<type>)`` parameter attribute (outside quoted names)."""
    removed = 0
    i = 0
    while i < len(line):
        if line[i] == '"':
            i = ir.skip_string(line, i)
        elif line.startswith(" sret(", i):
            end = ir.closing_index(line, i + len(" sret"))
            line = line[:i] + line[end + 1 :]
            removed += 1
            continue
        i += 1
    return line, removed


def _rename_intrinsic(line: str, intrinsic: str, helper: str) -> str:
    return re.sub("@" + re.escape(intrinsic) + r"(?=\()", "@" + helper, line)


class _Rewriter:
    """Rewrites one module line by line, counting sites and collecting the helpers used."""

    def __init__(self, module_text: str) -> None:
        self.counts: Counter[str] = Counter()
        self.helpers: set[str] = set()
        self._prefix = "sbf.rw"  # fresh value names: a prefix no name in the module uses
        while f"%{self._prefix}." in module_text:
            self._prefix += "_"
        self._fresh = 0

    def fresh_name(self) -> str:
        self._fresh += 1
        return f"%{self._prefix}.{self._fresh}"

    def header(self, line: str, header: ir.FunctionHeader) -> str:
        """A define/declare line: sret dropped, renamed intrinsics' declarations renamed."""
        line = self.drop_sret(line)
        if header.name in _RENAMED_INTRINSICS:
            line = _rename_intrinsic(line, header.name, _RENAMED_INTRINSICS[header.name][1])
        return line

    def drop_sret(self, line: str) -> str:
        line, removed = _drop_sret(line)
        if removed:
            self.counts["sret"] += removed
        return line

    def instruction(self, instruction: ir.Instruction) -> str | None:
        """The replacement text for a body line, or None to keep it."""
        if instruction.opcode in ("sdiv", "srem"):
            return self.signed_division(instruction)
        if instruction.opcode not in ("call", "invoke"):
            return None
        call = ir.parse_call(instruction.text)
        if call is None:
            return None
        text = instruction.text
        if call.callee in _MEM_HELPERS:
            text = self.mem_intrinsic(instruction, call, *_MEM_HELPERS[call.callee]) or text
        elif call.callee in _RENAMED_INTRINSICS:
            kind, helper = _RENAMED_INTRINSICS[call.callee]
            text = _rename_intrinsic(text, call.callee, helper)
            self.counts[kind] += 1
        text = self.drop_sret(text)
        return None if text == instruction.text else text

    def mem_intrinsic(
        self, instruction: ir.Instruction, call: ir.Call, kind: str, helper: str
    ) -> str | None:
        """``llvm.mem*`` with a large or unknown size -> ``__sbf_mem*`` (no ``isvolatile``)."""
        if len(call.args) != 4:
            return None
        size = call.args[2].rsplit(None, 1)[-1]
        if _INTEGER_LITERAL.fullmatch(size) and int(size) <= MEM_INLINE_MAX:
            return None
        self.counts[kind] += 1
        self.helpers.add(helper)
        args = ", ".join(call.args[:3])
        attachments = call.metadata(instruction.text)
        return f"{_indent(instruction.text)}call void @{helper}({args}){attachments}"

    def signed_division(self, instruction: ir.Instruction) -> str | None:
        """``%r = sdiv|srem iN a, b`` (N <= 64, b not +-2^k) -> a call of the i64 helper."""
        ty, rest = ir.leading_type(ir.strip_flags(instruction.operands, ("exact",)))
        width = re.fullmatch(r"i(\d+)", ty)
        parts = ir.split_top_level(rest)
        if (
            instruction.result is None
            or width is None
            or int(width.group(1)) > 64
            or len(parts) < 2
        ):
            return None  # vectors and i128 are left to the limit check
        lhs, rhs, attachments = parts[0], parts[1], "".join(", " + p for p in parts[2:])
        if _is_power_of_two_literal(rhs):
            return None
        helper = "__sbf_sdiv64" if instruction.opcode == "sdiv" else "__sbf_srem64"
        self.counts[instruction.opcode] += 1
        self.helpers.add(helper)
        indent, result = _indent(instruction.text), instruction.result
        if ty == "i64":
            return f"{indent}{result} = call i64 @{helper}(i64 {lhs}, i64 {rhs}){attachments}"
        a, b, wide = self.fresh_name(), self.fresh_name(), self.fresh_name()
        return "\n".join(
            (
                f"{indent}{a} = sext {ty} {lhs} to i64",
                f"{indent}{b} = sext {ty} {rhs} to i64",
                f"{indent}{wide} = call i64 @{helper}(i64 {a}, i64 {b}){attachments}",
                f"{indent}{result} = trunc i64 {wide} to {ty}",
            )
        )


def rewrite_module(text: str) -> RewriteResult:
    """Apply every rewrite to an ``llvm-dis`` module; see the module docstring."""
    module = ir.Module.parse(text)
    rewriter = _Rewriter(text)
    lines = list(module.lines)
    for index, line in enumerate(lines):
        header = ir.parse_function_header(line)
        if header is not None:
            lines[index] = rewriter.header(line, header)
    for _, instruction in module.bodies():
        replacement = rewriter.instruction(instruction)
        if replacement is not None:
            lines[instruction.index] = replacement
    while lines and not lines[-1]:
        lines.pop()
    lines += [
        _HELPER_DECLARATIONS[h] for h in sorted(rewriter.helpers) if h not in module.functions
    ]
    return RewriteResult("\n".join(lines) + "\n", rewriter.counts)
