#!/usr/bin/env bash
# Exit 0 when the local control plane started by kube-up.sh is running and answering.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${PINOT_LOCAL_KUBE_DIR:-$REPO/.local/kube}"
for c in etcd kube-apiserver kube-controller-manager kube-scheduler data-plane; do
  [ -f "$STATE/$c.pid" ] && kill -0 "$(cat "$STATE/$c.pid")" 2>/dev/null || { echo "$c is not running"; exit 1; }
done
KUBECTL="$(command -v kubectl || true)"
if [ -n "$KUBECTL" ]; then
  "$KUBECTL" --kubeconfig "$STATE/kubeconfig" get --raw /readyz >/dev/null 2>&1 || { echo "kube-apiserver does not answer"; exit 1; }
fi
echo "running; KUBECONFIG=$STATE/kubeconfig"
