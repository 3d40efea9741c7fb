"""What LLVM 22's BPF backend cannot compile, found before llc and explained.

llc reports these limits one diagnostic at a time, against mangled names, and sometimes
crashes instead ("LLVM ERROR: unable to allocate function return").  The pipeline
therefore inspects the optimised and rewritten IR first.  It stops on the rules below,
writing one paragraph per offending function that names the function (demangled), the
rule, and how to avoid it:

* **too-many-arguments**: BPF passes arguments only in r1-r5 and LLVM 22 has no stack
  arguments ("stack arguments are not supported" / "too many arguments").  The check
  counts registers, not Rust parameters.  A hidden struct-return (sret) pointer takes
  one, a slice takes two (pointer and length), and a 128-bit value or a two-word
  aggregate takes two.  It applies to every defined function and to every call of an
  external or indirect target.
* **floating-point**: SBPF has no FPU.  LLVM lowers float arithmetic, comparisons and
  conversions to soft-float libcalls (``__adddf3``, ``__ltdf2``, ...), and the BPF backend
  cannot call a libcall.  Bit casts (``f64::to_bits``), loads, stores, ``fneg``, ``fabs``
  and ``copysign`` compile, so the check allows them.
* **128-bit-integer**: multiplication, division, remainder and variable shifts of
  integers wider than 64 bits need ``__multi3`` / ``__udivti3`` / ``__ashlti3`` / ...
  (the same libcall problem).  A function returning such an integer needs two return
  registers, which makes llc crash.  Addition, comparisons, constant shifts and
  multiplication or division by a power-of-two constant compile, so the check allows them.
* **aggregate-return**: a function can return only one register.  After the sret
  rewrite, an aggregate return type still in the IR cannot be compiled.

The same rules, plus the stack-frame and signed-division limits that only llc can see,
are recovered from llc's own diagnostics by :func:`translate_llc_errors`, in case they
still occur.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from . import ir

MAX_ARGUMENT_REGISTERS = 5
STACK_FRAME_BYTES = 4096  # SBPF v0's fixed frame; llc gets -bpf-stack-size with this value


class Rule(enum.Enum):
    """A backend limit, valued by the short name the messages show."""

    TOO_MANY_ARGUMENTS = "too-many-arguments"
    FLOATING_POINT = "floating-point"
    WIDE_INTEGER = "128-bit-integer"
    AGGREGATE_RETURN = "aggregate-return"
    STACK_FRAME = "stack-frame"
    SIGNED_DIVISION = "signed-division"
    UNSUPPORTED_CALL = "unsupported-libcall"

    @property
    def advice(self) -> str:
        """Why the rule exists and what to do instead."""
        return _ADVICE[self]


_ADVICE: dict[Rule, str] = {
    Rule.TOO_MANY_ARGUMENTS: (
        f"LLVM 22's BPF backend passes at most {MAX_ARGUMENT_REGISTERS} arguments, all in "
        "registers r1-r5, and has no stack arguments; a returned struct's hidden sret pointer "
        "counts as one, a slice and a 128-bit value as two. Mark the function "
        "#[inline(always)] or pass its arguments grouped in a struct by reference."
    ),
    Rule.FLOATING_POINT: (
        "SBPF has no floating point and LLVM 22's BPF backend cannot call the soft-float "
        "routines (__adddf3, __ltdf2, ...); use integer or fixed-point arithmetic "
        "(f64::to_bits/from_bits are fine). Rent::minimum_balance is one such f64 user."
    ),
    Rule.WIDE_INTEGER: (
        "LLVM 22's BPF backend cannot call the 128-bit helpers (__multi3, __udivti3, "
        "__ashlti3, ...) and returns at most 64 bits; use u64 arithmetic (checked_mul and "
        "checked_div are fine) or split the value into two u64 halves."
    ),
    Rule.AGGREGATE_RETURN: (
        "a BPF function returns a single 64-bit register; return the value through a "
        "pointer argument instead."
    ),
    Rule.STACK_FRAME: (
        f"an SBPF v0 stack frame is {STACK_FRAME_BYTES} bytes; move large locals into "
        "account data or a heap allocation, or split the function."
    ),
    Rule.SIGNED_DIVISION: (
        "BPF before v4 has no signed division and sbf-link only rewrites scalar sdiv/srem "
        "of up to 64 bits; divide the magnitudes with unsigned division."
    ),
    Rule.UNSUPPORTED_CALL: (
        "LLVM 22's BPF backend cannot call runtime library functions; avoid the operation "
        "that needs it."
    ),
}


@dataclass(frozen=True)
class Violation:
    """One limit broken in one function; ``detail`` says how, e.g. which instruction."""

    function: str
    rule: Rule
    detail: str


_FLOAT_OPCODES = frozenset(
    {
        "fadd",
        "fsub",
        "fmul",
        "fdiv",
        "frem",
        "fcmp",
        "fptoui",
        "fptosi",
        "uitofp",
        "sitofp",
        "fpext",
        "fptrunc",
    }
)
_WIDE_ARITHMETIC = frozenset({"mul", "udiv", "sdiv", "urem", "srem"})
_SHIFTS = frozenset({"shl", "lshr", "ashr"})
_INT_FLAGS = ("nuw", "nsw", "exact", "disjoint")
_LOWERABLE_FLOAT_INTRINSICS = frozenset({"fabs", "copysign", "is.fpclass"})
_FLOAT_SUFFIX = re.compile(r"(?:v\d+)?(?:f16|bf16|f32|f64|f80|f128|ppcf128)")
_WIDE_INTRINSIC = re.compile(r"llvm\.[us]mul\.with\.overflow\.i(\d+)")
_SOFT_FLOAT_CALL = re.compile(
    r"__(?:(?:add|sub|mul|div|neg|powi?|eq|ne|lt|le|gt|ge|unord|cmp)[hsdtxb]f[23]"
    r"|fix(?:uns)?[hsdtxb]f[sdt]i|float(?:un)?[sdt]i[hsdtxb]f|(?:extend|trunc)[hsdtxb]f[hsdtxb]f2)"
)
_LIBM_CALL = re.compile(
    r"(?:sqrt|fmod|floor|ceil|trunc|round|roundeven|rint|nearbyint|fmin|fmax|fminimum|fmaximum"
    r"|pow|exp|exp2|exp10|log|log2|log10|sin|cos|tan|fma|ldexp|frexp|lround|llround)[fl]?"
)
_WIDE_CALL = re.compile(
    r"__(?:mul|div|mod|udiv|umod|udivmod|divmod|ashl|lshr|ashr|mulo|umulo)ti[34]"
)


def _wide_int_bits(ty: str) -> int:
    """Bit width of an integer (or integer vector element) type, 0 if not an integer."""
    match = re.fullmatch(r"(?:<\s*\d+\s+x\s+)?i(\d+)>?", ty.strip())
    return int(match.group(1)) if match else 0


def _argument_registers(types: Iterable[str]) -> int:
    return sum(ir.register_count(ty) for ty in types)


def _call_violations(function: str, call: ir.Call, module: ir.Module) -> Iterable[Violation]:
    callee = call.callee
    if callee is not None and callee.startswith("llvm."):
        base, *suffixes = callee[len("llvm.") :].split(".")
        for i, part in enumerate(suffixes):
            if _FLOAT_SUFFIX.fullmatch(part):
                name = ".".join([base, *suffixes[:i]])
                if name not in _LOWERABLE_FLOAT_INTRINSICS:
                    yield Violation(function, Rule.FLOATING_POINT, f"calls @{callee}")
                break
        wide = _WIDE_INTRINSIC.fullmatch(callee)
        if wide and int(wide.group(1)) > 64:
            yield Violation(function, Rule.WIDE_INTEGER, f"calls @{callee}")
        return
    target = module.functions.get(callee) if callee is not None else None
    external = target is None or not target.is_definition
    if callee is not None and (
        _SOFT_FLOAT_CALL.fullmatch(callee) or (external and _LIBM_CALL.fullmatch(callee))
    ):
        yield Violation(function, Rule.FLOATING_POINT, f"calls {callee}")
    if callee is not None and _WIDE_CALL.fullmatch(callee):
        yield Violation(function, Rule.WIDE_INTEGER, f"calls {callee}")
    if external:  # definitions are checked themselves
        registers = _argument_registers(ir.leading_type(arg)[0] for arg in call.args)
        if registers > MAX_ARGUMENT_REGISTERS:
            what = f"calls {callee}" if callee is not None else "makes an indirect call"
            yield Violation(
                function, Rule.TOO_MANY_ARGUMENTS, f"{what} with {registers} argument registers"
            )
        if _wide_int_bits(call.return_type) > 64:
            yield Violation(
                function,
                Rule.WIDE_INTEGER,
                f"calls {callee or 'a pointer'} returning {call.return_type}",
            )


def _instruction_violations(function: str, insn: ir.Instruction) -> Iterable[Violation]:
    if insn.opcode in _FLOAT_OPCODES:
        operands = ir.strip_flags(
            insn.operands, ("fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc")
        )
        yield Violation(
            function, Rule.FLOATING_POINT, f"{insn.opcode} {operands.split(',')[0].strip()}"
        )
    elif insn.opcode in _WIDE_ARITHMETIC or insn.opcode in _SHIFTS:
        ty, rest = ir.leading_type(ir.strip_flags(insn.operands, _INT_FLAGS))
        if _wide_int_bits(ty) <= 64:
            return
        parts = ir.split_top_level(rest)
        amount = parts[1] if len(parts) > 1 else ""
        literal = re.fullmatch(r"-?\d+", amount)
        if insn.opcode in _SHIFTS and literal:
            return  # constant shifts are expanded inline
        if insn.opcode in _WIDE_ARITHMETIC and literal:
            magnitude = abs(int(amount))
            if magnitude and magnitude & (magnitude - 1) == 0:
                return  # by a power of two: shifts again
        yield Violation(function, Rule.WIDE_INTEGER, f"{insn.opcode} {ty}")


def check_module(text: str) -> list[Violation]:
    """Every limit the module breaks, in module order, without duplicates."""
    module = ir.Module.parse(text)
    found: list[Violation] = []
    for header in module.functions.values():
        if not header.is_definition:
            continue
        registers = _argument_registers(header.param_types)
        if registers > MAX_ARGUMENT_REGISTERS:
            found.append(
                Violation(
                    header.name,
                    Rule.TOO_MANY_ARGUMENTS,
                    f"takes {registers} argument registers ({', '.join(header.param_types)})",
                )
            )
        if _wide_int_bits(header.return_type) > 64:
            found.append(Violation(header.name, Rule.WIDE_INTEGER, f"returns {header.return_type}"))
        elif header.return_type.startswith(("{", "[", "<{")):
            found.append(
                Violation(header.name, Rule.AGGREGATE_RETURN, f"returns {header.return_type}")
            )
    for header, insn in module.bodies():
        if insn.opcode in ("call", "invoke"):
            call = ir.parse_call(insn.text)
            if call is not None:
                found.extend(_call_violations(header.name, call, module))
        else:
            found.extend(_instruction_violations(header.name, insn))
    return list(dict.fromkeys(found))


_LLC_DIAGNOSTIC = re.compile(r"in function (?P<name>\S+) (?P<type>.*?\)): (?P<message>.*)$")
_LLC_CRASH_FUNCTION = re.compile(r"on function '@(?P<name>[^']+)'")


def _classify_llc_message(message: str) -> tuple[Rule, str] | None:
    libcall = re.match(r"A call to built-in function '([^']+)' is not supported", message)
    if libcall:
        name = libcall.group(1)
        if _SOFT_FLOAT_CALL.fullmatch(name) or _LIBM_CALL.fullmatch(name):
            return Rule.FLOATING_POINT, f"needs the libcall {name}"
        if _WIDE_CALL.fullmatch(name):
            return Rule.WIDE_INTEGER, f"needs the libcall {name}"
        return Rule.UNSUPPORTED_CALL, f"needs the libcall {name}"
    if "stack arguments are not supported" in message:
        return Rule.TOO_MANY_ARGUMENTS, "takes more than 5 argument registers"
    callee = re.search(r"GlobalAddress<ptr @([^>]+)> \d+ too many arguments", message)
    if callee:
        return (
            Rule.TOO_MANY_ARGUMENTS,
            f"calls {callee.group(1)} with more than 5 argument registers",
        )
    if "too many arguments" in message:
        return Rule.TOO_MANY_ARGUMENTS, "makes a call with more than 5 argument registers"
    if "only small returns supported" in message:
        return Rule.WIDE_INTEGER, "returns or receives a value wider than 64 bits"
    if "aggregate returns are not supported" in message:
        return Rule.AGGREGATE_RETURN, "returns an aggregate"
    if "stack limit is exceeded" in message:
        return Rule.STACK_FRAME, f"needs a stack frame larger than {STACK_FRAME_BYTES} bytes"
    if "unsupported signed division" in message:
        return Rule.SIGNED_DIVISION, "divides signed values"
    return None


def translate_llc_errors(stderr: str) -> list[Violation] | None:
    """llc's diagnostics as violations; ``None`` if any diagnostic is not a known limit."""
    found: list[Violation] = []
    for line in stderr.splitlines():
        if "LLVM ERROR: unable to allocate function return" in line:
            crash = _LLC_CRASH_FUNCTION.search(stderr)
            function = crash.group("name") if crash else "<unknown>"
            found.append(
                Violation(function, Rule.WIDE_INTEGER, "returns a value wider than 64 bits")
            )
            continue
        if not line.startswith("error:"):
            continue
        diagnostic = _LLC_DIAGNOSTIC.search(line)
        classified = _classify_llc_message(diagnostic.group("message")) if diagnostic else None
        if diagnostic is None or classified is None:
            return None
        found.append(Violation(diagnostic.group("name"), *classified))
    return list(dict.fromkeys(found)) or None


def format_violations(
    violations: Sequence[Violation], demangle: Callable[[Sequence[str]], Mapping[str, str]]
) -> str:
    """One paragraph per (function, rule): what the function does, the rule, the fix."""
    names = demangle([v.function for v in violations])
    grouped: dict[tuple[str, Rule], list[str]] = {}
    for v in violations:
        grouped.setdefault((v.function, v.rule), []).append(v.detail)
    paragraphs = []
    for (function, rule), details in grouped.items():
        shown = "; ".join(details[:4]) + ("; ..." if len(details) > 4 else "")
        readable = names.get(function, function)
        symbol = f" (symbol {function})" if readable != function else ""
        paragraphs.append(
            f"function `{readable}`{symbol} breaks the BPF backend rule [{rule.value}]: "
            f"it {shown}. {rule.advice}"
        )
    paragraphs.append(
        "(Functions are named as they are after LTO inlining: the cause may be in code "
        "inlined into them.)"
    )
    return "\n\n".join(paragraphs)
