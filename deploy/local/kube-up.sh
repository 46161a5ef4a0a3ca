#!/usr/bin/env bash
# Starts a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, all 1.20.2 on 127.0.0.1) plus the simulated data plane (fake Nodes in
# zone-a/b/c, simulated kubelet, volume provisioner), and prints the kubeconfig path as the
# last line. Idempotent: when it is already up it only prints the path.
#
# Environment:
#   PINOT_LOCAL_KUBE_DIR  state directory (default: <repo>/.local/kube)
#   PINOT_LOCAL_KUBE_PORT apiserver port (default 16443); etcd uses 23790/23800
#   PINOT_SIM_BIN         the simulated data plane binary (default: built with cargo)
#   PINOT_SIM_NODES_PER_ZONE  simulated Nodes per zone, 110 pods each (default 2; the
#                         1,000-cluster scale benchmark needs 4,000 pods: 13)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${PINOT_LOCAL_KUBE_DIR:-$REPO/.local/kube}"
PORT="${PINOT_LOCAL_KUBE_PORT:-16443}"
ETCD_PORT="${PINOT_LOCAL_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${PINOT_LOCAL_ETCD_PEER_PORT:-23800}"
KUBECONFIG_OUT="$STATE/kubeconfig"

log() { echo "[kube-up] $*" >&2; }

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

BIN_DIR="$("$REPO/deploy/local/build-kube.sh" | tail -1)"
KUBECTL="$(command -v kubectl || echo "$BIN_DIR/kubectl")"

if alive etcd && alive kube-apiserver && alive kube-controller-manager && alive kube-scheduler \
   && alive data-plane && "$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz >/dev/null 2>&1; then
  log "already running"
  echo "$KUBECONFIG_OUT"
  exit 0
fi
# Something is half up: stop it and start clean.
"$REPO/deploy/local/kube-down.sh" >/dev/null 2>&1 || true

mkdir -p "$STATE/pki" "$STATE/logs"
PKI="$STATE/pki"

if [ ! -f "$PKI/apiserver.crt" ]; then
  log "creating certificates and tokens"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pinot-local-ca" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
  cat > "$PKI/apiserver.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1
EXT
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  echo "$(openssl rand -hex 24),admin,admin,\"system:masters\"" > "$PKI/tokens.csv"
fi
TOKEN="$(cut -d, -f1 "$PKI/tokens.csv")"

cat > "$KUBECONFIG_OUT" <<KC
apiVersion: v1
kind: Config
clusters:
- name: pinot-local
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $PKI/ca.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: pinot-local
  context: {cluster: pinot-local, user: admin}
current-context: pinot-local
KC
chmod 600 "$KUBECONFIG_OUT"

start() { # name, command...
  local name="$1"; shift
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
}

log "starting etcd"
start etcd etcd --data-dir "$STATE/etcd" --name local \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --quota-backend-bytes 2147483648

# What service accounts do is audited (metadata only), so tests can compare the operator's RBAC
# rules with the calls it makes.
cat > "$STATE/audit-policy.yaml" <<'AUDIT'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
AUDIT

log "starting kube-apiserver on 127.0.0.1:$PORT"
start kube-apiserver "$BIN_DIR/kube-apiserver" \
  --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/logs/audit.log" \
  --audit-log-maxsize 200 --audit-log-maxbackup 1 \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$PORT" --insecure-port 0 \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
  --token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
  --disable-admission-plugins ServiceAccount --allow-privileged=true

for i in $(seq 1 120); do
  "$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz >/dev/null 2>&1 && break
  alive kube-apiserver || { log "kube-apiserver exited; see $STATE/logs/kube-apiserver.log"; tail -20 "$STATE/logs/kube-apiserver.log" >&2; exit 1; }
  sleep 0.5
done
"$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" get --raw /readyz >/dev/null

log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig "$KUBECONFIG_OUT" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --port 0 \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --controllers '*,-tokencleaner,-bootstrapsigner,-csrsigning,-service,-route,-cloud-node-lifecycle' \
  --use-service-account-credentials=false
start kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig "$KUBECONFIG_OUT" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --port 0

SIM="${PINOT_SIM_BIN:-}"
if [ -z "$SIM" ]; then
  log "building the simulated data plane"
  (cd "$REPO" && cargo build --quiet -p pinot-testbed --bin pinot-sim >&2)
  SIM="$REPO/target/debug/pinot-sim"
fi
log "starting the simulated data plane (nodes in zone-a, zone-b, zone-c)"
start data-plane "$SIM" data-plane --kubeconfig "$KUBECONFIG_OUT" --nodes-per-zone "${PINOT_SIM_NODES_PER_ZONE:-2}"

for i in $(seq 1 60); do
  n=$("$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" get nodes --no-headers 2>/dev/null | grep -c " Ready" || true)
  [ "$n" -ge 3 ] && break
  alive data-plane || { log "data plane exited; see $STATE/logs/data-plane.log"; tail -20 "$STATE/logs/data-plane.log" >&2; exit 1; }
  sleep 0.5
done
log "up: $("$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" get nodes --no-headers 2>/dev/null | wc -l) nodes; logs in $STATE/logs"
echo "$KUBECONFIG_OUT"
