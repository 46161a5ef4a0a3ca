#!/usr/bin/env bash
# Publishes the image deploy/image/build.sh built (make image) to a registry with skopeo, without
# a container engine:
#
#   REGISTRY=registry.example.com/team deploy/image/push.sh     (make push REGISTRY=...)
#
# pushes <REGISTRY>/pinot-operator:<tag>, the name the Helm chart composes from
# image.repository=<REGISTRY>/pinot-operator and its appVersion.
#
# Environment:
#   REGISTRY             required: host[:port][/path] to push to
#   IMAGE_TAG            the tag to push as (default: the crate's version, the tag build.sh wrote)
#   PINOT_IMAGE_LAYOUT   the OCI image layout build.sh wrote (default: target/image/oci)
#   REGISTRY_INSECURE=1  plain HTTP or a certificate not verified (a registry on loopback)
#   REGISTRY_CA_DIR      a directory of *.crt CAs to trust for the registry (--dest-cert-dir)
#   REGISTRY_AUTH_FILE   credentials as `docker login`/`skopeo login` write them (default: the
#                        files skopeo reads itself: $XDG_RUNTIME_DIR/containers/auth.json,
#                        ~/.docker/config.json)
#   REGISTRY_USERNAME, REGISTRY_PASSWORD   credentials given directly instead
#
# The last line printed is the pushed image pinned by digest: <REGISTRY>/pinot-operator@sha256:...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

log() { echo "[push] $*" >&2; }
die() { echo "[push] error: $*" >&2; exit 1; }

# shellcheck source=deploy/image/common.sh
source "$ROOT/deploy/image/common.sh"

[ -n "${REGISTRY:-}" ] ||
  die "REGISTRY is not set: the registry to push to, e.g. REGISTRY=registry.example.com/team make push (REGISTRY_INSECURE=1 for a plain-HTTP one such as 127.0.0.1:5000)"
REGISTRY="${REGISTRY%/}"
case "$REGISTRY" in
  *://*) die "REGISTRY=$REGISTRY: give host[:port][/path], without a scheme (REGISTRY_INSECURE=1 for plain HTTP)" ;;
esac

ensure_packages skopeo jq

creds=""
digestfile=""
trap 'rm -f ${creds:+"$creds"} ${digestfile:+"$digestfile"}' EXIT

VERSION="$(crate_version)"
TAG="${IMAGE_TAG:-$VERSION}"
LAYOUT="${PINOT_IMAGE_LAYOUT:-target/image/oci}"
[ -f "$LAYOUT/index.json" ] ||
  die "no OCI image layout at $LAYOUT: build the image first (make image, or deploy/image/build.sh)"
jq -e --arg tag "$VERSION" \
  'any(.manifests[]; .annotations["org.opencontainers.image.ref.name"] == $tag)' "$LAYOUT/index.json" >/dev/null ||
  die "$LAYOUT has no image tagged $VERSION (the crate's version): build it first (make image)"

SRC="oci:$LAYOUT:$VERSION"
NAME="$REGISTRY/pinot-operator"
DEST="docker://$NAME:$TAG"

args=()
if [ "${REGISTRY_INSECURE:-}" = 1 ]; then
  args+=(--dest-tls-verify=false)
fi
if [ -n "${REGISTRY_CA_DIR:-}" ]; then
  [ -d "$REGISTRY_CA_DIR" ] || die "REGISTRY_CA_DIR=$REGISTRY_CA_DIR: not a directory (skopeo reads the *.crt files in it)"
  args+=(--dest-cert-dir "$REGISTRY_CA_DIR")
fi
if [ -n "${REGISTRY_USERNAME:-}" ] || [ -n "${REGISTRY_PASSWORD:-}" ]; then
  if [ -z "${REGISTRY_USERNAME:-}" ] || [ -z "${REGISTRY_PASSWORD:-}" ]; then
    die "set both REGISTRY_USERNAME and REGISTRY_PASSWORD (or neither, and use REGISTRY_AUTH_FILE or docker login)"
  fi
  # What --dest-creds would do, through a private auth file, so that the password does not show
  # in the process list.
  creds="$(mktemp)"
  chmod 0600 "$creds"
  jq -n --arg host "${REGISTRY%%/*}" --arg auth "$(printf '%s:%s' "$REGISTRY_USERNAME" "$REGISTRY_PASSWORD" | base64 -w0)" \
    '{auths: {($host): {auth: $auth}}}' > "$creds"
  args+=(--dest-authfile "$creds")
elif [ -n "${REGISTRY_AUTH_FILE:-}" ]; then
  [ -f "$REGISTRY_AUTH_FILE" ] || die "REGISTRY_AUTH_FILE=$REGISTRY_AUTH_FILE: no such file"
  args+=(--dest-authfile "$REGISTRY_AUTH_FILE")
fi

# skopeo refuses to copy without a trust policy; Debian's containers-common ships
# /etc/containers/policy.json, and a machine without it gets the same default (accept anything).
policy=()
if [ ! -f /etc/containers/policy.json ] && [ ! -f "${XDG_CONFIG_HOME:-$HOME/.config}/containers/policy.json" ]; then
  policy=(--insecure-policy)
fi

digestfile="$(mktemp)"
log "pushing $SRC to $DEST"
skopeo "${policy[@]}" copy --retry-times 2 --digestfile "$digestfile" "${args[@]}" "$SRC" "$DEST" >&2
digest="$(cat "$digestfile")"
[ -n "$digest" ] || die "skopeo wrote no digest"
log "pushed $NAME:$TAG"
echo "$NAME@$digest"
