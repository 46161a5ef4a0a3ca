//! `pinot-operator policy test` and `policy inspect`, run as a team would run them.

use std::{path::Path, process::Command};

use pinot_operator::policy::bundled;

fn operator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinot-operator")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wasm(name: &str) -> String {
    Path::new(bundled::WASM_DIR).join(name).to_string_lossy().into_owned()
}

fn example_state() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples/policy/observed-upgrade.yaml")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn inspect_prints_info_world_api_version_and_digest() {
    let (ok, out, err) = operator(&["policy", "inspect", &wasm("pinot_tenant_default.wasm")]);
    assert!(ok, "{err}");
    assert!(out.contains("name:        tenant-default"), "{out}");
    assert!(out.contains("world:       pinot:policy/tenant-policy"), "{out}");
    assert!(out.contains("api-version: pinot:policy@0.3.0"), "{out}");
    assert!(out.contains("digest:      sha256:"), "{out}");
}

#[test]
fn test_prints_actions_with_the_guardrail_verdict() {
    let (ok, out, err) =
        operator(&["policy", "test", &wasm("pinot_upgrade_default.wasm"), "--state", &example_state()]);
    assert!(ok, "{err}");
    assert!(out.contains("allowed  restart-pod analytics-server-a-1"), "{out}");
    assert!(!out.contains("disable-queries"), "servers restart on SIGTERM, queries on: {out}");

    let (ok, out, err) =
        operator(&["policy", "test", &wasm("pinot_test_invalid_actions.wasm"), "--state", &example_state()]);
    assert!(!ok);
    assert!(out.contains("REFUSED  restart-pod no-such-pod-0: no pod no-such-pod-0 in this cluster"), "{out}");
    assert!(err.contains("the guardrails refuse this plan"), "{err}");

    let (ok, _, err) =
        operator(&["policy", "test", &wasm("pinot_test_wrong_api_version.wasm"), "--state", &example_state()]);
    assert!(!ok);
    assert!(err.contains("pinot:policy@9.9.9"), "{err}");
}

#[test]
fn convert_turns_seed_manifests_into_resources_and_warns_on_stderr() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/migration/seed-pinot.yaml");
    let (ok, out, err) = operator(&["convert", &seed.to_string_lossy()]);
    assert!(ok, "{err}");
    let kinds: Vec<String> = out.lines().filter_map(|l| l.strip_prefix("kind: ")).map(str::to_string).collect();
    assert_eq!(kinds, ["PinotCluster", "PinotSchema", "PinotTable", "PinotTenant"], "{out}");
    assert!(out.contains("apiVersion: pinot.controlplane.dev/v1alpha1"), "{out}");
    assert!(err.contains("warning: Pinot/pinot-basic: spec.nodes[1].kind: Deployment"), "{err}");
    assert!(err.contains("4 resources converted"), "{err}");
    // A file that is not there is an error naming it.
    let (ok, _, err) = operator(&["convert", "/nonexistent/seed.yaml"]);
    assert!(!ok && err.contains("/nonexistent/seed.yaml"), "{err}");
}
