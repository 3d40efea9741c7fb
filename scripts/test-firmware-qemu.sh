#!/usr/bin/env bash
# Builds the meter core's checks for RV32IMC (firmware/qemu, Debian's toolchain as in
# scripts/build-firmware.sh) and runs them under qemu-system-riscv32 -M virt with semihosting.
# Fails when a check fails (the image exits nonzero). Extra arguments go to QEMU
# (bench/firmware.py passes -icount shift=0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

command -v riscv64-unknown-elf-ld >/dev/null || die "binutils-riscv64-unknown-elf missing: run scripts/bootstrap.sh"
command -v qemu-system-riscv32 >/dev/null || die "qemu-system-misc missing: run scripts/bootstrap.sh"

step "firmware: the core's checks on RV32IMC under qemu-system-riscv32"
(cd firmware/qemu && RUSTC_BOOTSTRAP=1 "$DEBIAN_CARGO" build -q --release --locked)
qemu-system-riscv32 -M virt -bios none -nographic -semihosting "$@" \
  -kernel firmware/qemu/target/riscv32imc-unknown-none-elf/release/nishati-meter-qemu
