# The entry point of the Pinot control plane, as users of operators expect.
#   make sandbox    the whole control plane on this machine, with a live view; Ctrl-C stops it
#   make test       everything CI runs: lints, unit tests, integration tests on a real apiserver
#   make run        the operator against the cluster of the current kubeconfig
#   make kube-up    start the local control plane (kube-apiserver 1.20 + simulated data plane)
#   make kube-down  stop it
#   make crds       regenerate crds/pinot.controlplane.dev.yaml (and the copies in the kustomize base and the Helm chart) from the Rust types
#   make image      the operator's container image, without a container engine (umoci): an OCI layout in target/image/oci
#   make push REGISTRY=host[:port][/path]  build it, then publish it as <REGISTRY>/pinot-operator:<version> (skopeo; REGISTRY_INSECURE=1 for plain HTTP)
#   make kubectl-plugin [BINDIR=~/.local/bin]  install the release binary as pinot-operator and kubectl-pinot (kubectl pinot status|plan|restart)
#   make bench-scale    the scale benchmark (after `PINOT_SIM_NODES_PER_ZONE=13 make kube-up` for 1,000 clusters)
#   make bench-upgrade  the upgrade benchmark (after `make kube-up`)
#   make bench-tables   the schema and table convergence benchmark (after `make kube-up`)
#   make bench-reload   a policy's hot reload through the API, kubectl to first decision (after `make kube-up`)
#   make bench-zone-outage  losing a zone and getting it back, and an upgrade across the outage (after `make kube-up`)

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help deps build sandbox test unit-test lint kube-up kube-down kube-purge run crds image push kubectl-plugin bench-scale bench-upgrade bench-tables bench-reload bench-zone-outage

help:
	@sed -n 's/^#   /  /p' Makefile

# Toolchain (pinned in rust-toolchain.toml) and its wasm target; Debian packages for the local
# control plane are installed by deploy/local/build-kube.sh when it first runs.
deps:
	@rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
	@for t in wasm32-unknown-unknown wasm32-wasip2; do rustup target list --installed | grep -qx $$t || rustup target add $$t; done

build: deps
	$(CARGO) build --workspace --all-targets

# The policies in plugins/ are a workspace of their own: linted and unit-tested on the host too.
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --all --manifest-path plugins/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --manifest-path plugins/Cargo.toml -- -D warnings

unit-test: deps
	$(CARGO) test --workspace --lib --bins -p pinot-crds
	$(CARGO) test --workspace --manifest-path plugins/Cargo.toml

# Starts the local control plane if it is not running (from an empty store, and stops it again
# afterwards if this run started it), then runs every test against it. PINOT_TEST_KUBECONFIG=<file> runs the
# integration tests against another cluster instead (kind, a real cluster).
test: deps lint
	@set -euo pipefail; \
	$(CARGO) test --workspace --manifest-path plugins/Cargo.toml; \
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

# The operator's image FROM scratch: the release binary, its shared libraries, the CA bundle and a
# nonroot user (what distroless/cc gives), built with umoci and pushed with skopeo, which
# deploy/image/*.sh install from Debian when missing; no container engine, no base image to pull.
# PINOT_IMAGE_BINARY=<file> puts another binary in; PINOT_IMAGE_LAYOUT=<dir> writes elsewhere.
image: deps
	@./deploy/image/build.sh

# `make push REGISTRY=registry.example.com/team` publishes registry.example.com/team/pinot-operator:<version>
# (the Helm chart's image.repository=<REGISTRY>/pinot-operator) and prints it pinned by digest.
# IMAGE_TAG, REGISTRY_INSECURE=1, REGISTRY_CA_DIR, REGISTRY_AUTH_FILE or REGISTRY_USERNAME and
# REGISTRY_PASSWORD: see deploy/image/push.sh.
push:
	@if [ -z "$(REGISTRY)" ]; then echo "make push needs REGISTRY: make push REGISTRY=host[:port][/path] (REGISTRY_INSECURE=1 for a plain-HTTP registry)" >&2; exit 1; fi
	@$(MAKE) --no-print-directory image
	@REGISTRY="$(REGISTRY)" ./deploy/image/push.sh

# The CLI and the kubectl plugin: kubectl runs `kubectl-pinot` (a link to the binary) for
# `kubectl pinot ...`.
BINDIR ?= $(HOME)/.local/bin
kubectl-plugin: deps
	$(CARGO) build --release --locked -p pinot-operator
	mkdir -p "$(BINDIR)"
	install -m 0755 target/release/pinot-operator "$(BINDIR)/pinot-operator"
	ln -sf pinot-operator "$(BINDIR)/kubectl-pinot"
	@echo "installed $(BINDIR)/pinot-operator and $(BINDIR)/kubectl-pinot (put $(BINDIR) on PATH; then: kubectl pinot status NAME -n NAMESPACE)"

# The benchmarks against a cluster: the one PINOT_TEST_KUBECONFIG names (a relative path is
# taken from the repository's root), else the local control plane, which must be running. Both
# are checked before the (long) release build, and the bench gets the absolute path.
define bench
	@set -euo pipefail; \
	if [ -n "$${PINOT_TEST_KUBECONFIG:-}" ]; then \
	  case "$$PINOT_TEST_KUBECONFIG" in /*) kubeconfig="$$PINOT_TEST_KUBECONFIG" ;; *) kubeconfig="$(CURDIR)/$$PINOT_TEST_KUBECONFIG" ;; esac; \
	  if [ ! -f "$$kubeconfig" ]; then \
	    echo "PINOT_TEST_KUBECONFIG=$$PINOT_TEST_KUBECONFIG: no such file ($$kubeconfig). Set it to the kubeconfig of a running cluster, or unset it and run 'make kube-up' first for the local control plane." >&2; \
	    exit 1; \
	  fi; \
	  if command -v kubectl >/dev/null && ! kubectl --kubeconfig "$$kubeconfig" --request-timeout=10s get --raw /readyz >/dev/null 2>&1; then \
	    echo "The cluster of PINOT_TEST_KUBECONFIG=$$PINOT_TEST_KUBECONFIG ($$kubeconfig) does not answer: start it (for the local control plane: 'make kube-up')." >&2; \
	    exit 1; \
	  fi; \
	else \
	  kubeconfig="$${PINOT_LOCAL_KUBE_DIR:-$(CURDIR)/.local/kube}/kubeconfig"; \
	  if ! why="$$(./deploy/local/kube-status.sh)"; then \
	    echo "The local control plane is not running ($$why): run 'make kube-up' first (or set PINOT_TEST_KUBECONFIG to the kubeconfig of another cluster)." >&2; \
	    exit 1; \
	  fi; \
	fi; \
	PINOT_TEST_KUBECONFIG="$$kubeconfig" $(CARGO) bench -p pinot-testbed --bench $(1)
endef

bench-scale: deps
	$(call bench,scale)

bench-upgrade: deps
	$(call bench,upgrade)

bench-tables: deps
	$(call bench,tables)

bench-reload: deps
	$(call bench,reload)

bench-zone-outage: deps
	$(call bench,zone_outage)
