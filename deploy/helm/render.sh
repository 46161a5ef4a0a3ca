#!/usr/bin/env bash
# Renders the chart offline with Helm's own engine, without a helm binary: helm-python-sdk
# (PyPI) binds Helm's Go SDK. Used by the tests; with helm installed, `helm template` is the same.
#   deploy/helm/render.sh RELEASE NAMESPACE [VALUES-JSON]
set -euo pipefail
python3 -c 'import helm_python' 2>/dev/null || python3 -m pip install --quiet 'helm-python-sdk==0.2.2' >&2
CHART="$(cd "$(dirname "$0")/pinot-operator" && pwd)"
exec python3 - "$CHART" "$1" "$2" "${3:-{\}}" <<'PY'
import json, sys
import helm_python
chart_dir, release, namespace, values = sys.argv[1:5]
chart = helm_python.Chart.load(chart_dir)
rendered = chart.render(json.loads(values), name=release, namespace=namespace, is_install=True)
for path in sorted(rendered):
    text = rendered[path].strip()
    if text and not path.endswith("NOTES.txt"):
        print(f"---\n# Source: {path}\n{text}")
PY
