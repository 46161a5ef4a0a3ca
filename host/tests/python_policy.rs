//! A policy in a second language: Python, built into a component with componentize-py (from
//! PyPI), runs under the same contract and limits as the Rust policies.

use std::{path::PathBuf, process::Command};

use pinot_operator::policy::{Action, ClusterState, PolicyEngine, PolicyKind, PolicyLimits};

#[test]
fn a_python_policy_builds_loads_and_decides() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("pinot-python-policy-{}", std::process::id()));
    let status =
        Command::new(repo.join("plugins/python/build.sh")).arg(&out).status().expect("running plugins/python/build.sh");
    assert!(status.success(), "building the Python policy with componentize-py failed");
    let bytes = std::fs::read(out.join("python_one_at_a_time.wasm")).unwrap();

    let engine = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let policy = engine.load(PolicyKind::Upgrade, "python", &bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.info.name, "python-one-at-a-time");
    assert_eq!(policy.api_version(), "pinot:policy@1.0.0");
    // componentize-py modules import WASI: they are linked with an empty one.
    assert!(policy.uses_wasi());
    let text = std::fs::read_to_string(repo.join("deploy/examples/policy/observed-upgrade.yaml")).unwrap();
    let state: ClusterState = serde_yaml::from_str(&text).unwrap();
    assert_eq!(engine.decide(&policy, &state).unwrap(), vec![Action::RestartPod("analytics-server-a-0".into())]);
    let _ = std::fs::remove_dir_all(&out);
}
