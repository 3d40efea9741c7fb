#!/usr/bin/env bash
# The local market demo on the embedded defaults: installs what is missing, builds the program,
# then runs a market day on the local stack (validator, broker, Daraja simulator, oracle) and
# prints what happened; its arguments go to the demo (--serve: keep the market and the web app
# running after the day, until Ctrl-C; it builds the web app first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-program.sh
for arg in "$@"; do
  if [[ $arg == --serve ]]; then scripts/build-web.sh; fi
done
exec .venv/bin/python -m nishati_dev.demo "$@"
