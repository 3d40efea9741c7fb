"""Instructions per reading signature of the meter's firmware on RV32IMC, beside the target.

Run: ``.venv/bin/python -m bench.firmware``. Builds and runs firmware/qemu through
``scripts/test-firmware-qemu.sh`` under ``qemu-system-riscv32 -M virt`` with ``-icount shift=0``
(one instruction per virtual nanosecond, so the ``minstret`` counter the image reads counts
exactly the instructions retired); the image signs several readings between two reads of it
and prints the mean. Time at 160 MHz (the ESP32-C3's clock) assumes one instruction per cycle,
a lower bound: flash cache misses and multi-cycle instructions cost more on the chip.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.stats import Report

ROOT = Path(__file__).resolve().parent.parent
CLOCK_HZ = 160_000_000
TARGET_MS = 15
TARGET_INSTRUCTIONS = TARGET_MS * CLOCK_HZ // 1000


def instructions_per_signature() -> int:
    out = subprocess.run(
        [str(ROOT / "scripts/test-firmware-qemu.sh"), "-icount", "shift=0"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ).stdout  # the semihosting console and the script's steps
    found = re.search(r"^bench: instructions per signature (\d+)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"the image printed no bench line:\n{out}")
    return int(found.group(1))


def main() -> None:
    report = Report("meter firmware on RV32IMC (qemu-system-riscv32 -M virt -icount shift=0)")
    report.setup.append(("target", "riscv32imc-unknown-none-elf, opt-level s, fat LTO"))
    report.setup.append(("signer", "ed25519-dalek 2 (nishati_meter_core::signer), 37-byte reading"))
    report.setup.append(("clock", f"{CLOCK_HZ // 1_000_000} MHz, one instruction per cycle"))
    instructions = instructions_per_signature()
    report.add(
        "instructions per signature",
        f"{instructions:,}",
        f"<= {TARGET_INSTRUCTIONS:,}",
        instructions <= TARGET_INSTRUCTIONS,
    )
    ms = instructions * 1000 / CLOCK_HZ
    report.add("ms per signature at 160 MHz", f"{ms:.1f}", f"<= {TARGET_MS}", ms <= TARGET_MS)
    report.print()


if __name__ == "__main__":
    main()
