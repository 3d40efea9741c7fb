"""IR rewrites: each site changed as intended, everything else untouched, output valid IR."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbf_link import ir
from sbf_link.ir_rewrite import MEM_INLINE_MAX, rewrite_module
from sbf_link.toolchain import Toolchain
from tests.link.support import FIXTURES, IR_HEADER, LinkIR, read_shared_object


def function(
    body: str, params: str = "ptr %d, ptr %s, i64 %n, i64 %a, i64 %b, i32 %x, i32 %y"
) -> str:
    return f"{IR_HEADER}define void @f({params}) {{\n{body}\n  ret void\n}}\n"


def body_lines(text: str) -> list[str]:
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("define"))
    end = lines.index("}", start)
    return lines[start + 1 : end - 1]


def assert_assembles(toolchain: Toolchain, tmp_path: Path, text: str) -> None:
    source = tmp_path / "rewritten.ll"
    source.write_text(text)
    toolchain.run("llvm-as", source, "-o", tmp_path / "rewritten.bc")


# ---- llvm.mem* --------------------------------------------------------------------------


def test_non_constant_memcpy_becomes_helper_keeping_attributes_and_dbg() -> None:
    text = function(
        "  tail call void @llvm.memcpy.p0.p0.i64(ptr noundef nonnull align 8 %d, "
        "ptr align 1 %s, i64 range(i64 0, 100) %n, i1 false), !dbg !7"
    )
    result = rewrite_module(text)
    assert body_lines(result.text) == [
        "  call void @__sbf_memcpy(ptr noundef nonnull align 8 %d, ptr align 1 %s, "
        "i64 range(i64 0, 100) %n), !dbg !7"
    ]
    assert result.counts == {"memcpy": 1}
    assert result.text.rstrip().endswith("declare void @__sbf_memcpy(ptr, ptr, i64)")


@pytest.mark.parametrize(
    ("size", "rewritten"), [(MEM_INLINE_MAX, False), (MEM_INLINE_MAX + 1, True)]
)
def test_constant_sizes_up_to_the_threshold_stay_inline(size: int, rewritten: bool) -> None:
    line = f"  call void @llvm.memset.p0.i64(ptr align 8 %d, i8 0, i64 {size}, i1 false)"
    result = rewrite_module(function(line))
    if rewritten:
        assert body_lines(result.text) == [
            f"  call void @__sbf_memset(ptr align 8 %d, i8 0, i64 {size})"
        ]
    else:
        assert body_lines(result.text) == [line]
        assert not result.changed


def test_memmove_and_volatile_memcpy_are_rewritten_inline_variant_is_not() -> None:
    body = (
        "  call void @llvm.memmove.p0.p0.i64(ptr %d, ptr %s, i64 %n, i1 false)\n"
        "  call void @llvm.memcpy.p0.p0.i64(ptr %d, ptr %s, i64 4096, i1 true)\n"
        "  call void @llvm.memcpy.inline.p0.p0.i64(ptr %d, ptr %s, i64 64, i1 false)"
    )
    result = rewrite_module(function(body))
    assert body_lines(result.text) == [
        "  call void @__sbf_memmove(ptr %d, ptr %s, i64 %n)",
        "  call void @__sbf_memcpy(ptr %d, ptr %s, i64 4096)",
        "  call void @llvm.memcpy.inline.p0.p0.i64(ptr %d, ptr %s, i64 64, i1 false)",
    ]


# ---- overflow-checked multiply -------------------------------------------------------


def test_mul_with_overflow_i64_calls_helpers_and_declarations_are_renamed() -> None:
    text = function(
        "  %u = tail call { i64, i1 } @llvm.umul.with.overflow.i64(i64 %a, i64 %b)\n"
        "  %s = call { i64, i1 } @llvm.smul.with.overflow.i64(i64 %a, i64 %b)\n"
        "  %w = call { i32, i1 } @llvm.umul.with.overflow.i32(i32 %x, i32 %y)"
    ) + (
        "declare { i64, i1 } @llvm.umul.with.overflow.i64(i64, i64) #0\n"
        "declare { i64, i1 } @llvm.smul.with.overflow.i64(i64, i64) #0\n"
        "declare { i32, i1 } @llvm.umul.with.overflow.i32(i32, i32) #0\n"
        "attributes #0 = { nounwind speculatable willreturn memory(none) }\n"
    )
    result = rewrite_module(text)
    assert body_lines(result.text) == [
        "  %u = tail call { i64, i1 } @__sbf_umulo64(i64 %a, i64 %b)",
        "  %s = call { i64, i1 } @__sbf_smulo64(i64 %a, i64 %b)",
        "  %w = call { i32, i1 } @llvm.umul.with.overflow.i32(i32 %x, i32 %y)",
    ]
    assert "declare { i64, i1 } @__sbf_umulo64(i64, i64) #0" in result.text
    assert "declare { i64, i1 } @__sbf_smulo64(i64, i64) #0" in result.text
    assert "@llvm.umul.with.overflow.i64" not in result.text
    assert result.counts == {"umulo64": 1, "smulo64": 1}


# ---- signed division -------------------------------------------------------------------


def test_sdiv_srem_i64_call_helpers() -> None:
    result = rewrite_module(
        function("  %q = sdiv exact i64 %a, %b, !dbg !3\n  %r = srem i64 -17, %b")
    )
    assert body_lines(result.text) == [
        "  %q = call i64 @__sbf_sdiv64(i64 %a, i64 %b), !dbg !3",
        "  %r = call i64 @__sbf_srem64(i64 -17, i64 %b)",
    ]
    assert result.counts == {"sdiv": 1, "srem": 1}


def test_narrow_sdiv_is_widened_with_fresh_names() -> None:
    result = rewrite_module(function("  %q = sdiv i32 %x, %y\n  %sbf.rw.1 = add i32 %x, 1"))
    lines = body_lines(result.text)
    assert lines[:4] == [
        "  %sbf.rw_.1 = sext i32 %x to i64",
        "  %sbf.rw_.2 = sext i32 %y to i64",
        "  %sbf.rw_.3 = call i64 @__sbf_sdiv64(i64 %sbf.rw_.1, i64 %sbf.rw_.2)",
        "  %q = trunc i64 %sbf.rw_.3 to i32",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "  %q = sdiv i64 %a, 8",
        "  %q = sdiv i64 %a, -4",
        "  %q = srem i64 %a, 1",
        "  %q = sdiv i128 %w, %w",
        "  %q = sdiv <2 x i64> %v, %v",
        "  %q = udiv i64 %a, %b",
    ],
)
def test_division_llc_handles_or_the_limit_check_reports_is_left_alone(line: str) -> None:
    params = "i64 %a, i64 %b, i128 %w, <2 x i64> %v"
    result = rewrite_module(function(line, params))
    assert body_lines(result.text) == [line]
    assert not result.changed


# ---- sret --------------------------------------------------------------------------------


def test_sret_is_dropped_from_definitions_declarations_and_calls() -> None:
    text = (
        IR_HEADER
        + 'define void @f(ptr noalias sret(%"core::result::Result<(), x>") align 8 %out) {\n'
        "  call void @g(ptr sret({ i64, [2 x i32] }) %out)\n"
        "  ret void\n}\n"
        "declare void @g(ptr sret({ i64, [2 x i32] }))\n"
    )
    result = rewrite_module(text)
    assert "sret" not in result.text
    assert "define void @f(ptr noalias align 8 %out) {" in result.text
    assert "  call void @g(ptr %out)" in result.text
    assert "declare void @g(ptr)" in result.text
    assert result.counts == {"sret": 3}


def test_names_containing_sret_are_untouched() -> None:
    text = IR_HEADER + 'define void @"has sret(x)"(ptr %p) {\n  ret void\n}\n'
    assert rewrite_module(text).text == text


# ---- the rewritten module is valid IR and links -------------------------------------------


def test_rewritten_module_assembles(toolchain: Toolchain, tmp_path: Path) -> None:
    text = (
        function(
            "  call void @llvm.memcpy.p0.p0.i64(ptr %d, ptr %s, i64 %n, i1 false)\n"
            "  %q = sdiv i32 %x, %y\n"
            "  %r = srem i64 %a, %b\n"
            "  %u = call { i64, i1 } @llvm.umul.with.overflow.i64(i64 %a, i64 %b)"
        )
        + "declare { i64, i1 } @llvm.umul.with.overflow.i64(i64, i64)\n"
    )
    result = rewrite_module(text)
    assert result.counts == {"memcpy": 1, "sdiv": 1, "srem": 1, "umulo64": 1}
    assert_assembles(toolchain, tmp_path, result.text)


def test_rewritten_program_links_with_memory_syscalls(link_ir: LinkIR) -> None:
    """llc (-mcpu=v2) accepts the rewritten sdiv/srem/mul-overflow; mem* use syscalls."""
    so = read_shared_object(link_ir(FIXTURES / "arith_program.ll"))
    syscalls = {s.name for s in so.dynsym()} - {"", "entrypoint"}
    assert syscalls == {"sol_log_64_", "sol_memcpy_", "sol_memmove_", "sol_memset_"}


def test_entry_block_allocas_stay_static_after_helpers_are_inlined(link_ir: LinkIR) -> None:
    """A helper with branches would split the entry block and make this alloca dynamic."""
    link_ir(
        """declare void @sol_log_(ptr, i64)
define i64 @entrypoint(ptr %input) {
  %a = load i64, ptr %input, align 8
  %m = call { i64, i1 } @llvm.umul.with.overflow.i64(i64 %a, i64 %a)
  %v = extractvalue { i64, i1 } %m, 0
  %buf = alloca [64 x i8], align 8
  call void @llvm.memcpy.p0.p0.i64(ptr %buf, ptr %input, i64 %v, i1 false)
  call void @sol_log_(ptr %buf, i64 %v)
  ret i64 0
}
declare { i64, i1 } @llvm.umul.with.overflow.i64(i64, i64)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""
    )


# ---- the textual IR helpers the rewrites rely on --------------------------------------


def test_split_top_level_respects_brackets_and_strings() -> None:
    assert ir.split_top_level('i64 range(i64 0, 5) %a, { i64, i1 } %b, ptr @"x,y"') == [
        "i64 range(i64 0, 5) %a",
        "{ i64, i1 } %b",
        'ptr @"x,y"',
    ]
    assert ir.split_top_level("") == []


@pytest.mark.parametrize(
    ("ty", "registers"),
    [("i64", 1), ("ptr", 1), ("i1", 1), ("i128", 2), ("[2 x i64]", 2), ("{ i64, i64 }", 2),
     ("[3 x i64]", 3), ("<{ i64, i8 }>", 2), ('%"opaque"', 1)],
)  # fmt: skip
def test_register_count(ty: str, registers: int) -> None:
    assert ir.register_count(ty) == registers


def test_parse_call_forms() -> None:
    direct = ir.parse_call('  %r = tail call noundef range(i64 0, 2) i64 @"a.b"(ptr %p, i64 1) #4')
    assert direct is not None
    assert (direct.callee, direct.return_type, direct.args) == ("a.b", "i64", ("ptr %p", "i64 1"))
    variadic = ir.parse_call("  call i32 (ptr, ...) @printf(ptr %fmt, i64 %x)")
    assert variadic is not None
    assert (variadic.callee, variadic.return_type) == ("printf", "i32")
    indirect = ir.parse_call("  %v = call { i64, i1 } %fp(i64 %a)")
    assert indirect is not None
    assert (indirect.callee, indirect.return_type) == (None, "{ i64, i1 }")
    assert ir.parse_call('  call void asm sideeffect "", ""()') is None
    assert ir.parse_call("  %call = add i64 %a, %b") is None


def test_parse_function_header() -> None:
    header = ir.parse_function_header(
        "define internal fastcc { i64, i1 } @_RNvCs1_1a1f(ptr noalias sret([8 x i8]) %0, "
        "i128 %1, ...) unnamed_addr #0 {"
    )
    assert header is not None
    assert header.name == "_RNvCs1_1a1f"
    assert header.return_type == "{ i64, i1 }"
    assert header.param_types == ["ptr", "i128"]
    assert header.variadic
    assert header.is_definition
