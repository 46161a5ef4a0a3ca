#!/usr/bin/env bash
# `make sandbox`: the whole control plane on one machine. Starts the local control plane
# (kube-apiserver 1.20 + simulated data plane and Pinot controllers), the operator, applies
# deploy/examples/quickstart.yaml and shows the cluster coming up live. Ctrl-C stops
# everything it started.
#
#   PINOT_SANDBOX_MANIFEST  manifest to apply (default deploy/examples/quickstart.yaml)
#   PINOT_SANDBOX_ONESHOT=1 exit (and clean up) once the cluster is Available
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${PINOT_LOCAL_KUBE_DIR:-$REPO/.local/kube}"
MANIFEST="${PINOT_SANDBOX_MANIFEST:-$REPO/deploy/examples/quickstart.yaml}"
NAMESPACE=default
log() { echo "[sandbox] $*" >&2; }

cd "$REPO"
log "building the operator and the simulated data plane (about 5 minutes the first time, cached after)"
# cargo's own progress (a bar on a terminal, a line per crate otherwise), not silence.
cargo build -p pinot-operator -p pinot-testbed --bins

started_kube=""
./deploy/local/kube-status.sh >/dev/null 2>&1 || started_kube=1
log "starting the local control plane (the first time, it builds kube-apiserver from Debian's source: one line per phase)"
KUBECONFIG="$(./deploy/local/kube-up.sh | tail -1)"
export KUBECONFIG
KUBECTL="$(command -v kubectl || echo "$(./deploy/local/build-kube.sh | tail -1)/kubectl")"

OPERATOR_PID=""
cleanup() {
  trap - INT TERM EXIT
  echo >&2
  if [ -n "$OPERATOR_PID" ]; then
    log "stopping the operator"
    kill -TERM "$OPERATOR_PID" 2>/dev/null || true
    wait "$OPERATOR_PID" 2>/dev/null || true
  fi
  if [ -n "$started_kube" ]; then
    log "stopping the local control plane"
    ./deploy/local/kube-down.sh
  else
    log "the local control plane was running before; left running (make kube-down stops it)"
  fi
}
trap cleanup INT TERM EXIT

"$KUBECTL" apply --server-side --force-conflicts -f crds/pinot.controlplane.dev.yaml >/dev/null 2>&1
log "starting the operator (log: $STATE/logs/operator.log)"
PINOT_CONTROLLER_URL_TEMPLATE="http://127.0.0.1:19000/clusters/{namespace}/{name}" \
  ./target/debug/pinot-operator run --kubeconfig "$KUBECONFIG" --metrics-addr "${PINOT_METRICS_ADDR:-127.0.0.1:8080}" \
  >"$STATE/logs/operator.log" 2>&1 &
OPERATOR_PID=$!

NAME="$(awk '/^metadata:/ {m=1} m && /^  name:/ {print $2; exit}' "$MANIFEST")"
log "applying $MANIFEST (PinotCluster $NAME)"
"$KUBECTL" -n "$NAMESPACE" apply -f "$MANIFEST" 2>&1 | grep -v '^Warning' >&2

FOOTER="In another terminal:  export KUBECONFIG=$KUBECONFIG
  kubectl get pinotclusters -o wide     kubectl describe pinotcluster $NAME
  kubectl wait --for=condition=Available pinotcluster/$NAME     kubectl edit pinotcluster $NAME
  curl -s http://${PINOT_METRICS_ADDR:-127.0.0.1:8080}/metrics
Ctrl-C stops the sandbox."

./target/debug/pinot-sim watch --kubeconfig "$KUBECONFIG" --namespace "$NAMESPACE" --cluster "$NAME" --until-available --footer "$FOOTER"
echo
log "PinotCluster $NAME is Available."
echo "export KUBECONFIG=$KUBECONFIG"
if [ "${PINOT_SANDBOX_ONESHOT:-}" = 1 ]; then
  exit 0
fi
./target/debug/pinot-sim watch --kubeconfig "$KUBECONFIG" --namespace "$NAMESPACE" --cluster "$NAME" --footer "$FOOTER"
