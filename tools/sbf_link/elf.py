"""Read llc's BPF relocatable object and write the SBPF v0 shared object Solana loads.

llc emits an ordinary upstream-BPF ``ET_REL`` file.  Solana's loader for SBPF v0 programs
(solana-sbpf ``Executable::load_with_lenient_parser`` and ``relocate()``; 0.10 in
solders 0.26, 0.21 in solders 0.29) needs an ``ET_DYN`` file with these properties.  Each
one is required by that code:

* Header: ``e_machine`` is EM_BPF, ``e_flags`` is 0 (0 selects SBPF v0; v2 drops
  ``lddw`` and v3 needs a strict layout), ``e_entry`` is the address of ``entrypoint``.
* Layout: every allocated section has its virtual address equal to its file offset,
  since the loader maps the file at ``MM_PROGRAM_START`` + offset.  The section order is
  ``.text .rodata .dynamic .dynsym .dynstr .rel.dyn .symtab .strtab .shstrtab``, and the
  section data is sorted and non-overlapping, which the ELF parser checks.  There is
  exactly one ``.text``.  All read-only data is merged into one ``.rodata``, because
  only ``.text``/``.rodata``/``.data.rel.ro``/``.eh_frame`` are mapped.
* No writable data: the runtime rejects ``.bss`` and ``.data`` (``WritableSectionNotSupported``).
  Programs keep state in accounts.
* Internal calls carry a pc-relative ``imm``, which the loader turns into a hashed key.
* A syscall is ``call imm=-1`` (src 0) plus a dynamic ``R_BPF_64_32`` (type 10) against a
  ``.dynsym`` entry naming it.  The loader hashes the name into ``imm``.
* ``lddw`` of an address holds the absolute address (file offset) in its two ``imm``
  halves, plus a dynamic ``R_BPF_64_RELATIVE`` (type 8), to which the loader adds
  ``MM_PROGRAM_START``.
* A 64-bit pointer stored in read-only data holds its address in the *high* 32 bits,
  plus ``R_BPF_64_RELATIVE``.  The v0 loader reads the value at ``r_offset + 4``, a
  compatibility quirk kept from an old toolchain bug.
* ``callx`` keeps its register number in ``imm``.  Upstream LLVM puts it in ``dst_reg``.
* ``.symtab`` keeps only function names shorter than 64 bytes.  solana-sbpf 0.10 reads
  them when symbol labels are on and rejects the whole file (``InvalidAccountData``)
  over a longer one, such as a Rust v0-mangled name.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from . import syscalls
from .errors import LinkError

EM_BPF = 247
ET_REL = 1
ET_DYN = 3

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 0, 1, 2, 3
SHT_RELA, SHT_DYNAMIC, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 4, 6, 8, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_LORESERVE = 0xFF00
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_FUNC, STT_SECTION = 0, 2, 3
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT = 17, 18, 19

R_BPF_NONE = 0
R_BPF_64_64 = 1  # lddw imm pair
R_BPF_64_ABS64 = 2  # 64-bit data word
R_BPF_64_RELATIVE = 8
R_BPF_64_32 = 10  # call imm

OP_LDDW = 0x18
OP_CALL = 0x85
OP_CALLX = 0x8D
INSN_SIZE = 8

EHDR_SIZE, PHDR_SIZE, SHDR_SIZE, SYM_SIZE, REL_SIZE, DYN_SIZE = 64, 56, 64, 24, 16, 16
SYMTAB_NAME_MAX = 63  # solana-sbpf 0.10: name plus NUL within 64 bytes
ENTRYPOINT = "entrypoint"
SECTION_ORDER = (
    ".text",
    ".rodata",
    ".dynamic",
    ".dynsym",
    ".dynstr",
    ".rel.dyn",
    ".symtab",
    ".strtab",
    ".shstrtab",
)
TEXT_INDEX = SECTION_ORDER.index(".text") + 1
DYNAMIC_ENTRIES = 8  # .dynamic has a fixed size so it can be laid out before it is filled

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")


@dataclass(frozen=True)
class Section:
    """One section of the input object (``data`` is empty for SHT_NOBITS)."""

    index: int
    name: str
    type: int
    flags: int
    size: int
    link: int
    info: int
    align: int
    data: bytes

    @property
    def is_alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)

    @property
    def is_code(self) -> bool:
        return bool(self.flags & SHF_ALLOC and self.flags & SHF_EXECINSTR)

    @property
    def is_writable_data(self) -> bool:
        """Writable at run time: ``.data.rel.ro`` is only writable while relocating."""
        return (
            self.is_alloc
            and (bool(self.flags & SHF_WRITE) or self.type == SHT_NOBITS)
            and not self.name.startswith(".data.rel.ro")
        )


@dataclass(frozen=True)
class Symbol:
    name: str
    bind: int
    type: int
    section: int  # st_shndx
    value: int
    size: int

    @property
    def is_defined(self) -> bool:
        return 0 < self.section < SHN_LORESERVE


@dataclass(frozen=True)
class Relocation:
    offset: int
    type: int
    symbol: int


@dataclass(frozen=True)
class RelocatableObject:
    """The parts of a BPF ``ET_REL`` file the writer needs."""

    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    relocations: dict[int, tuple[Relocation, ...]]  # by index of the patched section

    def undefined_symbols(self) -> list[str]:
        """Names the program's code and data use but no input defines: syscalls, or errors."""
        used = {
            r.symbol
            for index, rels in self.relocations.items()
            if self.sections[index].is_alloc
            for r in rels
        }
        return sorted({self.symbols[i].name for i in used if not self.symbols[i].is_defined})

    def writable_data(self) -> list[tuple[Section, list[str]]]:
        """Non-empty writable sections, with the names of the symbols defined in each."""
        found = []
        for section in self.sections:
            if section.is_writable_data and section.size:
                names = [
                    s.name
                    for s in self.symbols
                    if s.section == section.index and s.name and s.type != STT_SECTION
                ]
                found.append((section, names))
        return found


def _cstring(table: bytes, offset: int) -> str:
    end = table.index(b"\0", offset)
    return table[offset:end].decode("utf-8", "replace")


def read_sections(data: bytes) -> tuple[int, int, tuple[Section, ...]]:
    """``(e_type, e_machine, sections)`` of any little-endian ELF64 file."""
    if len(data) < EHDR_SIZE or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise LinkError("not a little-endian ELF64 file")
    (_, e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum, e_shstrndx) = (
        _EHDR.unpack_from(data)
    )
    raw = [_SHDR.unpack_from(data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    names = data[raw[e_shstrndx][4] : raw[e_shstrndx][4] + raw[e_shstrndx][5]] if raw else b""
    sections = []
    for index, (name, kind, flags, _, offset, size, link, info, align, _) in enumerate(raw):
        body = b"" if kind == SHT_NOBITS else data[offset : offset + size]
        name_text = _cstring(names, name)
        sections.append(
            Section(index, name_text, kind, flags, size, link, info, max(align, 1), body)
        )
    return e_type, e_machine, tuple(sections)


def read_relocatable(data: bytes) -> RelocatableObject:
    """Parse llc's BPF ``ET_REL`` output."""
    e_type, e_machine, sections = read_sections(data)
    if e_type != ET_REL or e_machine != EM_BPF:
        raise LinkError(
            f"expected a BPF relocatable object, got e_type={e_type} e_machine={e_machine}"
        )
    symbols: tuple[Symbol, ...] = ()
    for section in sections:
        if section.type == SHT_SYMTAB:
            strings = sections[section.link].data
            symbols = tuple(
                Symbol(_cstring(strings, name), info >> 4, info & 0xF, shndx, value, size)
                for name, info, _, shndx, value, size in _SYM.iter_unpack(section.data)
            )
    relocations: dict[int, tuple[Relocation, ...]] = {}
    for section in sections:
        if section.type == SHT_RELA:
            raise LinkError(f"unexpected RELA section {section.name}: BPF objects use REL")
        if section.type == SHT_REL:
            relocations[section.info] = tuple(
                Relocation(offset, info & 0xFFFFFFFF, info >> 32)
                for offset, info in _REL.iter_unpack(section.data)
            )
    return RelocatableObject(sections, symbols, relocations)


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


@dataclass(frozen=True)
class _DynamicRelocation:
    offset: int
    type: int
    syscall: str | None = None


class _Image:
    """``.text`` and ``.rodata`` being laid out at their final addresses and patched."""

    def __init__(self, obj: RelocatableObject, start: int) -> None:
        self.obj = obj
        self.base: dict[int, int] = {}
        code = [s for s in obj.sections if s.is_code and s.size]
        rodata = [
            s
            for s in obj.sections
            if s.is_alloc and not s.is_code and s.size and not s.name.startswith(".eh_frame")
        ]
        writable = [s.name for s in rodata if s.is_writable_data]
        if writable:
            raise LinkError(
                f"writable data sections {', '.join(writable)}: the Solana runtime rejects "
                "writable statics (static mut, .data, .bss); keep state in accounts"
            )
        self.text_start = start
        self.text = self._concatenate(code, start, 8)
        self.rodata_align = max([8, *(s.align for s in rodata)])
        self.rodata_start = _align(start + len(self.text), self.rodata_align)
        self.rodata = self._concatenate(rodata, self.rodata_start, 1)
        self.dynamic_relocations: list[_DynamicRelocation] = []

    def _concatenate(self, sections: Sequence[Section], start: int, min_align: int) -> bytearray:
        out = bytearray()
        for section in sections:
            out += bytes(_align(len(out), max(section.align, min_align)) - len(out))
            self.base[section.index] = start + len(out)
            out += section.data
        return out

    @property
    def end(self) -> int:
        return self.rodata_start + len(self.rodata)

    def address_of(self, symbol: Symbol) -> int | None:
        """Final address of a defined symbol; None if undefined or not in the image."""
        if not symbol.is_defined or symbol.section not in self.base:
            return None
        return self.base[symbol.section] + symbol.value

    def locate(self, address: int) -> tuple[bytearray, int]:
        if self.text_start <= address < self.text_start + len(self.text):
            return self.text, address - self.text_start
        return self.rodata, address - self.rodata_start

    def relocate(self) -> None:
        for section_index, relocations in self.obj.relocations.items():
            if section_index not in self.base:
                continue  # debug info, BTF, .eh_frame: not part of the program
            for relocation in relocations:
                self._apply(self.obj.sections[section_index], relocation)

    def _apply(self, section: Section, relocation: Relocation) -> None:
        symbol = self.obj.symbols[relocation.symbol]
        where = self.base[section.index] + relocation.offset
        buf, at = self.locate(where)
        target = self.address_of(symbol)
        if relocation.type == R_BPF_NONE:
            return
        if relocation.type == R_BPF_64_64 and section.is_code and buf[at] == OP_LDDW:
            if target is None:
                raise LinkError(f"lddw of undefined or unmapped symbol {symbol.name!r}")
            lo, hi = (
                struct.unpack_from("<I", buf, at + 4)[0],
                struct.unpack_from("<I", buf, at + 12)[0],
            )
            address = target + ((hi << 32) | lo)
            struct.pack_into("<I", buf, at + 4, address & 0xFFFFFFFF)
            struct.pack_into("<I", buf, at + 12, address >> 32)
            self.dynamic_relocations.append(_DynamicRelocation(where, R_BPF_64_RELATIVE))
        elif relocation.type == R_BPF_64_32 and section.is_code and buf[at] == OP_CALL:
            if not symbol.is_defined:
                buf[at + 1] = 0  # src_reg 0: a syscall, not a pc-relative call
                struct.pack_into("<i", buf, at + 4, -1)
                name = syscalls.canonical(symbol.name)
                if not syscalls.is_syscall(name):
                    raise LinkError(
                        f"call to undefined symbol {symbol.name!r} (not a Solana syscall)"
                    )
                self.dynamic_relocations.append(_DynamicRelocation(where, R_BPF_64_32, name))
                return
            if target is None or not self.obj.sections[symbol.section].is_code:
                raise LinkError(f"call to {symbol.name!r}, which is not code")
            imm = struct.unpack_from("<i", buf, at + 4)[0]
            destination = target + (imm + 1) * INSN_SIZE
            struct.pack_into("<i", buf, at + 4, (destination - where - INSN_SIZE) // INSN_SIZE)
        elif relocation.type == R_BPF_64_ABS64 and not section.is_code:
            if target is None:
                raise LinkError(f"pointer to undefined symbol {symbol.name!r} in {section.name}")
            address = target + struct.unpack_from("<q", buf, at)[0]
            struct.pack_into("<II", buf, at, 0, address)
            self.dynamic_relocations.append(_DynamicRelocation(where, R_BPF_64_RELATIVE))
        else:
            raise LinkError(
                f"unsupported relocation type {relocation.type} at "
                f"{section.name}+{relocation.offset:#x} against {symbol.name!r}"
            )

    def move_callx_registers(self) -> None:
        for at in range(0, len(self.text), INSN_SIZE):
            if self.text[at] == OP_CALLX and struct.unpack_from("<i", self.text, at + 4)[0] == 0:
                register = self.text[at + 1] & 0x0F
                self.text[at + 1] = 0
                struct.pack_into("<i", self.text, at + 4, register)


class _StringTable:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, name: str) -> int:
        if name not in self._offsets:
            self._offsets[name] = len(self.data)
            self.data += name.encode() + b"\0"
        return self._offsets[name]


def _symbol_entry(name: int, bind: int, kind: int, section: int, value: int, size: int) -> bytes:
    return _SYM.pack(name, (bind << 4) | kind, 0, section, value, size)


def _static_symbols(image: _Image) -> tuple[bytes, bytes, int]:
    """``.symtab`` (functions only, locals first), ``.strtab`` and the first global's index."""
    strings = _StringTable()
    functions = [
        s
        for s in image.obj.symbols
        if s.type == STT_FUNC
        and s.name
        and len(s.name.encode()) <= SYMTAB_NAME_MAX
        and image.address_of(s) is not None
        and image.obj.sections[s.section].is_code
    ]
    functions.sort(key=lambda s: s.bind != STB_LOCAL)
    table = bytearray(SYM_SIZE)
    for s in functions:
        address = image.address_of(s)
        assert address is not None
        table += _symbol_entry(strings.add(s.name), s.bind, STT_FUNC, TEXT_INDEX, address, s.size)
    first_global = 1 + sum(s.bind == STB_LOCAL for s in functions)
    return bytes(table), bytes(strings.data), first_global


@dataclass(frozen=True)
class _OutputSection:
    """A section of the output; allocated ones are loaded at address == offset."""

    name: str
    type: int
    flags: int
    offset: int
    data: bytes
    link: str | None = None  # name of the linked section
    info: int = 0
    align: int = 1
    entsize: int = 0

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    def header(self, name_offset: int) -> bytes:
        address = self.offset if self.flags & SHF_ALLOC else 0
        link = SECTION_ORDER.index(self.link) + 1 if self.link else 0
        size = len(self.data)
        fields = (self.type, self.flags, address, self.offset, size, link, self.info, self.align)
        return _SHDR.pack(name_offset, *fields, self.entsize)


def _dynamic_symbols(
    image: _Image, entry: Symbol, entry_address: int
) -> tuple[bytes, bytes, bytes]:
    """``.dynsym`` (null, one undefined symbol per syscall, entry), ``.dynstr``, ``.rel.dyn``."""
    strings = _StringTable()
    names = sorted({r.syscall for r in image.dynamic_relocations if r.syscall})
    table = bytearray(SYM_SIZE)
    for name in names:
        table += _symbol_entry(strings.add(name), STB_GLOBAL, STT_NOTYPE, 0, 0, 0)
    table += _symbol_entry(
        strings.add(ENTRYPOINT), STB_GLOBAL, STT_FUNC, TEXT_INDEX, entry_address, entry.size
    )
    index = {name: i for i, name in enumerate(names, start=1)}
    relocations = b"".join(
        _REL.pack(r.offset, (index[r.syscall] << 32 if r.syscall else 0) | r.type)
        for r in sorted(image.dynamic_relocations, key=lambda r: r.offset)
    )
    return bytes(table), bytes(strings.data), relocations


def _dynamic_table(dynsym: _OutputSection, dynstr: _OutputSection, rel: _OutputSection) -> bytes:
    entries = [(DT_SYMTAB, dynsym.offset), (DT_SYMENT, SYM_SIZE)]
    entries += [(DT_STRTAB, dynstr.offset), (DT_STRSZ, len(dynstr.data))]
    if rel.data:
        entries += [(DT_REL, rel.offset), (DT_RELSZ, len(rel.data)), (DT_RELENT, REL_SIZE)]
    entries += [(DT_NULL, 0)] * (DYNAMIC_ENTRIES - len(entries))
    return b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)


def _segment(kind: int, flags: int, start: int, end: int, align: int) -> bytes:
    return _PHDR.pack(kind, flags, start, start, start, end - start, end - start, align)


def write_sbpf_v0(obj: RelocatableObject) -> bytes:
    """The SBPF v0 shared object for ``obj``; see the module docstring for the rules."""
    segment_count = 3
    image = _Image(obj, _align(EHDR_SIZE + segment_count * PHDR_SIZE, INSN_SIZE))
    image.relocate()
    image.move_callx_registers()
    entries = [s for s in obj.symbols if s.name == ENTRYPOINT and image.address_of(s) is not None]
    entry = entries[0] if entries else None
    entry_address = image.address_of(entry) if entry else None
    if entry is None or entry_address is None:
        raise LinkError(
            f'no `{ENTRYPOINT}` function: define it with #[no_mangle] pub extern "C" '
            f"fn {ENTRYPOINT} (pinocchio's entrypoint! macros do)"
        )
    dynsym_data, dynstr_data, rel_data = _dynamic_symbols(image, entry, entry_address)
    symtab_data, strtab_data, first_global = _static_symbols(image)
    shstrtab = _StringTable()
    for name in SECTION_ORDER:
        shstrtab.add(name)

    # .text and .rodata are where the image put them; the rest follow, each at its alignment.
    # .dynamic's contents need the final offsets, so it is laid out empty and filled after.
    sections = [
        _OutputSection(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, image.text_start,
                       bytes(image.text), align=INSN_SIZE),
        _OutputSection(".rodata", SHT_PROGBITS, SHF_ALLOC, image.rodata_start,
                       bytes(image.rodata), align=image.rodata_align),
    ]  # fmt: skip
    for section in (
        _OutputSection(".dynamic", SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, 0,
                       bytes(DYNAMIC_ENTRIES * DYN_SIZE), ".dynstr", align=8, entsize=DYN_SIZE),
        _OutputSection(".dynsym", SHT_DYNSYM, SHF_ALLOC, 0, dynsym_data, ".dynstr", info=1,
                       align=8, entsize=SYM_SIZE),
        _OutputSection(".dynstr", SHT_STRTAB, SHF_ALLOC, 0, dynstr_data),
        _OutputSection(".rel.dyn", SHT_REL, SHF_ALLOC, 0, rel_data, ".dynsym", align=8,
                       entsize=REL_SIZE),
        _OutputSection(".symtab", SHT_SYMTAB, 0, 0, symtab_data, ".strtab", info=first_global,
                       align=8, entsize=SYM_SIZE),
        _OutputSection(".strtab", SHT_STRTAB, 0, 0, strtab_data),
        _OutputSection(".shstrtab", SHT_STRTAB, 0, 0, bytes(shstrtab.data)),
    ):  # fmt: skip
        sections.append(replace(section, offset=_align(sections[-1].end, section.align)))
    assert tuple(s.name for s in sections) == SECTION_ORDER
    text, rodata, dynamic, dynsym, dynstr, rel_dyn, *_ = sections
    sections[2] = dynamic = replace(dynamic, data=_dynamic_table(dynsym, dynstr, rel_dyn))

    section_headers = _align(sections[-1].end, 8)
    out = bytearray(section_headers)
    headers = [bytes(SHDR_SIZE)]
    for section in sections:
        out[section.offset : section.end] = section.data
        headers.append(section.header(shstrtab.add(section.name)))
    out += b"".join(headers)
    out[EHDR_SIZE : EHDR_SIZE + segment_count * PHDR_SIZE] = b"".join(
        (
            _segment(PT_LOAD, PF_R | PF_X, text.offset, rodata.end, 0x1000),
            _segment(PT_LOAD, PF_R, dynamic.offset, rel_dyn.end, 0x1000),
            _segment(PT_DYNAMIC, PF_R | PF_W, dynamic.offset, dynamic.end, 8),
        )
    )
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELF64, LSB, version 1, OSABI none
    layout = (EHDR_SIZE, section_headers, 0, EHDR_SIZE, PHDR_SIZE, segment_count, SHDR_SIZE)
    out[:EHDR_SIZE] = _EHDR.pack(
        ident, ET_DYN, EM_BPF, 1, entry_address, *layout, len(headers), len(headers) - 1
    )
    return bytes(out)


def has_allocated_content(sections: Iterable[Section]) -> bool:
    """Whether an object carries code or data (rustc's symbols.o carries neither)."""
    return any(s.is_alloc and s.size for s in sections)
