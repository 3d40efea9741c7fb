"""LLVM 22 BPF limit detection: the message names the function and the rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sbf_link import limits
from sbf_link.errors import LinkError
from sbf_link.limits import Rule
from sbf_link.toolchain import Toolchain
from tests.link.support import FIXTURES, IR_HEADER, TOOLS, LinkIR


def rules(ir: str) -> set[tuple[str, Rule]]:
    return {(v.function, v.rule) for v in limits.check_module(IR_HEADER + ir)}


# ---- whole links: the paragraph names the demangled function and the rule ------------


@pytest.mark.parametrize(
    ("fixture", "function", "rule", "detail"),
    [
        ("too_many_arguments.ll", "market::compute", "too-many-arguments", "6 argument registers"),
        ("floating_point.ll", "market::price", "floating-point", "fmul double"),
        ("wide_integer.ll", "market::scale", "128-bit-integer", "mul i128"),
        ("big_stack.ll", "market::buffer", "stack-frame", "4096"),
    ],
)
def test_link_stops_with_function_and_rule(
    link_ir: LinkIR, fixture: str, function: str, rule: str, detail: str
) -> None:
    with pytest.raises(LinkError) as caught:
        link_ir(FIXTURES / fixture)
    message = str(caught.value)
    assert f"function `{function}` (symbol _RNvCs1234_6market" in message
    assert f"[{rule}]" in message
    assert detail in message


def test_cli_exits_non_zero_with_the_paragraph(toolchain: Toolchain, tmp_path: Path) -> None:
    bitcode = tmp_path / "float.bc"
    toolchain.run("llvm-as", FIXTURES / "floating_point.ll", "-o", bitcode)
    argv = [sys.executable, str(TOOLS / "sbf-link"), str(bitcode), "-o", str(tmp_path / "x.so")]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("sbf-link: error: function `market::price`")
    assert "[floating-point]" in result.stderr
    assert not (tmp_path / "x.so").exists()


# ---- argument registers ---------------------------------------------------------------


def test_five_registers_pass_six_fail() -> None:
    five = "define i64 @f(ptr %a, i64 %b, i64 %c, i64 %d, i64 %e) {\n  ret i64 %e\n}\n"
    six = "define i64 @g(ptr %a, i64 %b, i64 %c, i64 %d, i64 %e, i64 %f) {\n  ret i64 %f\n}\n"
    assert rules(five) == set()
    assert rules(six) == {("g", Rule.TOO_MANY_ARGUMENTS)}


@pytest.mark.parametrize(
    "params",
    [
        "ptr sret([16 x i8]) align 8 %r, i64 %a, i64 %b, i64 %c, i64 %d, i64 %e",
        "i128 %a, i64 %b, i64 %c, i64 %d, i64 %e",
        "[2 x i64] %a, i64 %b, i64 %c, i64 %d, i64 %e",
        "{ i64, i64 } %a, ptr %b, i64 %c, i64 %d, i64 %e",
    ],
)
def test_sret_and_two_register_values_count(params: str) -> None:
    ir = f"define void @f({params}) {{\n  ret void\n}}\n"
    assert ("f", Rule.TOO_MANY_ARGUMENTS) in rules(ir)


def test_calls_to_external_and_indirect_targets_count() -> None:
    ir = """declare i64 @ext(i64, i64, i64, i64, i64, i64)
define i64 @f(ptr %fp, i64 %x) {
  %a = call i64 @ext(i64 %x, i64 %x, i64 %x, i64 %x, i64 %x, i64 %x)
  %b = call i64 %fp(i64 %x, i64 %x, i64 %x, i64 %x, i64 %x, i64 %x)
  ret i64 %b
}
"""
    details = [v.detail for v in limits.check_module(IR_HEADER + ir)]
    assert details == [
        "calls ext with 6 argument registers",
        "makes an indirect call with 6 argument registers",
    ]


# ---- floating point -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "%r = fadd fast double %a, %a",
        "%r = fcmp olt double %a, %a",
        "%r = fptoui double %a to i64",
        "%r = call double @llvm.sqrt.f64(double %a)",
        "%r = call i64 @llvm.fptoui.sat.i64.f64(double %a)",
        "%r = call double @__muldf3(double %a, double %a)",
    ],
)
def test_float_arithmetic_is_flagged(body: str) -> None:
    ir = f"define void @f(double %a) {{\n  {body}\n  ret void\n}}\n"
    assert rules(ir) == {("f", Rule.FLOATING_POINT)}


@pytest.mark.parametrize(
    "body",
    [
        "%r = bitcast double %a to i64",
        "%r = fneg double %a",
        "%r = call double @llvm.fabs.f64(double %a)",
        "%r = call double @llvm.copysign.f64(double %a, double %a)",
        "store double %a, ptr %p, align 8",
    ],
)
def test_float_operations_llc_can_lower_pass(body: str) -> None:
    assert rules(f"define void @f(double %a, ptr %p) {{\n  {body}\n  ret void\n}}\n") == set()


# ---- 128-bit integers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "%r = mul nuw i128 %a, %b",
        "%r = udiv i128 %a, 10",
        "%r = srem i128 %a, %b",
        "%r = shl i128 %a, %b",
        "%r = call { i128, i1 } @llvm.umul.with.overflow.i128(i128 %a, i128 %b)",
        "%r = call i128 @__udivti3(i128 %a, i128 %b)",
    ],
)
def test_wide_integer_arithmetic_is_flagged(body: str) -> None:
    ir = f"define void @f(i128 %a, i128 %b) {{\n  {body}\n  ret void\n}}\n"
    assert rules(ir) == {("f", Rule.WIDE_INTEGER)}


@pytest.mark.parametrize(
    "body",
    [
        "%r = add i128 %a, %b",
        "%r = icmp ult i128 %a, %b",
        "%r = lshr i128 %a, 64",
        "%r = mul i128 %a, 8",
        "%r = udiv i128 %a, 16",
        "%r = call { i128, i1 } @llvm.uadd.with.overflow.i128(i128 %a, i128 %b)",
    ],
)
def test_wide_integer_operations_llc_can_lower_pass(body: str) -> None:
    assert rules(f"define void @f(i128 %a, i128 %b) {{\n  {body}\n  ret void\n}}\n") == set()


def test_wide_and_aggregate_returns_are_flagged() -> None:
    ir = """define i128 @wide(ptr %p) {
  %v = load i128, ptr %p, align 16
  ret i128 %v
}
define { i64, i64 } @pair(i64 %a) {
  %r = insertvalue { i64, i64 } poison, i64 %a, 0
  ret { i64, i64 } %r
}
"""
    assert rules(ir) == {("wide", Rule.WIDE_INTEGER), ("pair", Rule.AGGREGATE_RETURN)}


# ---- llc's own diagnostics ------------------------------------------------------------


def test_llc_diagnostics_are_translated() -> None:
    prefix = "error: <unknown>:0:0: in function"
    libcall = "A call to built-in function '{}' is not supported."
    stderr = "\n".join(
        [
            f"{prefix} f i64 (i64): 0x55c8: i64 = GlobalAddress<ptr @g> 0 too many arguments",
            f"{prefix} h double (double): {libcall.format('__adddf3')}",
            f"{prefix} k void (ptr, i128): {libcall.format('__multi3')}",
            f"{prefix} s i64 (i64, i64): unsupported signed division, please convert to unsigned.",
        ]
    )
    violations = limits.translate_llc_errors(stderr)
    assert violations is not None
    assert [(v.function, v.rule) for v in violations] == [
        ("f", Rule.TOO_MANY_ARGUMENTS),
        ("h", Rule.FLOATING_POINT),
        ("k", Rule.WIDE_INTEGER),
        ("s", Rule.SIGNED_DIVISION),
    ]
    assert violations[0].detail == "calls g with more than 5 argument registers"


def test_llc_crash_on_wide_return_is_translated() -> None:
    stderr = (
        "LLVM ERROR: unable to allocate function return #1\n"
        "2.\tRunning pass 'BPF DAG->DAG Pattern Instruction Selection' on function '@ret128'\n"
    )
    assert limits.translate_llc_errors(stderr) == [
        limits.Violation("ret128", Rule.WIDE_INTEGER, "returns a value wider than 64 bits")
    ]


def test_unknown_llc_errors_are_not_translated() -> None:
    assert limits.translate_llc_errors("error: something else entirely\n") is None


def test_format_names_function_rule_and_advice() -> None:
    violations = [
        limits.Violation("_RNvCs1234_6market7compute", Rule.FLOATING_POINT, "fmul double"),
        limits.Violation("_RNvCs1234_6market7compute", Rule.FLOATING_POINT, "fcmp double"),
    ]
    text = limits.format_violations(violations, lambda names: {n: "market::compute" for n in names})
    first = text.split("\n\n")[0]
    assert first.startswith(
        "function `market::compute` (symbol _RNvCs1234_6market7compute) breaks the BPF "
        "backend rule [floating-point]: it fmul double; fcmp double."
    )
    assert "SBPF has no floating point" in first
