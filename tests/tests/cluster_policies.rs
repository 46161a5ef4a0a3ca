//! ClusterPinotPolicy on the real apiserver: a platform team's policy, kept in the operator's
//! namespace, that clusters of every namespace may name; a PinotPolicy of the same name wins
//! in its namespace (even while its module is rejected: a team's broken policy never silently
//! becomes the platform's), and the cluster falls back to the shared one when it is deleted.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::ConfigMap};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use pinot_crds::{ClusterPinotPolicy, ClusterPolicyStatus, PinotCluster, PinotPolicy};
use pinot_operator::{
    policy::{bundled, runtime::digest},
    policy_controller::{LABEL_POLICY_MODULE, PolicySources},
};
use pinot_testbed::harness::{OperatorHandle, TestNamespace, kubectl, kubectl_unchecked, test_client, wait_for};
use serde_json::json;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(bundled::WASM_DIR).join(name)).unwrap()
}

async fn put_module(client: &Client, ns: &str, key: &str, bytes: &[u8]) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("policies".into()),
            labels: Some(BTreeMap::from([(LABEL_POLICY_MODULE.to_string(), "true".to_string())])),
            ..Default::default()
        },
        binary_data: Some(BTreeMap::from([(key.to_string(), ByteString(bytes.to_vec()))])),
        ..Default::default()
    };
    api.patch("policies", &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&cm)).await.unwrap();
}

async fn create_cluster(client: &Client, ns: &str, policy: &str) {
    let cluster: PinotCluster = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
        "metadata": {"name": "analytics"},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"},
                 "policies": {"upgrade": policy},
                 "pools": [{"name": "controller", "role": "controller", "replicas": 1, "storage": {"ephemeral": true}}]},
    }))
    .unwrap();
    Api::<PinotCluster>::namespaced(client.clone(), ns).create(&PostParams::default(), &cluster).await.unwrap();
}

/// The cluster's upgrade policy once `check` holds.
async fn upgrade_policy(
    client: &Client,
    ns: &str,
    what: &str,
    check: impl Fn(&ClusterPolicyStatus) -> bool,
) -> ClusterPolicyStatus {
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(what, Duration::from_secs(60), || async {
        let c = clusters.get("analytics").await.ok()?;
        let p = c.status?.policies.into_iter().find(|p| p.kind == "upgrade")?;
        check(&p).then_some(p)
    })
    .await
}

#[tokio::test]
async fn a_cluster_policy_serves_every_namespace_and_a_namespaced_one_of_the_same_name_wins() {
    let client = test_client().await;
    let platform = TestNamespace::create(&client, "platform").await;
    let team_a = TestNamespace::create(&client, "team-a").await;
    let team_b = TestNamespace::create(&client, "team-b").await;
    // One operator for the three namespaces (two handles sharing one policy registry); the
    // first loads the ClusterPinotPolicies, reading their modules from the platform namespace.
    let a = OperatorHandle::start_with_sources(
        &client,
        &team_a.name,
        PolicySources { platform_namespace: Some(platform.name.clone()), cluster_wide: true, ..Default::default() },
    );
    let b = OperatorHandle::start(&client, &team_b.name);

    let shared = wasm("pinot_upgrade_zone_at_a_time.wasm");
    let own = wasm("pinot_upgrade_default.wasm");
    put_module(&client, &platform.name, "zone.wasm", &shared).await;
    let name = format!("zone-upgrade-{}", &platform.name[platform.name.len() - 6..]);
    let cluster_policies: Api<ClusterPinotPolicy> = Api::all(client.clone());
    let policy: ClusterPinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "ClusterPinotPolicy",
        "metadata": {"name": name},
        "spec": {"kind": "upgrade", "module": {"configMap": {"name": "policies", "key": "zone.wasm"}},
                 "sha256": digest(&shared)},
    }))
    .unwrap();
    cluster_policies.create(&PostParams::default(), &policy).await.unwrap();
    wait_for("the ClusterPinotPolicy Ready", Duration::from_secs(60), || async {
        let p = cluster_policies.get(&name).await.ok()?;
        (p.status?.phase.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    let listed = kubectl(&["get", "clusterpinotpolicies", &name]).await;
    assert!(listed.contains("Ready") && listed.contains("upgrade-zone-at-a-time"), "{listed}");

    // Team A has no policy of that name: its cluster decides with the platform's.
    create_cluster(&client, &team_a.name, &name).await;
    let p = upgrade_policy(&client, &team_a.name, "team A on the shared policy", |p| p.ready).await;
    assert_eq!(p.source.as_deref(), Some(format!("ClusterPinotPolicy {name}").as_str()));
    assert_eq!(p.digest, Some(digest(&shared)));

    // Team B has its own of the same name: it wins in team B only.
    put_module(&client, &team_b.name, "own.wasm", &own).await;
    let team_policy = |sha: &str| -> PinotPolicy {
        serde_json::from_value(json!({
            "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy",
            "metadata": {"name": name},
            "spec": {"kind": "upgrade", "module": {"configMap": {"name": "policies", "key": "own.wasm"}}, "sha256": sha},
        }))
        .unwrap()
    };
    Api::<PinotPolicy>::namespaced(client.clone(), &team_b.name)
        .create(&PostParams::default(), &team_policy(&digest(&own)))
        .await
        .unwrap();
    create_cluster(&client, &team_b.name, &name).await;
    let p = upgrade_policy(&client, &team_b.name, "team B on its own policy", |p| p.ready).await;
    assert_eq!(p.source.as_deref(), Some(format!("PinotPolicy {}/{name}", team_b.name).as_str()));
    assert_eq!(p.digest, Some(digest(&own)));

    // Team A writes a policy of that name whose module is rejected: its cluster does not
    // quietly stay on the platform's policy, it says its own policy is not loaded.
    let team_a_policies: Api<PinotPolicy> = Api::namespaced(client.clone(), &team_a.name);
    put_module(&client, &team_a.name, "own.wasm", &own).await;
    team_a_policies.create(&PostParams::default(), &team_policy(&digest(b"not this module"))).await.unwrap();
    let p = upgrade_policy(&client, &team_a.name, "team A's own policy named, not loaded", |p| !p.ready).await;
    let message = p.message.unwrap_or_default();
    assert!(message.contains(&format!("PinotPolicy {}/{name} is not loaded", team_a.name)), "{message}");

    // Deleted: back to the platform's.
    team_a_policies.delete(&name, &DeleteParams::default()).await.unwrap();
    let p = upgrade_policy(&client, &team_a.name, "team A back on the shared policy", |p| p.ready).await;
    assert_eq!(p.source.as_deref(), Some(format!("ClusterPinotPolicy {name}").as_str()));

    // The shared policy is deleted: team A's cluster says neither exists; team B is unaffected.
    cluster_policies.delete(&name, &DeleteParams::default()).await.unwrap();
    let p = upgrade_policy(&client, &team_a.name, "team A without a policy", |p| !p.ready).await;
    assert!(p.message.as_deref().unwrap_or_default().contains("neither PinotPolicy"), "{p:?}");
    assert!(
        upgrade_policy(&client, &team_b.name, "team B still on its own", |p| p.ready).await.digest
            == Some(digest(&own))
    );
    wait_for("the ClusterPinotPolicy gone", Duration::from_secs(30), || async {
        cluster_policies.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;

    a.stop().await;
    b.stop().await;
    for ns in [platform, team_a, team_b] {
        ns.cleanup().await;
    }
}

#[tokio::test]
async fn the_rbac_example_gives_shared_policies_to_the_platform_team_and_namespaces_to_product_teams() {
    let client = test_client().await;
    let platform = TestNamespace::create(&client, "rbac-platform").await;
    let team = TestNamespace::create(&client, "rbac-team").await;
    let other = TestNamespace::create(&client, "rbac-other").await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/rbac/policy-teams.yaml"),
    )
    .unwrap()
    .replace("namespace: pinot-operator", &format!("namespace: {}", platform.name))
    .replace("namespace: analytics", &format!("namespace: {}", team.name));
    let file = std::env::temp_dir().join(format!("{}-rbac.yaml", team.name));
    std::fs::write(&file, example).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;

    let ns = |n: &TestNamespace| Some(n.name.clone());
    let can = |group: &str, verb: &str, resource: &str, ns: Option<String>| {
        let mut args = vec!["auth".to_string(), "can-i".into(), verb.into(), resource.into()];
        args.extend(["--as=someone".to_string(), format!("--as-group={group}")]);
        args.extend(ns.map(|ns| format!("--namespace={ns}")));
        // `can-i` exits 1 for "no": its answer is what it prints.
        async move { kubectl_unchecked(&args.iter().map(String::as_str).collect::<Vec<_>>()).await.1.trim() == "yes" }
    };
    assert!(can("platform-team", "create", "clusterpinotpolicies", None).await);
    assert!(can("platform-team", "create", "configmaps", ns(&platform)).await);
    assert!(!can("platform-team", "create", "pinotpolicies", ns(&team)).await, "teams own their namespaces");
    assert!(!can("team-analytics", "create", "clusterpinotpolicies", None).await);
    assert!(can("team-analytics", "list", "clusterpinotpolicies", None).await, "every team sees the shared ones");
    assert!(!can("team-analytics", "create", "configmaps", ns(&platform)).await, "nor their modules");
    assert!(can("team-analytics", "create", "pinotpolicies", ns(&team)).await);
    assert!(can("team-analytics", "patch", "pinotclusters", ns(&team)).await);
    assert!(!can("team-analytics", "create", "pinotpolicies", ns(&other)).await, "only in its own namespace");
    for ns in [platform, team, other] {
        ns.cleanup().await;
    }
}
