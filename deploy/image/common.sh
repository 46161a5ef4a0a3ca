# shellcheck shell=bash
# Shared by build.sh and push.sh (sourced; the caller defines log and die).

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

ensure_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
  fi
}

# The version of the pinot-operator crate: its own, or the workspace's (version.workspace = true).
crate_version() {
  local v=""
  if command -v cargo >/dev/null 2>&1 && command -v jq >/dev/null 2>&1; then
    v=$(cargo metadata --no-deps --offline --format-version 1 2>/dev/null |
      jq -r '.packages[] | select(.name == "pinot-operator") | .version' || true)
  fi
  if [ -z "$v" ]; then
    v=$(awk '/^\[/ {s = ($0 == "[package]")} s && /^version *=/ {gsub(/^[^"]*"|".*$/, ""); print; exit}' host/Cargo.toml)
  fi
  if [ -z "$v" ]; then
    v=$(awk '/^\[/ {s = ($0 == "[workspace.package]")} s && /^version *=/ {gsub(/^[^"]*"|".*$/, ""); print; exit}' Cargo.toml)
  fi
  [ -n "$v" ] || die "cannot read the crate's version from host/Cargo.toml or Cargo.toml"
  echo "$v"
}
