//! PinotPolicy on the real apiserver: modules from a ConfigMap and from the policy directory
//! load, are rejected with the reason in status, keep the last good module active, and are
//! picked up while the operator runs (ConfigMap watch; notify on the directory, including the
//! `..data` symlink swap of a mounted ConfigMap).

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::ConfigMap};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use pinot_crds::PinotPolicy;
use pinot_operator::{
    policy::{bundled, runtime::digest},
    policy_controller::LABEL_POLICY_MODULE,
};
use pinot_testbed::harness::{OperatorHandle, TestNamespace, kubectl, test_client, wait_for};
use serde_json::json;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(bundled::WASM_DIR).join(name)).unwrap()
}

async fn status_of(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&pinot_crds::PinotPolicyStatus) -> bool,
) -> pinot_crds::PinotPolicyStatus {
    let api: Api<PinotPolicy> = Api::namespaced(client.clone(), ns);
    wait_for(what, Duration::from_secs(60), || async {
        let p = api.get(name).await.ok()?;
        let s = p.status?;
        (s.observed_generation == p.metadata.generation && check(&s)).then_some(s)
    })
    .await
}

async fn put_module(client: &Client, ns: &str, bytes: &[u8]) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("team-policies".into()),
            labels: Some(BTreeMap::from([(LABEL_POLICY_MODULE.to_string(), "true".to_string())])),
            ..Default::default()
        },
        binary_data: Some(BTreeMap::from([("upgrade.wasm".to_string(), ByteString(bytes.to_vec()))])),
        ..Default::default()
    };
    api.patch("team-policies", &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&cm)).await.unwrap();
}

#[tokio::test]
async fn configmap_modules_load_reject_and_keep_the_last_good_one() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-cm").await;
    let controller = OperatorHandle::start(&client, &ns.name);
    let good = wasm("pinot_upgrade_default.wasm");
    let other = wasm("pinot_test_invalid_actions.wasm");
    put_module(&client, &ns.name, &good).await;
    let policies: Api<PinotPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy: PinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy",
        "metadata": {"name": "team-upgrade"},
        "spec": {"kind": "upgrade", "module": {"configMap": {"name": "team-policies", "key": "upgrade.wasm"}},
                 "sha256": digest(&good), "config": {"podReadyTimeoutSeconds": "300"}},
    }))
    .unwrap();
    policies.create(&PostParams::default(), &policy).await.unwrap();
    let ready = status_of(&client, &ns.name, "team-upgrade", "Ready", |s| s.phase.as_deref() == Some("Ready")).await;
    assert_eq!(ready.digest, Some(digest(&good)));
    assert_eq!(ready.policy_name.as_deref(), Some("upgrade-default"));
    assert_eq!(ready.api_version.as_deref(), Some("pinot:policy@1.2.0"));
    assert!(ready.loaded_at.is_some());
    assert_eq!(
        controller.registry().get(&ns.name, "team-upgrade").unwrap().config,
        vec![("podReadyTimeoutSeconds".to_string(), "300".to_string())]
    );

    // The ConfigMap changes behind the spec's back: digest mismatch, the old module stays.
    put_module(&client, &ns.name, &other).await;
    let rejected = status_of(&client, &ns.name, "team-upgrade", "DigestMismatch", |s| {
        s.reason.as_deref() == Some("DigestMismatch")
    })
    .await;
    assert_eq!(rejected.phase.as_deref(), Some("Rejected"));
    assert_eq!(rejected.digest, Some(digest(&good)), "the last good module stays active");
    assert!(rejected.message.unwrap().contains("stays active"));

    // The spec names the new module: it loads.
    policies
        .patch("team-upgrade", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"sha256": digest(&other)}})))
        .await
        .unwrap();
    let reloaded =
        status_of(&client, &ns.name, "team-upgrade", "new module Ready", |s| s.digest == Some(digest(&other))).await;
    assert_eq!(reloaded.phase.as_deref(), Some("Ready"));
    assert_eq!(controller.registry().get(&ns.name, "team-upgrade").unwrap().policy.digest, digest(&other));

    // A module that does not compile is rejected with that reason.
    let junk = b"\0asm\x01\0\0\0junk".to_vec();
    put_module(&client, &ns.name, &junk).await;
    policies
        .patch("team-upgrade", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"sha256": digest(&junk)}})))
        .await
        .unwrap();
    let broken = status_of(&client, &ns.name, "team-upgrade", "DoesNotCompile", |s| {
        s.reason.as_deref() == Some("DoesNotCompile")
    })
    .await;
    assert_eq!(broken.digest, Some(digest(&other)));

    let events = kubectl(&[
        "-n",
        &ns.name,
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=team-upgrade",
        "-o",
        "custom-columns=REASON:.reason",
    ])
    .await;
    assert!(events.contains("Loaded") && events.contains("Rejected"), "{events}");
    let wide = kubectl(&["-n", &ns.name, "get", "pinotpolicies"]).await;
    assert!(wide.contains("team-upgrade") && wide.contains("Rejected"), "{wide}");

    controller.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn policy_directory_changes_are_picked_up_including_a_configmap_symlink_swap() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-dir").await;
    let dir = std::env::temp_dir().join(format!("pinot-policy-dir-{}", ns.name));
    std::fs::create_dir_all(dir.join("..v1")).unwrap();
    let good = wasm("pinot_upgrade_default.wasm");
    let other = wasm("pinot_test_invalid_actions.wasm");
    // The layout of a mounted ConfigMap: team.wasm -> ..data/team.wasm, ..data -> ..v1.
    std::fs::write(dir.join("..v1/team.wasm"), &good).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/team.wasm", dir.join("team.wasm")).unwrap();
    let controller = OperatorHandle::start_with(&client, &ns.name, Some(dir.clone()));

    let policies: Api<PinotPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy: PinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy",
        "metadata": {"name": "from-dir"},
        "spec": {"kind": "upgrade", "module": {"file": "team.wasm"}, "sha256": digest(&good)},
    }))
    .unwrap();
    policies.create(&PostParams::default(), &policy).await.unwrap();
    status_of(&client, &ns.name, "from-dir", "Ready", |s| s.phase.as_deref() == Some("Ready")).await;

    // Kubernetes updates a mounted ConfigMap by swapping the ..data symlink atomically.
    std::fs::create_dir_all(dir.join("..v2")).unwrap();
    std::fs::write(dir.join("..v2/team.wasm"), &other).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    // Nothing in the spec changed: only the directory watch can have noticed.
    let rejected = status_of(&client, &ns.name, "from-dir", "the swap to be seen", |s| {
        s.reason.as_deref() == Some("DigestMismatch")
    })
    .await;
    assert_eq!(rejected.digest, Some(digest(&good)));

    // An in-place write of the file back to the reviewed module: Ready again.
    std::fs::write(dir.join("team.wasm"), &good).unwrap();
    status_of(&client, &ns.name, "from-dir", "the in-place write to be seen", |s| s.phase.as_deref() == Some("Ready"))
        .await;

    // Path escapes are refused.
    policies
        .patch(
            "from-dir",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"module": {"file": "../etc/passwd"}}})),
        )
        .await
        .unwrap();
    let invalid =
        status_of(&client, &ns.name, "from-dir", "InvalidSpec", |s| s.reason.as_deref() == Some("InvalidSpec")).await;
    assert!(invalid.message.unwrap().contains("plain file name"));

    controller.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
}

#[tokio::test]
async fn a_cluster_chooses_its_policies_by_name_or_gets_the_defaults() {
    use pinot_crds::PinotCluster;
    use pinot_testbed::harness::condition;

    let client = test_client().await;
    let ns = TestNamespace::create(&client, "policy-choice").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let cluster: PinotCluster = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
        "metadata": {"name": "teamed"},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"},
                 "policies": {"upgrade": "zone-at-a-time"},
                 "pools": [{"name": "controller", "role": "controller", "replicas": 1, "storage": {"ephemeral": true}}]},
    }))
    .unwrap();
    clusters.create(&PostParams::default(), &cluster).await.unwrap();
    let waiting = wait_for("Degraded naming the missing policy", Duration::from_secs(60), || async {
        let c = clusters.get("teamed").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("spec.policies.upgrade")).then_some(c)
    })
    .await;
    let policies = waiting.status.unwrap().policies;
    assert_eq!(
        policies.iter().map(|p| (p.kind.as_str(), p.name.as_str(), p.ready)).collect::<Vec<_>>(),
        vec![
            ("upgrade", "zone-at-a-time", false),
            ("scaling", "scaling-default", true),
            ("tenant", "tenant-default", true),
        ]
    );

    let module = wasm("pinot_upgrade_default.wasm");
    put_module(&client, &ns.name, &module).await;
    let policy: PinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy",
        "metadata": {"name": "zone-at-a-time"},
        "spec": {"kind": "upgrade", "module": {"configMap": {"name": "team-policies", "key": "upgrade.wasm"}}, "sha256": digest(&module)},
    }))
    .unwrap();
    Api::<PinotPolicy>::namespaced(client.clone(), &ns.name).create(&PostParams::default(), &policy).await.unwrap();
    let chosen = wait_for("the named policy to be in use", Duration::from_secs(60), || async {
        let c = clusters.get("teamed").await.ok()?;
        let p = c.status.as_ref()?.policies.iter().find(|p| p.kind == "upgrade")?.clone();
        (p.ready && condition(&c, "Degraded")?.0 == "False").then_some(p)
    })
    .await;
    assert_eq!(chosen.digest, Some(digest(&module)));

    operator.stop().await;
    ns.cleanup().await;
}
