#!/usr/bin/env bash
# Builds the operator's container image without a container engine: an OCI image layout made
# with umoci, FROM scratch, holding what gcr.io/distroless/cc-debian12:nonroot would give the
# binary (the shared libraries it is linked against, the CA bundle, a `nonroot` user, /tmp) and
# nothing else. No base image is pulled; everything comes from this machine.
#
#   deploy/image/build.sh            (make image)
#
# Environment:
#   PINOT_IMAGE_BINARY  the binary to put in the image (default: target/release/pinot-operator,
#                       built with `cargo build --release --locked -p pinot-operator`; cargo
#                       rebuilds only what changed). A binary given here is used as it is.
#   PINOT_IMAGE_LAYOUT  the OCI image layout to write (default: target/image/oci). The image is
#                       tagged with the crate's version; re-running replaces that tag (other
#                       tags in the layout stay).
#
# Prints one line per phase on stderr; on stdout the image's size, then, as the last line, the
# image as skopeo names it (oci:<layout>:<tag>). deploy/image/push.sh publishes it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SOURCE_URL="https://github.com/pinot-controlplane/pinot-operator"
DESCRIPTION="The Kubernetes operator for Apache Pinot: CRDs, reconcilers, policy modules."

log() { echo "[image] $*" >&2; }
die() { echo "[image] error: $*" >&2; exit 1; }

# shellcheck source=deploy/image/common.sh
source "$ROOT/deploy/image/common.sh"

# Copies an absolute path from this machine into the root filesystem at the same path,
# recreating the symbolic links on the way (/lib64 -> usr/lib64, the loader's link, ...) as
# they are here, so the image has the same layout as the system the binary was linked on.
copy_path() {
  local path="$1" rootfs="$2" guard=0
  while :; do
    guard=$((guard + 1))
    [ "$guard" -lt 64 ] || die "too many symbolic links resolving $1"
    local cur="" rest="${path#/}" comp target
    local followed=""
    while [ -n "$rest" ]; do
      comp="${rest%%/*}"
      if [ "$comp" = "$rest" ]; then rest=""; else rest="${rest#*/}"; fi
      if [ -z "$comp" ] || [ "$comp" = "." ]; then continue; fi
      cur="$cur/$comp"
      if [ -L "$cur" ]; then
        target="$(readlink "$cur")"
        if [ ! -L "$rootfs$cur" ]; then
          mkdir -p "$rootfs$(dirname "$cur")"
          ln -s "$target" "$rootfs$cur"
        fi
        case "$target" in
          /*) path="$target" ;;
          *) path="$(dirname "$cur")/$target" ;;
        esac
        [ -z "$rest" ] || path="$path/$rest"
        path="$(realpath -m -s "$path")"
        followed=1
        break
      elif [ -d "$cur" ]; then
        mkdir -p "$rootfs$cur"
      elif [ -f "$cur" ]; then
        mkdir -p "$rootfs$(dirname "$cur")"
        cp -p "$cur" "$rootfs$cur"
      else
        die "$cur: not found (needed for $1)"
      fi
    done
    [ -n "$followed" ] || return 0
  done
}

# attr: setfattr, for the owner of /home/nonroot in a rootless bundle (below).
ensure_packages umoci skopeo jq attr ca-certificates

VERSION="$(crate_version)"
LAYOUT="${PINOT_IMAGE_LAYOUT:-target/image/oci}"
mkdir -p "$(dirname "$LAYOUT")"
LAYOUT="$(cd "$(dirname "$LAYOUT")" && pwd)/$(basename "$LAYOUT")"
IMAGE="$LAYOUT:$VERSION"

# 1. The binary.
if [ -n "${PINOT_IMAGE_BINARY:-}" ]; then
  BINARY="$PINOT_IMAGE_BINARY"
  [ -f "$BINARY" ] || die "PINOT_IMAGE_BINARY=$BINARY: no such file"
  log "binary: $BINARY (PINOT_IMAGE_BINARY)"
else
  BINARY="target/release/pinot-operator"
  log "binary: cargo build --release --locked -p pinot-operator"
  cargo build --release --locked -p pinot-operator >&2
fi
BINARY="$(realpath "$BINARY")"
reported="$("$BINARY" --version 2>/dev/null || true)"
[ "$reported" = "pinot-operator $VERSION" ] ||
  die "$BINARY reports '${reported:-nothing}' for --version, not 'pinot-operator $VERSION' (the crate's version, the image's tag): rebuild it"

# 2. The root filesystem, unpacked beside the layout (not in a tmpfs /tmp: the binary is large,
# and the bundle needs user extended attributes).
WORK="$(mktemp -d "$(dirname "$LAYOUT")/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "layout: $LAYOUT (tag $VERSION)"
if [ -f "$LAYOUT/index.json" ]; then
  umoci rm --image "$IMAGE" >/dev/null 2>&1 || true
else
  rm -rf "$LAYOUT"
  umoci init --layout "$LAYOUT"
fi
umoci new --image "$IMAGE"
umoci unpack --rootless --image "$IMAGE" "$WORK/bundle" >/dev/null
ROOTFS="$WORK/bundle/rootfs"

log "rootfs: /usr/local/bin/pinot-operator"
install -D -m 0755 "$BINARY" "$ROOTFS/usr/local/bin/pinot-operator"

# The loader and the libraries the binary is linked against, as `ldd` resolves them here
# (libc, libm, libgcc_s, ld-linux: what distroless/cc adds to distroless/static).
linked="$(ldd "$BINARY" 2>&1)" || die "ldd $BINARY: $linked"
! grep -q "not found" <<<"$linked" || die "ldd $BINARY: libraries not found here: $linked"
libs=()
while read -r lib; do libs+=("$lib"); done < <(
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$linked" | sort -u
)
[ "${#libs[@]}" -gt 0 ] || die "ldd found no shared libraries for $BINARY (a static binary needs no image of this kind)"
log "rootfs: shared libraries ${libs[*]}"
for lib in "${libs[@]}"; do copy_path "$lib" "$ROOTFS"; done

log "rootfs: /etc/passwd, /etc/group (nonroot 65532), /etc/nsswitch.conf, CA bundle, /tmp, /home/nonroot"
mkdir -p "$ROOTFS/etc/ssl/certs" "$ROOTFS/tmp" "$ROOTFS/home/nonroot"
cat > "$ROOTFS/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat > "$ROOTFS/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
# /etc/hosts before DNS, as in distroless (glibc's default without this file is the reverse).
echo "hosts: files dns" > "$ROOTFS/etc/nsswitch.conf"
chmod 0644 "$ROOTFS/etc/passwd" "$ROOTFS/etc/group" "$ROOTFS/etc/nsswitch.conf"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA_BUNDLE" ] || die "$CA_BUNDLE is missing or empty (apt-get install ca-certificates)"
install -m 0644 "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$ROOTFS/tmp"
# /home/nonroot belongs to nonroot, as in distroless. A rootless bundle records owners other than
# the one running umoci in the user.rootlesscontainers attribute (a protobuf: uid=1, gid=2, both
# 65532 here).
chmod 0700 "$ROOTFS/home/nonroot"
if ! setfattr -n user.rootlesscontainers -v 0x08fcff0310fcff03 "$ROOTFS/home/nonroot" 2>/dev/null; then
  chmod 0755 "$ROOTFS/home/nonroot"
  log "warning: $(dirname "$LAYOUT") has no user extended attributes: /home/nonroot stays root's (0755)"
fi

# 3. The layer and the configuration.
log "layer: umoci repack"
umoci repack --image "$IMAGE" --history.created_by "deploy/image/build.sh" \
  --history.comment "pinot-operator $VERSION, its shared libraries, CA bundle, nonroot user" "$WORK/bundle"

REVISION="$(git rev-parse HEAD 2>/dev/null || true)"
labels=(
  --config.label "org.opencontainers.image.title=pinot-operator"
  --config.label "org.opencontainers.image.version=$VERSION"
  --config.label "org.opencontainers.image.source=$SOURCE_URL"
  --config.label "org.opencontainers.image.licenses=Apache-2.0"
  --config.label "org.opencontainers.image.description=$DESCRIPTION"
)
if [ -n "$REVISION" ]; then
  labels+=(--config.label "org.opencontainers.image.revision=$REVISION")
else
  log "not a git checkout: no org.opencontainers.image.revision label"
fi
log "config: user 65532:65532, entrypoint /usr/local/bin/pinot-operator, cmd run, labels (revision ${REVISION:-none})"
umoci config --image "$IMAGE" --no-history \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/pinot-operator \
  --config.cmd run \
  --config.workingdir / \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.env HOME=/home/nonroot \
  --manifest.annotation "org.opencontainers.image.version=$VERSION" \
  "${labels[@]}"
umoci gc --layout "$LAYOUT"

# 4. The size, as a registry stores it: the manifest, the configuration and the gzipped layer.
manifest_digest=$(jq -r --arg tag "$VERSION" \
  '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag) | .digest' "$LAYOUT/index.json")
[ -n "$manifest_digest" ] || die "the layout has no image tagged $VERSION after the build"
manifest="$LAYOUT/blobs/${manifest_digest/://}"
size=$(jq '[.config.size] + [.layers[].size] | add' "$manifest")
size=$((size + $(stat -c %s "$manifest")))
binary_size=$(stat -c %s "$BINARY")
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "size: $(mib "$size") compressed ($size bytes; the binary: $(mib "$binary_size"), $binary_size bytes), manifest $manifest_digest"
echo "oci:$IMAGE"
