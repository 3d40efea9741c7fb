#!/usr/bin/env bash
# Builds the web app (web/) into web/dist, which the oracle serves under / (NISHATI_HTTP_WEB_DIR):
# npm ci when web/node_modules is missing or older than the lockfile, then the type check, the
# linter and Vite's build; each asset is also written gzipped (<name>.gz) for the oracle to send
# to browsers that take it. Prints the JavaScript shipped, gzipped.
set -euo pipefail
cd "$(dirname "$0")/../web"
source ../scripts/lib.sh

if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "web: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
step "web: tsc, eslint, vite build"
npx --no-install tsc --noEmit -p tsconfig.json
npx --no-install eslint . --max-warnings 0
npx --no-install vite build --logLevel warn
find dist -type f \( -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' -o -name '*.webmanifest' \) \
  -exec gzip -9 -n -k -f {} \;
js=0
for f in dist/assets/*.js.gz; do js=$((js + $(stat -c %s "$f"))); done
echo "web: dist built, JavaScript shipped ${js} bytes gzipped"
