#!/usr/bin/env bash
# Builds the meter's firmware for the ESP32-C3 and the ESP32-C6 with Debian's toolchain only:
# rustc-web with -Zbuild-std (core from rust-web-src), binutils' RISC-V linker, and esptool's
# elf2image for the flashable image. Prints each image's flash and RAM sizes.
# The images land in target/firmware/nishati-meter-<chip>.bin (flash at 0x10000 with
# firmware/esp/partitions.csv; see firmware/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

command -v riscv64-unknown-elf-ld >/dev/null || die "binutils-riscv64-unknown-elf missing: run scripts/bootstrap.sh"
[[ -x .venv/bin/esptool ]] || die "esptool missing from .venv: run scripts/bootstrap.sh"

out=target/firmware
mkdir -p "$out"
# chip:target (the C6 has the atomic extension, the C3 has not)
for pair in esp32c3:riscv32imc-unknown-none-elf esp32c6:riscv32imac-unknown-none-elf; do
  chip=${pair%%:*} triple=${pair#*:}
  step "firmware: $chip ($triple)"
  (
    cd firmware/esp
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/$chip "$DEBIAN_CARGO" build -q --release \
      --locked --features "$chip" --target "$triple"
  )
  elf=firmware/esp/target/$chip/$triple/release/nishati-meter-esp
  image=$out/nishati-meter-$chip.bin
  .venv/bin/esptool --chip "$chip" elf2image --flash-mode dio --flash-size 4MB \
    --output "$image" "$elf" >/dev/null
  # Static RAM: what the image loads into SRAM (.data, .rwtext, .trap) and .bss; the linker
  # gives the rest of SRAM to the stack.
  riscv64-unknown-elf-size -A "$elf" | awk -v chip="$chip" -v image="$(stat -c %s "$image")" '
    $1 ~ /^\.(data|bss|rwtext|trap)(\.|$)/ { ram += $2 }
    $1 == ".stack" { stack = $2 }
    END { printf "%s: flash image %d bytes, static RAM %d bytes, stack %d bytes\n", chip, image, ram, stack }'
done
