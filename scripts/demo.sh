#!/usr/bin/env bash
# The local market demo on the embedded defaults: installs what is missing, builds the program,
# starts a local validator, opens a market and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-program.sh
exec .venv/bin/python -m nishati_dev.demo
