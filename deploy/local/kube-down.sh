#!/usr/bin/env bash
# Stops what kube-up.sh started: clients first, so kube-apiserver exits in seconds, then etcd.
# Keeps the state directory unless --purge is given.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${PINOT_LOCAL_KUBE_DIR:-$REPO/.local/kube}"

stop() {
  local f="$STATE/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
for c in data-plane kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done
if [ "${1:-}" = "--purge" ]; then rm -rf "$STATE"; fi
echo "[kube-down] stopped" >&2
