#!/usr/bin/env bash
# The whole test run, as CI runs it: installs what is missing, builds the program, then runs the
# linters and every suite (Rust host tests of the program and the firmware core, the link step's tests, the Python suites on LiteSVM
# and on a local JSON-RPC validator). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/build-program.sh

step "rust: fmt, clippy, host tests"
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; else step "rustfmt not installed: skipped"; fi
if cargo clippy --version >/dev/null 2>&1; then
  # rustup's toolchain, in its own target directory so it never meets Debian's rlibs.
  (unset RUSTC RUSTDOC; CARGO_TARGET_DIR=target/clippy cargo clippy -q --all-targets -- -D warnings)
else
  step "clippy not installed: skipped"
fi
"$DEBIAN_CARGO" test -q

step "native: fmt, clippy, tests of the nishati_verify extension's crate"
(
  cd native/nishati-verify
  if cargo fmt --version >/dev/null 2>&1; then cargo fmt -- --check; fi
  if cargo clippy --version >/dev/null 2>&1; then
    (unset RUSTC RUSTDOC; CARGO_TARGET_DIR=../../target/clippy-native cargo clippy -q --all-targets --all-features -- -D warnings)
  fi
  CARGO_TARGET_DIR=../../target/native "$DEBIAN_CARGO" test -q
)

step "firmware: fmt, clippy, host tests of the meter core and the reading crate"
(
  cd firmware
  if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
  if cargo clippy --version >/dev/null 2>&1; then
    (unset RUSTC RUSTDOC; CARGO_TARGET_DIR=target/clippy cargo clippy -q --all-targets -- -D warnings)
  fi
  "$DEBIAN_CARGO" test -q
  if cargo fmt --version >/dev/null 2>&1; then (cd esp && cargo fmt -- --check); fi
  if cargo fmt --version >/dev/null 2>&1; then (cd qemu && cargo fmt -- --check); fi
)
scripts/test-firmware-qemu.sh
scripts/build-firmware.sh
scripts/build-web.sh

step "python: ruff, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

step "python: pytest"
.venv/bin/pytest "$@"

step "bench: compute units, transaction sizes, a household's day"
.venv/bin/python -m bench.market
.venv/bin/python -m bench.attest_policy
