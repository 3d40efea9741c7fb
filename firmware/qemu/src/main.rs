//! The meter core's checks (`nishati_meter_core::checks::ALL`, the same functions the host's
//! `cargo test` runs) on RV32IMC under `qemu-system-riscv32 -M virt -bios none -semihosting`.
//! Prints each check's name and `ok`, or `FAILED` and the panic, and exits nonzero on the first
//! failure. Then prints the instructions retired per reading signature (meaningful with `-icount shift=0`; bench/firmware.py reads them).

#![no_std]
#![no_main]

use core::fmt::{self, Write};
use core::panic::PanicInfo;

use nishati_meter_core::checks::ALL;
use nishati_meter_core::signer::MeterKey;
use nishati_reading::Reading;

core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    ".option push",
    ".option norelax",
    "la gp, __global_pointer$",
    ".option pop",
    "la sp, _stack_top",
    "la t0, _sbss",
    "la t1, _ebss",
    "1: bgeu t0, t1, 2f",
    "sw zero, 0(t0)",
    "addi t0, t0, 4",
    "j 1b",
    "2: call main",
    "3: j 3b",
);

/// The semihosting operations used (ARM's semihosting specification, which RISC-V adopts).
const SYS_WRITEC: usize = 0x03;
const SYS_EXIT: usize = 0x18;
/// SYS_EXIT's reasons: QEMU exits 0 for the first and 1 for any other.
const ADP_STOPPED_APPLICATION_EXIT: usize = 0x20026;
const ADP_STOPPED_RUN_TIME_ERROR: usize = 0x20023;

/// A semihosting call: the `slli; ebreak; srai` sequence, uncompressed, that QEMU traps.
fn semihosting(op: usize, arg: usize) -> usize {
    let mut ret = op;
    // SAFETY: the sequence is the semihosting trap; QEMU reads only `arg`'s block.
    unsafe {
        core::arch::asm!(
            ".option push",
            ".option norvc",
            ".balign 16",
            "slli zero, zero, 0x1f",
            "ebreak",
            "srai zero, zero, 0x7",
            ".option pop",
            inout("a0") ret,
            in("a1") arg,
        );
    }
    ret
}

fn exit(success: bool) -> ! {
    let reason = if success { ADP_STOPPED_APPLICATION_EXIT } else { ADP_STOPPED_RUN_TIME_ERROR };
    semihosting(SYS_EXIT, reason);
    loop {}
}

/// The host's console.
struct Console;

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            semihosting(SYS_WRITEC, &byte as *const u8 as usize);
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let _ = writeln!(Console, "FAILED\n{info}");
    exit(false)
}

/// Instructions retired so far (the low word: a measured span is far below 2^32).
fn instret() -> u32 {
    let count: u32;
    // SAFETY: reads a counter CSR, which M-mode may always read.
    unsafe { core::arch::asm!("csrr {}, minstret", out(reg) count) };
    count
}

/// Signatures measured, to average out the loop.
const ROUNDS: u32 = 4;

fn bench() {
    let market = [7u8; 32];
    let key = MeterKey::from_seed(&[9u8; 32]);
    let reading =
        Reading { counter: 1, timestamp: 1_780_000_000, exported_wh: 5_678, imported_wh: 1_234 };
    let start = instret();
    for counter in 1..=ROUNDS {
        core::hint::black_box(key.sign_reading(&Reading { counter, ..reading }, &market));
    }
    let sign = instret().wrapping_sub(start) / ROUNDS;
    let _ = writeln!(Console, "bench: instructions per signature {sign}");
}

#[no_mangle]
extern "C" fn main() -> ! {
    for (name, check) in ALL {
        let _ = write!(Console, "{name} ... ");
        check();
        let _ = writeln!(Console, "ok");
    }
    let _ = writeln!(Console, "{} checks ok", ALL.len());
    bench();
    exit(true)
}
