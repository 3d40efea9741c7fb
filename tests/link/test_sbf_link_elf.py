"""The SBPF v0 shared object sbf-link writes, checked against the loader's rules."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sbf_link import cli
from sbf_link.errors import LinkError
from sbf_link.toolchain import Toolchain
from tests.link.support import (
    FIXTURES,
    TOOLS,
    LinkIR,
    SharedObject,
    read_shared_object,
    run_in_litesvm,
)

ET_DYN, EM_BPF = 3, 247
R_BPF_64_RELATIVE, R_BPF_64_32 = 8, 10
OP_LDDW, OP_CALL, OP_CALLX = 0x18, 0x85, 0x8D
SECTION_ORDER = [
    "",
    ".text",
    ".rodata",
    ".dynamic",
    ".dynsym",
    ".dynstr",
    ".rel.dyn",
    ".symtab",
    ".strtab",
    ".shstrtab",
]


@pytest.fixture
def log_program(link_ir: LinkIR) -> SharedObject:
    return read_shared_object(link_ir(FIXTURES / "log_program.ll"))


def test_header_and_section_layout(log_program: SharedObject) -> None:
    so = log_program
    assert (so.e_type, so.e_machine, so.e_flags) == (ET_DYN, EM_BPF, 0)
    assert [s.name for s in so.sections] == SECTION_ORDER
    previous_end = 0
    for section in so.sections[1:]:
        if section.flags & 0x2:  # SHF_ALLOC: mapped at MM_PROGRAM_START + file offset
            assert section.addr == section.offset, section.name
        else:
            assert section.addr == 0, section.name
        assert section.offset >= previous_end, f"{section.name} overlaps its predecessor"
        previous_end = section.offset + section.size
    assert so.section(".text").flags == 0x6  # ALLOC | EXECINSTR
    assert so.section(".rodata").flags == 0x2  # read-only


def test_entry_is_the_entrypoint_symbol(log_program: SharedObject) -> None:
    entry = next(s for s in log_program.dynsym() if s.name == "entrypoint")
    text = log_program.section(".text")
    assert log_program.e_entry == entry.value
    assert text.addr <= entry.value < text.addr + text.size


def test_syscalls_are_dynamic_relocations_with_imm_minus_one(log_program: SharedObject) -> None:
    dynsym = log_program.dynsym()
    assert {"sol_log_", "sol_log_64_"} <= {s.name for s in dynsym}
    relocations = log_program.rel_dyn()
    syscall_sites = [i for i in log_program.instructions() if i.opcode == OP_CALL and i.imm == -1]
    assert len(syscall_sites) == 2
    for site in syscall_sites:
        kind, symbol = relocations[site.address]
        assert kind == R_BPF_64_32
        assert dynsym[symbol].name in {"sol_log_", "sol_log_64_"}
        assert site.src == 0
    typed_32 = [offset for offset, (kind, _) in relocations.items() if kind == R_BPF_64_32]
    assert sorted(typed_32) == sorted(s.address for s in syscall_sites)


def test_lddw_holds_the_absolute_address_and_a_relative_relocation(
    log_program: SharedObject,
) -> None:
    relocations = log_program.rel_dyn()
    rodata = log_program.section(".rodata")
    lddws = [i for i in log_program.instructions() if i.opcode == OP_LDDW]
    assert len(lddws) == 2  # the message and the handler table
    for lddw in lddws:
        assert relocations[lddw.address] == (R_BPF_64_RELATIVE, 0)
        high = log_program.u32(lddw.address + 12)
        address = (high << 32) | (lddw.imm & 0xFFFFFFFF)
        assert rodata.addr <= address < rodata.addr + rodata.size
    message = log_program.data.find(b"hello from sbf-link")
    assert message in {(lddw.imm & 0xFFFFFFFF) for lddw in lddws}


def test_data_pointers_sit_in_the_high_half_with_a_relative_relocation(
    log_program: SharedObject,
) -> None:
    rodata = log_program.section(".rodata")
    text = log_program.section(".text")
    in_rodata = [o for o in log_program.rel_dyn() if rodata.addr <= o < rodata.addr + rodata.size]
    assert len(in_rodata) == 4  # the four handler table entries
    symtab = {s.value: s.name for s in log_program.symtab()}
    for offset in in_rodata:
        assert log_program.rel_dyn()[offset] == (R_BPF_64_RELATIVE, 0)
        low, high = struct.unpack_from("<II", log_program.data, offset)
        assert low == 0
        assert text.addr <= high < text.addr + text.size
        assert symtab[high] in {"double", "triple"}


def test_callx_register_moves_to_imm(log_program: SharedObject) -> None:
    (callx,) = [i for i in log_program.instructions() if i.opcode == OP_CALLX]
    assert (callx.dst, callx.src) == (0, 0)
    assert 0 <= callx.imm <= 9


def test_internal_calls_are_pc_relative(log_program: SharedObject) -> None:
    starts = {s.value for s in log_program.symtab()}
    helper_calls = [i for i in log_program.instructions() if i.opcode == OP_CALL and i.imm != -1]
    assert helper_calls
    targets = {call.address + 8 + call.imm * 8 for call in helper_calls}
    # Every target starts a function; the long-named helper has no .symtab entry.
    assert len(targets - starts) == 1
    text = log_program.section(".text")
    assert all(text.addr <= t < text.addr + text.size for t in targets)


def test_symtab_keeps_only_names_below_64_bytes(log_program: SharedObject) -> None:
    names = [s.name for s in log_program.symtab() if s.name]
    assert {"entrypoint", "double", "triple"} <= set(names)
    assert all(len(name.encode()) < 64 for name in names)


def test_trap_becomes_the_abort_syscall(link_ir: LinkIR) -> None:
    so = read_shared_object(
        link_ir(
            """
define i64 @entrypoint(ptr %input) {
  %accounts = load i64, ptr %input, align 8
  %none = icmp eq i64 %accounts, 0
  br i1 %none, label %trap, label %ok
trap:
  call void @llvm.trap()
  unreachable
ok:
  ret i64 0
}
declare void @llvm.trap()
"""
        )
    )
    assert "abort" in {s.name for s in so.dynsym()}


def test_program_without_rodata(link_ir: LinkIR) -> None:
    so = read_shared_object(link_ir("define i64 @entrypoint(ptr %input) {\n  ret i64 0\n}\n"))
    assert so.section(".rodata").size == 0
    assert so.section(".rel.dyn").size == 0


def test_writable_statics_are_refused_by_name(link_ir: LinkIR) -> None:
    with pytest.raises(LinkError, match=r"writable data in \.(bss|data).*`counter`"):
        link_ir(
            """
@counter = internal global i64 0, align 8
define i64 @entrypoint(ptr %input) {
  %old = load i64, ptr @counter, align 8
  %new = add i64 %old, 1
  store i64 %new, ptr @counter, align 8
  ret i64 %new
}
"""
        )


def test_calls_to_unknown_symbols_are_refused(link_ir: LinkIR) -> None:
    with pytest.raises(
        LinkError, match=r"undefined symbols `mystery_function`.*not Solana syscalls"
    ):
        link_ir(
            """
declare void @mystery_function(i64)
define i64 @entrypoint(ptr %input) {
  call void @mystery_function(i64 1)
  ret i64 0
}
"""
        )


def test_missing_entrypoint_is_refused(link_ir: LinkIR) -> None:
    with pytest.raises(LinkError, match="no `entrypoint` function"):
        link_ir("define i64 @main(ptr %input) {\n  ret i64 0\n}\n", exports=["main"])


def test_cli_parses_rustc_arguments(tmp_path: Path) -> None:
    exports = tmp_path / "symbols"
    exports.write_text("entrypoint\ncustom_export\n")
    response = tmp_path / "args"
    response.write_text("b\\ c.rlib\n-O3\n--debug\n")
    job = cli.parse_args(
        ["--export-symbols", str(exports), "symbols.o", "a.rcgu.o", f"@{response}",
         "-L", "raw-dylibs", "--cpu", "generic", "--cpu-features", "+alu32", "-o", "lib.so"]
    )  # fmt: skip
    assert job.inputs == (Path("symbols.o"), Path("a.rcgu.o"), Path("b c.rlib"))
    assert job.output == Path("lib.so")
    assert job.exports == ("entrypoint", "custom_export")
    assert job.opt_level == "3"


def test_cli_links_rlibs_and_skips_rustc_symbols_object(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    """The script as rustc runs it: bitcode object, rlib with rmeta, an empty symbols.o."""
    helper = tmp_path / "helper.ll"
    helper.write_text(
        'target triple = "bpfel"\n'
        "declare void @sol_log_(ptr, i64)\n"
        '@hi = private constant [2 x i8] c"hi"\n'
        "define void @helper_log() {\n  call void @sol_log_(ptr @hi, i64 2)\n  ret void\n}\n"
    )
    main = tmp_path / "main.ll"
    main.write_text(
        'target triple = "bpfel"\n'
        "declare void @helper_log()\n"
        "define i64 @entrypoint(ptr %input) {\n  call void @helper_log()\n  ret i64 0\n}\n"
    )
    toolchain.run("llvm-as", helper, "-o", tmp_path / "dep.dep.rcgu.o")
    toolchain.run("llvm-as", main, "-o", tmp_path / "main.main.rcgu.o")
    (tmp_path / "lib.rmeta").write_bytes(b"rust metadata, not bitcode")
    rlib = tmp_path / "libdep.rlib"
    toolchain.run("llvm-ar", "rc", rlib, tmp_path / "lib.rmeta", tmp_path / "dep.dep.rcgu.o")
    empty = tmp_path / "empty.ll"
    empty.write_text('target triple = "bpfel"\n')
    symbols_o = tmp_path / "symbols.o"
    toolchain.run("llc", "-march=bpfel", "-filetype=obj", empty, "-o", symbols_o)
    exports = tmp_path / "symbols"
    exports.write_text("entrypoint\n")
    output = tmp_path / "libmain.so"
    argv = [
        str(TOOLS / "sbf-link"), "--export-symbols", str(exports), str(symbols_o),
        str(tmp_path / "main.main.rcgu.o"), str(rlib), "-L", str(tmp_path),
        "--cpu", "generic", "-o", str(output), "-O3", "--debug",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "sol_log_" in {s.name for s in read_shared_object(output).dynsym()}


def test_cli_rejects_unknown_options(tmp_path: Path) -> None:
    argv = [sys.executable, str(TOOLS / "sbf-link"), "--frobnicate", "-o", str(tmp_path / "x")]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "--frobnicate" in result.stderr


def test_litesvm_runs_the_log_program(link_ir: LinkIR) -> None:
    pytest.importorskip("solders")
    ok, logs = run_in_litesvm(link_ir(FIXTURES / "log_program.ll"))
    assert ok, logs
    assert "Program log: hello from sbf-link" in logs
    assert "Program log: 0x2a, 0x54, 0x0, 0x0, 0x0" in logs


def _truncating_division(a: int, b: int) -> tuple[int, int]:
    quotient = abs(a) // abs(b) * (-1 if (a < 0) != (b < 0) else 1)
    return quotient, a - quotient * b


def _i32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _expected_arith_logs(a: int, b: int, padding: bytes) -> list[str]:
    mask = (1 << 64) - 1

    def log(*values: int) -> str:
        return "Program log: " + ", ".join(hex(v & mask) for v in values)

    q, r = _truncating_division(a, b)
    q32, r32 = _truncating_division(_i32(a), _i32(b))
    unsigned = (a & mask) * (b & mask)
    signed = a * b
    data = struct.pack("<qq", a, b) + padding
    buf = bytearray(b"\xab" * (len(data) + 8))
    buf[: len(data)] = data
    buf[1 : 1 + len(data)] = buf[: len(data)]

    def word(at: int) -> int:
        value: int = struct.unpack_from("<Q", buf, at)[0]
        return value

    return [
        log(q, r, q32, r32, 0),
        log(unsigned, unsigned > mask, signed, not -(1 << 63) <= signed < 1 << 63, 1),
        log(word(0), word(8), word(16), word(len(data)), 2),
    ]


@pytest.mark.parametrize(
    ("a", "b", "padding"),
    [
        (-7, 2, b""),
        (7, -2, b"xyz"),
        (-7, -3, b"0123456789"),
        (2**32 + 3, 2**32 + 5, b""),
        (-(2**62), 2, b"!"),
        (2**62, 2, b""),
        (-(2**63), -1 << 32 | 7, b"pad"),
    ],
)
def test_litesvm_rewritten_arithmetic_and_memory_match_python(
    link_ir: LinkIR, a: int, b: int, padding: bytes
) -> None:
    pytest.importorskip("solders")
    ok, logs = run_in_litesvm(
        link_ir(FIXTURES / "arith_program.ll"), struct.pack("<qq", a, b) + padding
    )
    assert ok, logs
    assert [line for line in logs if line.startswith("Program log:")] == _expected_arith_logs(
        a, b, padding
    )
