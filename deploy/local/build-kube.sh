#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler 1.20.2 from Debian
# bookworm's `kubernetes` source package, once, into a cache outside the repository.
#
# Why from source: there is no Docker, kind or k3d here, and no prebuilt binaries can be
# downloaded; Debian ships the full upstream tree with vendored dependencies.
# Prints the directory holding the binaries as its last line.
set -euo pipefail

KUBE_SRC_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
CACHE_ROOT="${PINOT_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinot-operator}"
BIN_DIR="$CACHE_ROOT/kube-$KUBE_SRC_VERSION/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { echo "[build-kube] $*" >&2; }

# Each phase prints one line; its raw output goes to this log, shown (its end) if it fails.
BUILD_LOG="$CACHE_ROOT/kube-build.log"
mkdir -p "$CACHE_ROOT"
phase() {
  local what="$1"; shift
  local started=$SECONDS
  log "$what ..."
  if ! "$@" >>"$BUILD_LOG" 2>&1; then
    log "$what failed; the end of $BUILD_LOG:"
    tail -n 40 "$BUILD_LOG" >&2
    exit 1
  fi
  log "$what: done in $((SECONDS - started)) s"
}

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
  [ -x "$BIN_DIR/kubectl" ] || command -v kubectl >/dev/null 2>&1 || return 1
}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

install_packages() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    phase "installing Debian packages: ${missing[*]}" install_packages "${missing[@]}"
  fi
}

# etcd is needed to run, whether or not we build; the OCI registry (the CNCF distribution
# registry) for the policy-artifact tests and `make push` to the local registry.
ensure_packages etcd-server docker-registry

if have_all; then
  echo "$BIN_DIR"
  exit 0
fi

ensure_packages golang-go rsync make golang-github-modern-go-reflect2-dev dpkg-dev

: >"$BUILD_LOG"
log "building kube-apiserver, kube-controller-manager and kube-scheduler $KUBE_SRC_VERSION once (about 5 minutes on 2 cores; log: $BUILD_LOG)"
WORK="$CACHE_ROOT/kube-build"
rm -rf "$WORK"
mkdir -p "$WORK/apt/lists/partial" "$WORK/src"

# A private deb-src list for the mirror the machine already uses, so the system's apt
# configuration stays untouched.
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
echo "deb-src $MIRROR bookworm main" > "$WORK/apt/sources.list"
echo "deb-src ${MIRROR%/debian}/debian-security bookworm-security main" >> "$WORK/apt/sources.list"
APT_OPTS=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$WORK/apt/lists")
fetch_source() {
  apt-get "${APT_OPTS[@]}" update -qq
  (cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$KUBE_SRC_VERSION")
}
phase "1/4 fetching the kubernetes source package from $MIRROR" fetch_source
phase "2/4 unpacking it" bash -c "cd '$WORK/src' && dpkg-source --no-check -x ./*.dsc tree"

# The tree's Makefile expects to live in GOPATH.
export GOPATH="$WORK/gopath"
# Go's build cache (~2 GB for this tree) goes with the work directory, not into ~/.cache.
export GOCACHE="$WORK/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$WORK/src/tree" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"

# The vendored reflect2 v1.0.1 segfaults under Go 1.19 on the first JSON response.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/go.mod

WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
command -v kubectl >/dev/null 2>&1 || WHAT="$WHAT cmd/kubectl"
export CGO_ENABLED=0
phase "3/4 compiling ${WHAT//cmd\//} with Go" make WHAT="$WHAT"

install_binaries() {
  mkdir -p "$BIN_DIR"
  for b in "${BINARIES[@]}" kubectl; do
    f=$(find _output -type f -name "$b" -perm -u+x | head -1)
    if [ -n "$f" ]; then cp "$f" "$BIN_DIR/$b"; fi
  done
}
phase "4/4 installing the binaries" install_binaries
cd /
rm -rf "$WORK"
have_all || { log "build finished but binaries are missing"; exit 1; }
log "binaries in $BIN_DIR"
echo "$BIN_DIR"
