"""Helpers for the sbf-link tests: fixtures paths, an independent ELF reader, LiteSVM.

The tests link small IR programs with the real pipeline and read the ELF that comes out
with the parser here.  That parser is independent of ``sbf_link.elf``, so the writer is
checked against the loader rules rather than against itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TOOLS = Path(__file__).resolve().parents[2] / "tools"
IR_HEADER = (
    'target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"\ntarget triple = "bpfel"\n'
)

LinkIR = Callable[..., Path]
"""The ``link_ir`` fixture: ``link_ir(fixture_path_or_ir_text, exports=(), name=...)``."""


@dataclass(frozen=True)
class SectionInfo:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


@dataclass(frozen=True)
class SymbolInfo:
    name: str
    info: int
    shndx: int
    value: int


@dataclass(frozen=True)
class Insn:
    address: int
    opcode: int
    dst: int
    src: int
    imm: int


@dataclass(frozen=True)
class SharedObject:
    data: bytes
    e_type: int
    e_machine: int
    e_flags: int
    e_entry: int
    sections: list[SectionInfo]

    def section(self, name: str) -> SectionInfo:
        return next(s for s in self.sections if s.name == name)

    def contents(self, name: str) -> bytes:
        s = self.section(name)
        return self.data[s.offset : s.offset + s.size]

    def _symbols(self, table: str, strings: str) -> list[SymbolInfo]:
        names = self.contents(strings)
        return [
            SymbolInfo(names[n : names.index(b"\0", n)].decode(), info, shndx, value)
            for n, info, _, shndx, value, _ in struct.iter_unpack("<IBBHQQ", self.contents(table))
        ]

    def dynsym(self) -> list[SymbolInfo]:
        return self._symbols(".dynsym", ".dynstr")

    def symtab(self) -> list[SymbolInfo]:
        return self._symbols(".symtab", ".strtab")

    def rel_dyn(self) -> dict[int, tuple[int, int]]:
        """offset -> (type, dynsym index)"""
        return {
            offset: (info & 0xFFFFFFFF, info >> 32)
            for offset, info in struct.iter_unpack("<QQ", self.contents(".rel.dyn"))
        }

    def instructions(self) -> Iterator[Insn]:
        text = self.section(".text")
        code = self.contents(".text")
        at = 0
        while at < len(code):
            opcode, regs, _, imm = struct.unpack_from("<BBhi", code, at)
            yield Insn(text.addr + at, opcode, regs & 0xF, regs >> 4, imm)
            at += 16 if opcode == 0x18 else 8

    def u32(self, address: int) -> int:
        value: int = struct.unpack_from("<I", self.data, address)[0]
        return value


def read_shared_object(path: Path) -> SharedObject:
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert (data[4], data[5]) == (2, 1)  # ELF64, little-endian
    fields = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    e_type, e_machine, _, e_entry, _, e_shoff, e_flags, _, _, _, _, e_shnum, e_shstrndx = fields
    raw = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + 64 * i) for i in range(e_shnum)]
    names_off, names_size = raw[e_shstrndx][4], raw[e_shstrndx][5]
    names = data[names_off : names_off + names_size]
    sections = [
        SectionInfo(names[n : names.index(b"\0", n)].decode(), t, f, a, o, s, lk, inf)
        for n, t, f, a, o, s, lk, inf, _, _ in raw
    ]
    return SharedObject(data, e_type, e_machine, e_flags, e_entry, sections)


def run_in_litesvm(program: Path, data: bytes = b"") -> tuple[bool, list[str]]:
    """Load ``program`` into solders' LiteSVM (0.26 API), send one instruction: (ok, logs)."""
    from solders.instruction import Instruction
    from solders.keypair import Keypair
    from solders.litesvm import LiteSVM
    from solders.message import Message
    from solders.transaction import Transaction
    from solders.transaction_metadata import FailedTransactionMetadata

    svm = LiteSVM()
    program_id = Keypair().pubkey()
    svm.add_program_from_file(program_id, program)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 1_000_000_000)
    message = Message([Instruction(program_id, data, [])], payer.pubkey())
    result = svm.send_transaction(Transaction([payer], message, svm.latest_blockhash()))
    if isinstance(result, FailedTransactionMetadata):
        return False, result.meta().logs()
    return True, result.logs()
