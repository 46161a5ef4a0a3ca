//! `pinot-operator plan` against a live cluster on the local control plane: it observes the
//! cluster as the operator does, shows each policy's actions with the guardrails' verdict and
//! what the operator would carry out, tries a module given on the command line, writes the
//! observed state for `policy test --state`, and changes nothing.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use pinot_crds::PinotCluster;
use pinot_operator::policy::bundled;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, controller_url_template, kubeconfig_path, kubectl, operator_binary,
    test_client, wait_for,
};

const CLUSTER: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: planned
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  upgrade:
    podReadyTimeoutSeconds: 5
  pools:
    - name: controller
      role: controller
      storage: {ephemeral: true}
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: broker
      role: broker
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: server
      role: server
      storage: {ephemeral: true}
      replicas: 2
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;

async fn plan(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(operator_binary())
        .arg("plan")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .env("PINOT_CONTROLLER_URL_TEMPLATE", controller_url_template())
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn pod_uids(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=planned")).await.unwrap();
    pods.iter().map(|p| (p.name_any(), p.uid().unwrap())).collect()
}

#[tokio::test]
async fn plan_shows_what_the_policies_would_do_and_writes_nothing() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "plan").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}-planned.yaml", ns.name));
    std::fs::write(&file, CLUSTER).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/planned", "--timeout=180s"]).await;
    let target = format!("{}/planned", ns.name);

    // Settled: every policy is asked and nothing is to be done.
    let (ok, out, err) = plan(&[&target]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("PinotCluster {target}:")), "{out}");
    assert!(out.contains("upgrade policy: bundled: upgrade-default"), "{out}");
    assert!(out.contains("scaling policy: bundled: scaling-default"), "{out}");
    assert!(out.contains("=> the operator would do nothing"), "{out}");

    // The status says the same of the operator's own last decisions.
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let c = clusters.get("planned").await.unwrap();
    let upgrade = c.status.unwrap().policies.into_iter().find(|p| p.kind == "upgrade").unwrap();
    assert_eq!(upgrade.module.as_deref(), Some("upgrade-default 0.1.0"));
    assert_eq!(upgrade.last_decision.as_deref(), Some("do nothing"));
    assert!(upgrade.decided_at.is_some());

    // A new image, with an upgrade policy that is not loaded: the operator applies the new pod
    // templates but restarts nothing.
    let patch = serde_json::json!({"spec": {"image": "apachepinot/pinot:1.3.0", "policies": {"upgrade": "not-there"}}});
    clusters.patch("planned", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_for("the new templates applied and the upgrade policy missing", Duration::from_secs(60), || async {
        let c = clusters.get("planned").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("not-there")).then_some(())
    })
    .await;
    let before = pod_uids(&client, &ns.name).await;

    let (ok, out, err) = plan(&[&target]).await;
    assert!(ok, "{err}");
    assert!(out.contains("upgrade policy: not loaded") && out.contains("not-there"), "{out}");

    // Trying the bundled default on it: the first restart it would make, allowed.
    let module = Path::new(bundled::WASM_DIR).join("pinot_upgrade_default.wasm");
    let module = module.to_str().unwrap();
    let (ok, out, err) = plan(&[&target, "--module", module]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("upgrade policy: --module {module}: upgrade-default")), "{out}");
    assert!(out.contains("  allowed  restart-pod planned-"), "{out}");
    assert!(out.contains("=> the operator would carry out: restart-pod planned-"), "{out}");

    // The state it decided from, as `policy test --state` reads it: the same decision.
    let (ok, yaml, err) = plan(&[&target, "--module", module, "--output", "yaml"]).await;
    assert!(ok, "{err}");
    let state = std::env::temp_dir().join(format!("{}-state.yaml", ns.name));
    std::fs::write(&state, &yaml).unwrap();
    let test = tokio::process::Command::new(operator_binary())
        .args(["policy", "test", module, "--state", state.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let tested = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{tested} {}", String::from_utf8_lossy(&test.stderr));
    assert!(tested.contains("allowed  restart-pod planned-"), "{tested}");

    // Nothing was written: no pod restarted, the cluster's status still says the policy is
    // missing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pod_uids(&client, &ns.name).await, before, "plan restarted nothing");
    let c = clusters.get("planned").await.unwrap();
    assert!(condition(&c, "Degraded").is_some_and(|(s, m)| s == "True" && m.contains("not-there")));

    // A cluster that does not exist, and bad output.
    let (ok, _, err) = plan(&[&format!("{}/nope", ns.name)]).await;
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, _, err) = plan(&[&target, "--output", "json"]).await;
    assert!(!ok && err.contains("--output"), "{err}");

    operator.stop().await;
    ns.cleanup().await;
}
