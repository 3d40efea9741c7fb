; sbf-link's runtime shim, linked into every program by pipeline.py.
;
; 1. The C memory functions (memcpy, memmove, memset, memcmp, bcmp).  core calls memcmp
;    and bcmp directly (slice equality and ordering), and llc's MergeICmps/ExpandMemCmp
;    may add calls.  compiler_builtins does not define them for this target (it is
;    built without its "mem" feature).  They sit on the sol_mem*_ syscalls, which cost
;    far fewer CU than byte loops.  The pipeline internalises them like any other
;    function, so they are dropped when unused.
; 2. The __sbf_* helpers that ir_rewrite.py substitutes for IR that LLVM 22's BPF backend
;    cannot lower.  They are linkonce_odr + alwaysinline: inlined where used, discarded
;    otherwise.  Each is a single basic block.  Inlining a function with branches splits
;    the caller's block, and an alloca that followed the call in the entry block would
;    become a dynamic alloca, which llc rejects ("unsupported dynamic stack allocation").
;
; sol_memcpy_ fails with CopyOverlapping when source and destination overlap, and that
; includes the case where they are equal.  LLVM's memcpy explicitly allows equal
; pointers, so the copy helper passes a length of 0 in that case.

target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpfel"

declare void @sol_memcpy_(ptr, ptr, i64)
declare void @sol_memmove_(ptr, ptr, i64)
declare void @sol_memset_(ptr, i64, i64)
declare void @sol_memcmp_(ptr, ptr, i64, ptr)

; ---- C memory functions -------------------------------------------------------------

define ptr @memcpy(ptr %dst, ptr %src, i64 %n) nounwind {
  call void @__sbf_memcpy(ptr %dst, ptr %src, i64 %n)
  ret ptr %dst
}

define ptr @memmove(ptr %dst, ptr %src, i64 %n) nounwind {
  call void @sol_memmove_(ptr %dst, ptr %src, i64 %n)
  ret ptr %dst
}

define ptr @memset(ptr %dst, i32 %c, i64 %n) nounwind {
  %byte = trunc i32 %c to i8
  call void @__sbf_memset(ptr %dst, i8 %byte, i64 %n)
  ret ptr %dst
}

define i32 @memcmp(ptr %a, ptr %b, i64 %n) nounwind {
  %result = alloca i32, align 4
  store i32 0, ptr %result, align 4
  call void @sol_memcmp_(ptr %a, ptr %b, i64 %n, ptr %result)
  %r = load i32, ptr %result, align 4
  ret i32 %r
}

define i32 @bcmp(ptr %a, ptr %b, i64 %n) nounwind {
  %r = call i32 @memcmp(ptr %a, ptr %b, i64 %n)
  ret i32 %r
}

; ---- llvm.mem* with large or non-constant sizes ---------------------------------------

define linkonce_odr void @__sbf_memcpy(ptr %dst, ptr %src, i64 %n) alwaysinline nounwind {
  %same = icmp eq ptr %dst, %src
  %len = select i1 %same, i64 0, i64 %n
  call void @sol_memcpy_(ptr %dst, ptr %src, i64 %len)
  ret void
}

define linkonce_odr void @__sbf_memmove(ptr %dst, ptr %src, i64 %n) alwaysinline nounwind {
  call void @sol_memmove_(ptr %dst, ptr %src, i64 %n)
  ret void
}

define linkonce_odr void @__sbf_memset(ptr %dst, i8 %c, i64 %n) alwaysinline nounwind {
  %c64 = zext i8 %c to i64
  call void @sol_memset_(ptr %dst, i64 %c64, i64 %n)
  ret void
}

; ---- 64-bit overflow-checked multiply without a 128-bit product -----------------------

; overflow <=> a != 0 && (a * b) / a != b  (dividing by 1 when a == 0, to stay branch-free)
define linkonce_odr { i64, i1 } @__sbf_umulo64(i64 %a, i64 %b) alwaysinline nounwind {
  %product = mul i64 %a, %b
  %a_zero = icmp eq i64 %a, 0
  %divisor = select i1 %a_zero, i64 1, i64 %a
  %quotient = udiv i64 %product, %divisor
  %lost = icmp ne i64 %quotient, %b
  %overflow = select i1 %a_zero, i1 false, i1 %lost
  %r0 = insertvalue { i64, i1 } poison, i64 %product, 0
  %r1 = insertvalue { i64, i1 } %r0, i1 %overflow, 1
  ret { i64, i1 } %r1
}

; |a| * |b| must not overflow u64 and must fit i64: at most 2^63 - 1, or 2^63 when the
; result is negative.  The wrapped product is the same bits as the unsigned one.
define linkonce_odr { i64, i1 } @__sbf_smulo64(i64 %a, i64 %b) alwaysinline nounwind {
  %a_neg = icmp slt i64 %a, 0
  %b_neg = icmp slt i64 %b, 0
  %a_minus = sub i64 0, %a
  %b_minus = sub i64 0, %b
  %a_abs = select i1 %a_neg, i64 %a_minus, i64 %a
  %b_abs = select i1 %b_neg, i64 %b_minus, i64 %b
  %unsigned = call { i64, i1 } @__sbf_umulo64(i64 %a_abs, i64 %b_abs)
  %magnitude = extractvalue { i64, i1 } %unsigned, 0
  %wrapped = extractvalue { i64, i1 } %unsigned, 1
  %negative = xor i1 %a_neg, %b_neg
  %limit = select i1 %negative, i64 -9223372036854775808, i64 9223372036854775807
  %too_big = icmp ugt i64 %magnitude, %limit
  %overflow = or i1 %wrapped, %too_big
  %product = mul i64 %a, %b
  %r0 = insertvalue { i64, i1 } poison, i64 %product, 0
  %r1 = insertvalue { i64, i1 } %r0, i1 %overflow, 1
  ret { i64, i1 } %r1
}

; ---- signed division through unsigned division ---------------------------------------

; The quotient truncates toward zero: |a| / |b|, negated when the signs differ.
define linkonce_odr i64 @__sbf_sdiv64(i64 %a, i64 %b) alwaysinline nounwind {
  %a_neg = icmp slt i64 %a, 0
  %b_neg = icmp slt i64 %b, 0
  %a_minus = sub i64 0, %a
  %b_minus = sub i64 0, %b
  %a_abs = select i1 %a_neg, i64 %a_minus, i64 %a
  %b_abs = select i1 %b_neg, i64 %b_minus, i64 %b
  %q = udiv i64 %a_abs, %b_abs
  %negative = xor i1 %a_neg, %b_neg
  %q_minus = sub i64 0, %q
  %r = select i1 %negative, i64 %q_minus, i64 %q
  ret i64 %r
}

; The remainder takes the sign of the dividend: |a| % |b|, negated when a < 0.
define linkonce_odr i64 @__sbf_srem64(i64 %a, i64 %b) alwaysinline nounwind {
  %a_neg = icmp slt i64 %a, 0
  %b_neg = icmp slt i64 %b, 0
  %a_minus = sub i64 0, %a
  %b_minus = sub i64 0, %b
  %a_abs = select i1 %a_neg, i64 %a_minus, i64 %a
  %b_abs = select i1 %b_neg, i64 %b_minus, i64 %b
  %m = urem i64 %a_abs, %b_abs
  %m_minus = sub i64 0, %m
  %r = select i1 %a_neg, i64 %m_minus, i64 %m
  ret i64 %r
}
