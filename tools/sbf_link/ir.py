"""Just enough of LLVM's textual IR to inspect and rewrite single instructions.

The rewrites and the limit check work on ``llvm-dis`` output because the standard library
has no LLVM bindings.  That output is regular, and this module relies only on what the
printer guarantees:

* one function header per line: ``define ... @name(params) ... {`` or ``declare ...``;
* a body of one instruction per line, ending with a line that is exactly ``}``;
* operands, parameters and aggregate members separated by commas that are not nested in
  ``()``, ``[]``, ``{}`` or ``<>`` and not inside a quoted string.

Everything here is a pure function of strings, so it is easy to test in isolation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# An LLVM identifier after its sigil: quoted (may hold any character) or bare.
NAME = r'(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)'
_CALLEE_AT = re.compile(r"([@%])(" + NAME + r")\(")
_CALL_START = re.compile(
    r"^\s*(?:%" + NAME + r"\s*=\s*)?(?:(?:tail|musttail|notail)\s+)?(?:call|invoke)\s"
)
_RESULT = re.compile(r"^\s*(%" + NAME + r")\s*=\s*")
_METADATA_ATTACHMENT = re.compile(r",\s*(![-a-zA-Z$._0-9]+\s+!\d+)")
_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}

FLOAT_TYPES: dict[str, int] = {
    "half": 16,
    "bfloat": 16,
    "float": 32,
    "double": 64,
    "x86_fp80": 80,
    "fp128": 128,
    "ppc_fp128": 128,
}


def skip_string(text: str, quote_index: int) -> int:
    """Index of the quote closing the string that opens at ``quote_index``."""
    i = quote_index + 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i


def closing_index(text: str, open_index: int) -> int:
    """Index of the bracket matching the one at ``open_index`` (quotes respected)."""
    depth = 0
    i = open_index
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = skip_string(text, i)
        elif ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced brackets in IR: {text!r}")


def split_top_level(text: str) -> list[str]:
    """Split at commas that are not nested in brackets or strings; strip each part."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = skip_string(text, i)
        elif ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:].strip()
    if last or parts:
        parts.append(last)
    return parts


def leading_type(text: str) -> tuple[str, str]:
    """Split ``"<type> <rest>"`` into the type and the rest (attributes, value)."""
    text = text.lstrip()
    if text[:1] in ("{", "[", "<"):
        end = closing_index(text, 0) + 1
    elif text.startswith('%"'):
        end = skip_string(text, 1) + 1
    else:
        match = re.match(r"\S+", text)
        end = match.end() if match else 0
    return text[:end], text[end:].strip()


def trailing_type(text: str) -> str:
    """The type a header or call prefix ends with (``define internal i64`` -> ``i64``)."""
    text = text.rstrip()
    if text.endswith(")"):  # a function type "ret (params)": the return type precedes it
        depth = 0
        for i in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[i], 0)
            if depth == 0:
                return trailing_type(text[:i])
    if text[-1:] in ("}", "]", ">"):
        depth = 0
        for i in range(len(text) - 1, -1, -1):
            if text[i] in _CLOSERS:
                depth += 1
            elif text[i] in _OPENERS:
                depth -= 1
                if depth == 0:
                    return text[i:]
    return text.rsplit(None, 1)[-1] if text else ""


def type_bits(ty: str) -> int | None:
    """Size in bits of a first-class IR type; ``None`` when unknown (named types)."""
    ty = ty.strip()
    if match := re.fullmatch(r"i(\d+)", ty):
        return int(match.group(1))
    if ty == "ptr" or ty.startswith("ptr "):
        return 64
    if ty in FLOAT_TYPES:
        return FLOAT_TYPES[ty]
    if match := re.fullmatch(r"[\[<]\s*(\d+)\s+x\s+(.+)[\]>]", ty):
        element = type_bits(match.group(2))
        return None if element is None else int(match.group(1)) * element
    if ty.startswith(("{", "<{")):
        inner = ty[ty.index("{") + 1 : ty.rindex("}")]
        sizes = [type_bits(member) for member in split_top_level(inner)]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
    return None


def register_count(ty: str) -> int:
    """BPF argument registers (64-bit) a value of type ``ty`` occupies."""
    bits = type_bits(ty)
    return max(1, -(-bits // 64)) if bits else 1


def unquote(name: str) -> str:
    """A symbol name as the linker sees it (``"a\\22b"`` -> ``a"b``)."""
    if not name.startswith('"'):
        return name
    return re.sub(r"\\([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name[1:-1])


@dataclass(frozen=True)
class FunctionHeader:
    """A ``define`` or ``declare`` line."""

    name: str
    return_type: str
    params: tuple[str, ...]
    variadic: bool
    is_definition: bool

    @property
    def param_types(self) -> list[str]:
        return [leading_type(p)[0] for p in self.params]


def parse_function_header(line: str) -> FunctionHeader | None:
    """Parse a ``define``/``declare`` line; ``None`` for any other line."""
    if not line.startswith(("define ", "declare ")):
        return None
    match = _CALLEE_AT.search(line)
    if match is None or match.group(1) != "@":
        return None
    close = closing_index(line, match.end() - 1)
    params = split_top_level(line[match.end() : close])
    variadic = bool(params) and params[-1] == "..."
    return FunctionHeader(
        name=unquote(match.group(2)),
        return_type=trailing_type(line[: match.start()].split(None, 1)[1]),
        params=tuple(params[:-1] if variadic else params),
        variadic=variadic,
        is_definition=line.startswith("define "),
    )


@dataclass(frozen=True)
class Call:
    """A ``call``/``invoke`` instruction."""

    callee: str | None  # the global's name, or None for an indirect call
    return_type: str
    args: tuple[str, ...]
    args_close: int  # index of the ")" closing the arguments in the line

    def metadata(self, line: str) -> str:
        """The ``, !dbg !7``-style attachments after the call, to carry over to a rewrite."""
        return "".join(
            ", " + m.group(1) for m in _METADATA_ATTACHMENT.finditer(line, self.args_close)
        )


def _find_callee(line: str, start: int) -> re.Match[str] | None:
    """The first ``@name(`` or ``%name(`` outside brackets and strings from ``start``."""
    depth = 0
    i = start
    while i < len(line):
        ch = line[i]
        if ch == '"':
            i = skip_string(line, i)
        elif ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
        elif ch in "@%" and depth == 0 and (match := _CALLEE_AT.match(line, i)):
            return match
        i += 1
    return None


def parse_call(line: str) -> Call | None:
    """Parse a call or invoke instruction; ``None`` for anything else (inline asm too)."""
    start = _CALL_START.match(line)
    if start is None:
        return None
    match = _find_callee(line, start.end())
    if match is None:
        return None
    close = closing_index(line, match.end() - 1)
    return Call(
        callee=unquote(match.group(2)) if match.group(1) == "@" else None,
        return_type=trailing_type(line[start.end() : match.start()]),
        args=tuple(split_top_level(line[match.end() : close])),
        args_close=close,
    )


@dataclass(frozen=True)
class Instruction:
    """One body line: its index in the module, its text and what it computes."""

    index: int
    text: str
    result: str | None  # "%x" when the instruction names a result
    opcode: str  # "call" for tail/musttail/notail calls too
    operands: str  # the text after the opcode


def parse_instruction(index: int, line: str) -> Instruction | None:
    """Split a body line into result, opcode and operand text; ``None`` for labels etc."""
    stripped = line.strip()
    if not line[:1].isspace() or not stripped or stripped.startswith((";", "#dbg_")):
        return None  # labels start in column 0; debug records are not instructions
    result_match = _RESULT.match(line)
    rest = line[result_match.end() :] if result_match else stripped
    words = rest.split(None, 1)
    opcode = words[0]
    operands = words[1] if len(words) > 1 else ""
    if opcode in ("tail", "musttail", "notail"):
        opcode, _, operands = operands.partition(" ")
    return Instruction(
        index, line, result_match.group(1) if result_match else None, opcode, operands
    )


def strip_flags(operands: str, flags: Sequence[str]) -> str:
    """Drop leading keyword flags (``nuw nsw exact`` / fast-math flags) from operand text."""
    words = operands.split(" ")
    while words and words[0] in flags:
        words.pop(0)
    return " ".join(words)


@dataclass(frozen=True)
class Module:
    """The lines of an ``llvm-dis`` module and the functions it declares or defines."""

    lines: list[str]
    functions: dict[str, FunctionHeader]

    @classmethod
    def parse(cls, text: str) -> Module:
        lines = text.split("\n")
        functions: dict[str, FunctionHeader] = {}
        for line in lines:
            header = parse_function_header(line)
            if header is not None:
                functions[header.name] = header
        return cls(lines, functions)

    def bodies(self) -> Iterator[tuple[FunctionHeader, Instruction]]:
        """Every instruction with the function defining it, in module order."""
        current: FunctionHeader | None = None
        for index, line in enumerate(self.lines):
            if current is None:
                if line.startswith("define "):
                    current = parse_function_header(line)
            elif line == "}":
                current = None
            elif (instruction := parse_instruction(index, line)) is not None:
                yield current, instruction
