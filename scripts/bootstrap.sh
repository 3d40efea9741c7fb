#!/usr/bin/env bash
# Installs what building, testing and the demo need, skipping whatever is already there: Debian's
# Rust 1.96 (rustc-web, which carries LLVM 22's BPF backend), LLVM 22's tools, the RISC-V linker
# (the meter's firmware), Node.js, Mosquitto (the MQTT broker the oracle's tests and demo start),
# PostgreSQL 15 (the oracle's tests start their own servers with it), Chromium (the web app's
# browser tests drive Debian's, through Playwright, which never downloads a browser of its own), the
# Python virtual environment (.venv, with esptool), the nishati_verify extension in it
# (scripts/build-native.sh) and the npm packages (node_modules; the web app's own, web/node_modules,
# come with scripts/build-web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

APT_PACKAGES=(rustc-web cargo-web rust-web-src llvm-22 mosquitto binutils-riscv64-unknown-elf openssl
  qemu-system-misc chromium postgresql-15)
# The machine's own Python 3.11 and Node.js (any >= 18) will do; Debian's otherwise.
python3 -m venv --help >/dev/null 2>&1 || APT_PACKAGES+=(python3-venv)
command -v node >/dev/null && command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  # The tests start their own PostgreSQL servers: Debian's package is not to make and start one.
  if [[ " ${missing[*]} " == *" postgresql-15 "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    as_root mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
fi
/usr/bin/rustc --version | grep -q '^rustc 1\.9[6-9]' ||
  die "Debian's rustc-web is older than 1.96: $(/usr/bin/rustc --version)"

# The venv is rebuilt only when pyproject.toml changes.
stamp=.venv/.pyproject.sha256
want=$(cat pyproject.toml tools/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  step "python: creating .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]" -e tools
  # The forecast backtest's measured PV data (bench/forecast.py) ships in pvanalytics' data
  # folder; the bench reads the files and never imports the package, so its own dependencies
  # (statsmodels, scikit-image) are left out.
  .venv/bin/pip install -q --no-deps pvanalytics==0.2.2
  echo "$want" >"$stamp"
fi
scripts/build-native.sh

if [[ ! -d node_modules/@solana/surfpool-linux-x64-gnu ]] ||
  [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "npm: installing the local validator"
  npm ci --no-audit --no-fund --loglevel=error
fi
