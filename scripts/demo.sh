#!/usr/bin/env bash
# The local market demo on the embedded defaults: installs what is missing, builds the program,
# then runs a market day on the local stack (validator, broker, Daraja simulator, oracle) and
# prints what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-program.sh
exec .venv/bin/python -m nishati_dev.demo
