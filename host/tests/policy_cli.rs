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
    assert!(out.contains("api-version: pinot:policy@1.2.0"), "{out}");
    assert!(out.contains("digest:      sha256:"), "{out}");
    assert!(out.contains("wasi:        none"), "{out}");
}

#[test]
fn component_turns_a_policy_built_for_wasm32_unknown_unknown_into_a_loadable_component() {
    // The core module cargo built for the bundled example policy, before host/build.rs made it
    // a component.
    let core = Path::new(bundled::WASM_DIR)
        .join("../plugins-target/wasm32-unknown-unknown/release/pinot_upgrade_zone_at_a_time.wasm");
    let out = std::env::temp_dir().join(format!("zone-at-a-time-{}.wasm", std::process::id()));
    let (ok, stdout, err) = operator(&["policy", "component", &core.to_string_lossy(), "-o", &out.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("upgrade-policy upgrade-zone-at-a-time"), "{stdout}");
    let (ok, stdout, err) = operator(&["policy", "inspect", &out.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("wasi:        none"), "{stdout}");
    // A component is not made a component again; the error says what the input is.
    let (ok, _, err) = operator(&["policy", "component", &out.to_string_lossy(), "-o", "/dev/null"]);
    assert!(!ok && err.contains("it is a component already"), "{err}");
    let _ = std::fs::remove_file(&out);
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

    // A module built against a newer contract than this operator's is refused, saying so.
    let (ok, _, err) =
        operator(&["policy", "test", &wasm("pinot_test_newer_contract.wasm"), "--state", &example_state()]);
    assert!(!ok);
    assert!(err.contains("built against pinot:policy@1.3.0"), "{err}");
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
