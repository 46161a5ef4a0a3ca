#!/usr/bin/env bash
# Builds the Python policies into components with componentize-py (from PyPI).
#   plugins/python/build.sh OUT_DIR
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:?usage: build.sh OUT_DIR}"
WIT="$HERE/../../plugin-api/wit/1.0.0"
command -v componentize-py >/dev/null 2>&1 || python3 -m pip install --quiet 'componentize-py==0.25.1' >&2
mkdir -p "$OUT"
cd "$HERE/one-at-a-time"
componentize-py -d "$WIT" -w upgrade-policy componentize app -o "$OUT/python_one_at_a_time.wasm" >&2
echo "$OUT/python_one_at_a_time.wasm"
