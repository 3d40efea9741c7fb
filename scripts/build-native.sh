#!/usr/bin/env bash
# Builds the nishati_verify extension (native/nishati-verify: Ed25519 verification as the chain's
# Ed25519 program does it) into a wheel with maturin and Debian's cargo, and installs it into
# .venv. Skipped when the installed one was built from the same sources.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

crate=native/nishati-verify
stamp=.venv/.nishati-verify.sha256
want=$(cd "$crate" && find Cargo.toml Cargo.lock pyproject.toml nishati_verify.pyi src -type f -print0 |
  sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && .venv/bin/python -c "import nishati_verify" 2>/dev/null; then
  exit 0
fi

step "native: building the nishati_verify extension"
wheels=target/native/wheels
rm -rf "$wheels"
# Debian's cargo first on PATH: maturin runs `cargo`, and rustup's may be a different rustc.
PATH="$(dirname "$DEBIAN_CARGO"):$PATH" CARGO_TARGET_DIR=target/native \
  .venv/bin/maturin build --quiet --release --manifest-path "$crate/Cargo.toml" \
  --interpreter .venv/bin/python --out "$wheels"
.venv/bin/pip install -q --force-reinstall --no-deps "$wheels"/nishati_verify-*.whl
echo "$want" >"$stamp"
