# The entry point of the Pinot control plane, as users of operators expect.
#   make sandbox    the whole control plane on this machine, with a live view; Ctrl-C stops it
#   make test       everything CI runs: lints, unit tests, integration tests on a real apiserver
#   make run        the operator against the cluster of the current kubeconfig
#   make kube-up    start the local control plane (kube-apiserver 1.20 + simulated data plane)
#   make kube-down  stop it
#   make crds       regenerate crds/pinot.controlplane.dev.yaml (and the copies in the kustomize base and the Helm chart) from the Rust types

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help deps build sandbox test unit-test lint kube-up kube-down kube-purge run crds

help:
	@sed -n 's/^#   /  /p' Makefile

# Toolchain (pinned in rust-toolchain.toml) and its wasm target; Debian packages for the local
# control plane are installed by deploy/local/build-kube.sh when it first runs.
deps:
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

build: deps
	$(CARGO) build --workspace --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test: deps
	$(CARGO) test --workspace --lib --bins -p pinot-crds

# Starts the local control plane if it is not running (from an empty store, and stops it again
# afterwards if this run started it), then runs every test against it. PINOT_TEST_KUBECONFIG=<file> runs the
# integration tests against another cluster instead (kind, a real cluster).
test: deps lint
	@set -euo pipefail; \
	if [ -n "$${PINOT_TEST_KUBECONFIG:-}" ]; then \
	  $(CARGO) test --workspace; \
	else \
	  started=""; \
	  if ! ./deploy/local/kube-status.sh >/dev/null 2>&1; then \
	    started=1; ./deploy/local/kube-down.sh --purge >/dev/null; \
	  fi; \
	  kubeconfig="$$(./deploy/local/kube-up.sh | tail -1)"; \
	  trap '[ -n "$$started" ] && ./deploy/local/kube-down.sh' EXIT; \
	  PINOT_TEST_KUBECONFIG="$$kubeconfig" $(CARGO) test --workspace; \
	fi

sandbox: deps
	@./deploy/local/sandbox.sh

kube-up: deps
	@./deploy/local/kube-up.sh

kube-down:
	@./deploy/local/kube-down.sh

# Stops the local control plane and deletes its state (etcd data, certificates).
kube-purge:
	@./deploy/local/kube-down.sh --purge

run: deps
	kubectl apply --server-side --force-conflicts -f crds/pinot.controlplane.dev.yaml
	$(CARGO) run -p pinot-operator -- run

crds:
	$(CARGO) run -q -p pinot-operator -- crds > crds/pinot.controlplane.dev.yaml
	cp crds/pinot.controlplane.dev.yaml deploy/kustomize/base/crds.yaml
	cp crds/pinot.controlplane.dev.yaml deploy/helm/pinot-operator/crds/pinot.controlplane.dev.yaml
