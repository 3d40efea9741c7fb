#!/usr/bin/env bash
# Builds target/deploy/nishati.so (SBPF v0) with Debian's rustc 1.96, -Zbuild-std and the
# project's link step (tools/sbf-link). Incremental: an unchanged tree rebuilds in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
scripts/bootstrap.sh

step "program: building target/deploy/nishati.so"
# RUSTC_BOOTSTRAP unlocks -Zbuild-std and JSON target specs on Debian's stable rustc.
RUSTC_BOOTSTRAP=1 "$DEBIAN_CARGO" build --release -p nishati \
  --target tools/sbf-solana-solana.json -Zbuild-std=core,alloc -Zjson-target-spec
mkdir -p target/deploy
cp target/sbf-solana-solana/release/libnishati.so target/deploy/nishati.so
ls -l target/deploy/nishati.so >&2
