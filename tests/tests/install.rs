//! The install manifests (`deploy/kustomize/base`): they render, the apiserver accepts them,
//! and the operator does its whole job (install, schemas and tables, scaling in, an upgrade)
//! with exactly the permissions of their ServiceAccount and nothing more.

use std::time::Duration;

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{Api, api::PostParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, controller_url_template, kubeconfig_path, kubectl, repo_root,
    simulator_admin_url, test_client, wait_for,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The rendered base, every document as JSON.
async fn rendered() -> Vec<Value> {
    let dir = repo_root().join("deploy/kustomize/base");
    let yaml = kubectl(&["kustomize", dir.to_str().unwrap()]).await;
    serde_yaml::Deserializer::from_str(&yaml).map(|d| Value::deserialize(d).unwrap()).collect()
}

/// The base moved into namespace `ns`, cluster-wide names suffixed with it, without the
/// Namespace object; written to a file for kubectl.
fn for_namespace(docs: &[Value], ns: &str) -> std::path::PathBuf {
    let mut out = Vec::new();
    for doc in docs {
        let mut doc = doc.clone();
        match doc["kind"].as_str().unwrap_or_default() {
            "Namespace" => continue,
            "ClusterRole" => doc["metadata"]["name"] = json!(format!("pinot-operator-{ns}")),
            "ClusterRoleBinding" => {
                doc["metadata"]["name"] = json!(format!("pinot-operator-{ns}"));
                doc["roleRef"]["name"] = json!(format!("pinot-operator-{ns}"));
                doc["subjects"][0]["namespace"] = json!(ns);
            }
            "RoleBinding" => doc["subjects"][0]["namespace"] = json!(ns),
            _ => {}
        }
        if doc["metadata"]["namespace"].is_string() {
            doc["metadata"]["namespace"] = json!(ns);
        }
        out.push(serde_yaml::to_string(&doc).unwrap());
    }
    let file = std::env::temp_dir().join(format!("{ns}-install.yaml"));
    std::fs::write(&file, out.join("---\n")).unwrap();
    file
}

#[tokio::test]
async fn the_manifests_render_apply_and_ask_for_a_locked_down_pod() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "install").await;
    let docs = rendered().await;
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["serviceAccountName"], "pinot-operator");
    assert!(container["args"].as_array().unwrap().iter().any(|a| a == "--leader-elect"), "{container}");
    // The apiserver accepts every object as rendered (server-side dry run).
    let file = for_namespace(&docs, &ns.name);
    kubectl(&["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", file.to_str().unwrap()]).await;
    ns.cleanup().await;
}

/// The Helm chart rendered by Helm's engine (`deploy/helm/render.sh`), every document as JSON;
/// `Err` with Helm's message when rendering fails.
async fn helm(release: &str, namespace: &str, values: Value) -> Result<Vec<Value>, String> {
    let script = repo_root().join("deploy/helm/render.sh");
    let out = tokio::process::Command::new(&script)
        .args([release, namespace, &values.to_string()])
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let yaml = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect())
}

#[tokio::test]
async fn the_helm_chart_renders_the_same_operator_and_the_apiserver_accepts_it() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "install-helm").await;
    let release = format!("po-{}", ns.name);
    let docs = helm(&release, &ns.name, json!({})).await.unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"]
    {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(!kinds.contains(&"ServiceMonitor"), "off by default");
    // The same permissions and the same locked-down pod as the kustomize base.
    let base = rendered().await;
    let rules = |docs: &[Value], kind: &str| docs.iter().find(|d| d["kind"] == kind).map(|d| d["rules"].clone());
    assert_eq!(rules(&docs, "ClusterRole"), rules(&base, "ClusterRole"), "the chart and the base grant the same");
    assert_eq!(rules(&docs, "Role"), rules(&base, "Role"));
    let pod =
        |docs: &[Value]| docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"].clone();
    let (chart_pod, base_pod) = (pod(&docs), pod(&base));
    assert_eq!(chart_pod["securityContext"], base_pod["securityContext"]);
    assert_eq!(chart_pod["containers"][0]["securityContext"], base_pod["containers"][0]["securityContext"]);
    assert_eq!(chart_pod["containers"][0]["resources"], base_pod["containers"][0]["resources"]);
    assert!(chart_pod["containers"][0]["args"].as_array().unwrap().iter().any(|a| a == "--leader-elect"));
    let file = std::env::temp_dir().join(format!("{}-helm.yaml", ns.name));
    std::fs::write(&file, docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n"))
        .unwrap();
    kubectl(&["apply", "--server-side", "--dry-run=server", "-f", file.to_str().unwrap()]).await;

    // Values do what they say; a second replica without leader election is refused.
    let scoped = helm(
        &release,
        &ns.name,
        json!({
            "watchNamespace": "analytics",
            "clusterDomain": "corp.example",
            "metrics": {"serviceMonitor": {"enabled": true}}
        }),
    )
    .await
    .unwrap();
    assert!(scoped.iter().any(|d| d["kind"] == "ServiceMonitor"));
    let args = pod(&scoped)["containers"][0]["args"].as_array().unwrap().clone();
    assert!(args.iter().any(|a| a == "--namespace=analytics"), "{args:?}");
    assert!(args.iter().any(|a| a == "--cluster-domain=corp.example"), "{args:?}");
    // Policies from registries, and only signed ones: flags, and the keys mounted where the flag
    // points.
    let trusted = helm(
        &release,
        &ns.name,
        json!({"policies": {
            "insecureRegistries": ["registry.local:5000"],
            "registryCA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "trustedKeys": {"platform.pub": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"}
        }}),
    )
    .await
    .unwrap();
    let args = pod(&trusted)["containers"][0]["args"].as_array().unwrap().clone();
    for expected in [
        "--insecure-registry=registry.local:5000",
        "--registry-ca-file=/etc/pinot-operator/registry-ca/ca.crt",
        "--trusted-keys=/etc/pinot-operator/trusted-keys",
        "--max-module-bytes=67108864",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    let keys =
        trusted.iter().find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == format!("{release}-trusted-keys"));
    assert!(keys.is_some_and(|k| k["data"]["platform.pub"].as_str().unwrap().contains("BEGIN PUBLIC KEY")), "{keys:?}");
    let mounts = pod(&trusted)["containers"][0]["volumeMounts"].clone();
    assert!(
        mounts.as_array().unwrap().iter().any(|m| m["mountPath"] == "/etc/pinot-operator/trusted-keys"),
        "{mounts}"
    );
    let refused = helm(&release, &ns.name, json!({"leaderElection": {"enabled": false}})).await.unwrap_err();
    assert!(refused.contains("needs leaderElection.enabled"), "{refused}");
    ns.cleanup().await;
}

/// A kubeconfig for the test cluster that authenticates as `token`.
fn kubeconfig_with_token(token: &str, ns: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig_path()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let user = serde_yaml::to_value(json!([{"name": "operator-sa", "user": {"token": token}}])).unwrap();
    config["users"] = user;
    let contexts = config["contexts"].as_sequence_mut().unwrap();
    for c in contexts.iter_mut() {
        c["context"]["user"] = "operator-sa".into();
    }
    let file = std::env::temp_dir().join(format!("{ns}-operator-kubeconfig"));
    std::fs::write(&file, serde_yaml::to_string(&config).unwrap()).unwrap();
    file
}

#[tokio::test]
async fn the_operator_does_its_job_with_exactly_the_service_accounts_permissions() {
    let admin = test_client().await;
    let ns = TestNamespace::create(&admin, "install-rbac").await;
    let docs = rendered().await;
    let rbac: Vec<Value> = docs
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding")
            )
        })
        .cloned()
        .collect();
    let file = for_namespace(&rbac, &ns.name);
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: vec![], expiration_seconds: Some(3600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("pinot-operator", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let client = pinot_operator::kube_client(Some(&kubeconfig_with_token(&token, &ns.name))).await.unwrap();
    // The token is the ServiceAccount: it may not, for instance, list every Secret.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    assert!(secrets.list(&Default::default()).await.is_err(), "the ServiceAccount can list secrets");
    // As deployed: with leader election, its Lease in its own namespace, and loading the
    // ClusterPinotPolicies (the operator of every namespace does).
    let operator = OperatorHandle::start_elected_with(
        &client,
        &ns.name,
        pinot_operator::leader::LeaderConfig::new(ns.name.clone(), "install-test"),
        pinot_operator::policy_controller::PolicySources {
            cluster_wide: true,
            platform_namespace: Some(ns.name.clone()),
            ..Default::default()
        },
    );

    // Install a cluster whose pods name a ServiceAccount, a PriorityClass and a Secret (each
    // read by the operator before it rolls anything out).
    let priority_class = format!("{}-pinot", ns.name);
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": priority_class}, "value": 1000},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rb-env", "namespace": ns.name}, "stringData": {"TEAM": "data"}}]});
    let file = std::env::temp_dir().join(format!("{}-objects.json", ns.name));
    std::fs::write(&file, objects.to_string()).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    let cluster = json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": "rb"},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"}, "upgrade": {"drainSeconds": 0},
            "podOverrides": {"serviceAccountName": "default", "priorityClassName": priority_class, "envFrom": [{"secretRef": {"name": "rb-env"}}]},
            "exposure": {"controllerIngress": {"host": "pinot.example.com"}},
            "pools": [
                {"name": "controller", "role": "controller", "replicas": 1, "storage": {"ephemeral": true}, "podOverrides": {"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "300"}}},
                {"name": "broker", "role": "broker", "replicas": 1, "podOverrides": {"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "300"}}},
                {"name": "broker-b", "role": "broker", "replicas": 1, "podOverrides": {"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "300"}}},
                {"name": "server", "role": "server", "replicas": 2, "storage": {"ephemeral": true}, "podOverrides": {"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "300"}}}]}});
    let file = std::env::temp_dir().join(format!("{}-rb.json", ns.name));
    std::fs::write(&file, cluster.to_string()).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/rb", "--timeout=120s"]).await;

    // A schema, a table and a team policy (one whose module is not there: rejected, with the
    // reason in its status) through their resources.
    let resources = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy", "metadata": {"name": "team"},
         "spec": {"kind": "upgrade", "module": {"configMap": {"name": "team-policies", "key": "upgrade.wasm"}},
                  "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}},
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotSchema", "metadata": {"name": "events"},
         "spec": {"cluster": "rb", "deletionPolicy": "Delete", "schema": {"schemaName": "events", "dimensionFieldSpecs": [{"name": "id", "dataType": "STRING"}]}}},
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTable", "metadata": {"name": "events"},
         "spec": {"cluster": "rb", "schemaRef": "events", "deletionPolicy": "Delete", "offline": {"segmentsConfig": {"replication": "1"}, "tableIndexConfig": {}}}}]});
    std::fs::write(&file, resources.to_string()).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Ready", "pinottable/events", "--timeout=60s"]).await;
    let policies: Api<pinot_crds::PinotPolicy> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("the team policy rejected, saying why", Duration::from_secs(60), || async {
        let status = policies.get("team").await.ok()?.status?;
        (status.phase.as_deref() == Some("Rejected")).then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/segments", simulator_admin_url(&ns.name, "rb")))
        .json(&json!({"table": "events_OFFLINE", "count": 6}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // Scale the servers in (drain, disable, remove, drop), remove a pool, upgrade every pod.
    let patch = json!([{"op": "replace", "path": "/spec/pools/3/replicas", "value": 1}]).to_string();
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/rb", "--type=json", "-p", &patch]).await;
    let url = controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "rb");
    wait_for("one server left in Pinot", Duration::from_secs(120), || async {
        let list: Value = reqwest::get(format!("{url}/instances")).await.ok()?.json().await.ok()?;
        let servers = list["instances"]
            .as_array()?
            .iter()
            .filter(|i| i.as_str().is_some_and(|s| s.starts_with("Server_")))
            .count();
        (servers == 1).then_some(())
    })
    .await;
    // Remove the second broker pool: scaled in, then its objects deleted.
    let patch = json!([{"op": "remove", "path": "/spec/pools/2"}]).to_string();
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/rb", "--type=json", "-p", &patch]).await;
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("the broker-b pool's objects deleted", Duration::from_secs(120), || async {
        statefulsets.get_opt("rb-broker-b").await.ok()?.is_none().then_some(())
    })
    .await;
    kubectl(&[
        "-n",
        &ns.name,
        "patch",
        "pinotcluster/rb",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"apachepinot/pinot:1.3.0"}}"#,
    ])
    .await;
    let clusters: Api<PinotCluster> = Api::namespaced(admin.clone(), &ns.name);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("upgraded, available, nothing degraded", Duration::from_secs(180), || async {
        let c = clusters.get("rb").await.ok()?;
        let list = pods.list(&Default::default()).await.ok()?;
        let upgraded = list.items.len() == 3
            && list.items.iter().all(|p| {
                p.spec.as_ref().and_then(|s| s.containers[0].image.as_deref()) == Some("apachepinot/pinot:1.3.0")
            });
        let done = upgraded
            && c.status.as_ref()?.observed_generation == c.metadata.generation
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False")
            && condition(&c, "Degraded").is_some_and(|(s, _)| s == "False")
            && c.spec.image == "apachepinot/pinot:1.3.0";
        done.then_some(())
    })
    .await;
    // The controller's Ingress goes with its field.
    let patch = json!([{"op": "remove", "path": "/spec/exposure"}]).to_string();
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/rb", "--type=json", "-p", &patch]).await;
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("the Ingress deleted", Duration::from_secs(60), || async {
        ingresses.get_opt("rb-controller").await.ok()?.is_none().then_some(())
    })
    .await;
    // A tenant: its status written (it cannot be placed: the one server left holds the table's
    // segments, and a server serving segments is never moved).
    let tenant = json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTenant", "metadata": {"name": "sales"},
        "spec": {"cluster": "rb", "tenantRole": "SERVER", "offlineInstances": 1, "realtimeInstances": 1, "deletionPolicy": "Delete"}});
    std::fs::write(&file, tenant.to_string()).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    let tenants: Api<pinot_crds::PinotTenant> = Api::namespaced(admin.clone(), &ns.name);
    wait_for("the tenant's status written", Duration::from_secs(60), || async {
        let t = tenants.get("sales").await.ok()?;
        t.status.is_some_and(|s| !s.conditions.is_empty()).then_some(())
    })
    .await;
    // Its events were written under its own name.
    let events = kubectl(&["-n", &ns.name, "get", "events.events.k8s.io", "-o", "json"]).await;
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<&str> = events["items"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    for reason in ["Created", "ScalingStep", "RestartedPod"] {
        assert!(reasons.contains(&reason), "event {reason} in {reasons:?}");
    }
    operator.stop().await;

    // Least privilege: every permission the manifests grant was used by this scenario, except
    // those it cannot reach (said why), and nothing was denied. The local control plane audits
    // what service accounts do (make kube-up); another cluster is checked when it has the same
    // log beside its kubeconfig.
    let audit_log = kubeconfig_path().parent().unwrap().join("logs/audit.log");
    if let Ok(text) = std::fs::read_to_string(&audit_log) {
        let user = format!("system:serviceaccount:{}:pinot-operator", ns.name);
        let mut used = std::collections::BTreeSet::new();
        for event in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
            if event["user"]["username"] != user.as_str() || event["stage"] != "ResponseComplete" {
                continue;
            }
            let code = event["responseStatus"]["code"].as_i64().unwrap_or(0);
            let r = &event["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
                None => r["resource"].as_str().unwrap_or("").to_string(),
            };
            if resource == "secrets" && event["verb"] == "list" {
                continue; // the test's own probe above, denied on purpose
            }
            let key = (
                r["apiGroup"].as_str().unwrap_or("").to_string(),
                resource,
                event["verb"].as_str().unwrap_or("").to_string(),
            );
            assert!(code != 403, "denied: {key:?}: {event}");
            used.insert(key);
        }
        assert!(!used.is_empty(), "no audit events of {user} in {}", audit_log.display());
        // Granted but out of this scenario's reach.
        let unreachable: &[(&str, &str, &str, &str)] = &[
            ("events.k8s.io", "events", "patch", "only when an event repeats (it is counted up in place)"),
            (
                "",
                "pods",
                "patch",
                "the queries-disabled-at annotation, only when a policy turns a server's queries off (the bundled ones never do)",
            ),
            // A server-side apply that creates an object is audited as patch but authorized as
            // create too (without create the install is forbidden).
            ("apps", "statefulsets", "create", "server-side apply creating"),
            ("", "services", "create", "server-side apply creating"),
            ("", "configmaps", "create", "server-side apply creating"),
            ("policy", "poddisruptionbudgets", "create", "server-side apply creating"),
            ("networking.k8s.io", "ingresses", "create", "server-side apply creating"),
            (
                "apps",
                "statefulsets",
                "get",
                "only while a pool's StatefulSet is replaced for a volume expansion (production.rs)",
            ),
            ("", "services", "get", "only for client Services of type NodePort or LoadBalancer (production.rs)"),
            ("", "persistentvolumeclaims", "list", "only when a pool's storage.size changes (production.rs grows one)"),
            ("", "persistentvolumeclaims", "patch", "only when a pool's volumes grow (production.rs)"),
            ("storage.k8s.io", "storageclasses", "get", "only when a pool's storage.size changes (production.rs)"),
            ("", "secrets", "create", "only for spec.security.basicAuth: the service token (production.rs)"),
            (
                "pinot.controlplane.dev",
                "clusterpinotpolicies",
                "patch",
                "its finalizer, only while a ClusterPinotPolicy exists (cluster_policies.rs)",
            ),
            (
                "pinot.controlplane.dev",
                "clusterpinotpolicies/status",
                "patch",
                "only while a ClusterPinotPolicy exists (cluster_policies.rs)",
            ),
            ("", "secrets", "patch", "only for spec.security.basicAuth: the service token (production.rs)"),
        ];
        let mut granted = Vec::new();
        for doc in rbac.iter().filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role"))) {
            for rule in doc["rules"].as_array().unwrap() {
                for group in rule["apiGroups"].as_array().unwrap() {
                    for resource in rule["resources"].as_array().unwrap() {
                        for verb in rule["verbs"].as_array().unwrap() {
                            granted.push((
                                group.as_str().unwrap().to_string(),
                                resource.as_str().unwrap().to_string(),
                                verb.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                }
            }
        }
        let unused: Vec<_> = granted
            .iter()
            .filter(|g| !used.contains(*g))
            .filter(|(g, r, v)| !unreachable.iter().any(|(ug, ur, uv, _)| ug == g && ur == r && uv == v))
            .collect();
        assert!(
            unused.is_empty(),
            "granted but never used (drop them, or say why they are needed): {unused:?}\nused: {used:?}"
        );
    } else {
        assert!(
            std::env::var_os("PINOT_TEST_KUBECONFIG").is_some_and(|p| !p.to_string_lossy().contains(".local/kube")),
            "the local control plane writes {}; run make kube-up again",
            audit_log.display()
        );
    }
    kubectl(&["delete", "clusterrolebinding", &format!("pinot-operator-{}", ns.name)]).await;
    kubectl(&["delete", "clusterrole", &format!("pinot-operator-{}", ns.name)]).await;
    kubectl(&["delete", "priorityclass", &priority_class]).await;
    ns.cleanup().await;
}

/// Pinot metric names the official image's JMX exporter produces, each with where that was read
/// (`host/src/cluster/pinot-facts/deep-storage.md` §8: the exporter rules of
/// `docker/images/pinot/etc/jmx_prometheus_javaagent/configs/<role>.yml` applied to the metric
/// enums of `pinot-common/.../metrics/`, at 1.2.0 and 1.3.0+).
const PINOT_METRICS: &[(&str, &str)] = &[
    ("pinot_controller_percentSegmentsAvailable_Value", "ControllerGauge.PERCENT_SEGMENTS_AVAILABLE, all releases"),
    ("pinot_controller_percentOfReplicas_Value", "ControllerGauge.PERCENT_OF_REPLICAS, all releases"),
    ("pinot_controller_segmentsInErrorState_Value", "ControllerGauge.SEGMENTS_IN_ERROR_STATE, all releases"),
    ("pinot_controller_segmentCount_Value", "ControllerGauge.SEGMENT_COUNT, all releases"),
    ("pinot_controller_pinotControllerLeader_Value", "ControllerGauge.PINOT_CONTROLLER_LEADER, all releases"),
    ("pinot_broker_queries_Count", "BrokerMeter.QUERIES per table, all releases"),
    ("pinot_broker_queryTotalTimeMs_99thPercentile", "BrokerTimer.QUERY_TOTAL_TIME_MS per table, all releases"),
    (
        "pinot_broker_brokerResponsesWithProcessingExceptions_Count",
        "BrokerMeter.BROKER_RESPONSES_WITH_PROCESSING_EXCEPTIONS, all releases",
    ),
    ("pinot_broker_unhealthyServers_Value", "BrokerGauge.UNHEALTHY_SERVERS, all releases"),
    ("pinot_server_queries_Count", "ServerMeter.QUERIES, all releases"),
    ("pinot_server_realtimeRowsConsumed_Count", "ServerMeter.REALTIME_ROWS_CONSUMED, 1.3.0 and later"),
    ("pinot_server_realtime_rowsConsumed_Count", "ServerMeter.REALTIME_ROWS_CONSUMED, 1.2.0's rule"),
    ("pinot_server_realtimeIngestionDelayMs_Value", "ServerGauge.REALTIME_INGESTION_DELAY_MS, all releases"),
    ("pinot_server_segmentCount_Value", "ServerGauge.SEGMENT_COUNT, all releases"),
    ("pinot_minion_numberTasksFailed_Count", "MinionMeter.NUMBER_TASKS_FAILED, all releases"),
];

/// The metric names a PromQL expression selects: identifiers not followed by `(` (functions,
/// aggregations), not inside `{...}` (label matchers) or `by (...)`/`[...]`, and not keywords.
fn promql_metrics(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "or",
        "and",
        "unless",
        "on",
        "ignoring",
        "bool",
        "offset", // operators
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile", // aggregations
        "count_values",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let (mut out, mut i, mut depth_braces, mut in_by, mut in_range, mut in_string) = (vec![], 0, 0, 0, false, false);
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            in_string = c != '"';
            i += 1;
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => in_range = true,
            ']' => in_range = false,
            ')' if in_by > 0 => in_by -= 1,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
                if word == "by" || word == "without" {
                    in_by += 1;
                    // skip to the opening parenthesis
                    while i < chars.len() && chars[i] != '(' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                if depth_braces == 0
                    && in_by == 0
                    && !in_range
                    && next != Some('(')
                    && !KEYWORDS.contains(&word.as_str())
                {
                    out.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The Grafana dashboard the chart ships: rendered by Helm, every panel has a query, and every
/// query names only metrics that exist (the operator's own, or Pinot's as its exporter names
/// them); the Pinot pods' PodMonitor gives the `cluster` label its variables filter on.
#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let docs = helm(
        "po",
        "monitoring",
        json!({"grafanaDashboard": {"enabled": true}, "pinotMetrics": {"podMonitor": {"enabled": true}}}),
    )
    .await
    .unwrap();
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "po-dashboard")
        .expect("the dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value = serde_json::from_str(cm["data"]["pinot-control-plane.json"].as_str().unwrap()).unwrap();
    let operator = pinot_operator::metrics::series_names();
    let mut seen = std::collections::BTreeSet::new();
    let panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row").collect();
    assert!(panels.len() >= 15, "{} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = promql_metrics(expr);
            assert!(!names.is_empty(), "{title}: {expr} names no metric");
            for name in names {
                let known = operator.contains(&name) || PINOT_METRICS.iter().any(|(m, _)| *m == name);
                assert!(known, "{title}: {name} is not a metric the operator or Pinot's exporter exports ({expr})");
                seen.insert(name);
            }
            if expr.contains("pinot_operator_") {
                assert!(!expr.contains("$cluster"), "{title}: the operator's metrics have no cluster label");
            } else {
                assert!(expr.contains("cluster=~\"$cluster\""), "{title}: filters on the dashboard's cluster");
            }
        }
    }
    // Every operator metric but the reload counter is on the dashboard.
    for name in ["pinot_operator_clusters", "pinot_operator_reconciles_total", "pinot_operator_pinot_requests_total"] {
        assert!(seen.contains(name), "{name} on the dashboard");
    }
    let monitor = docs.iter().find(|d| d["kind"] == "PodMonitor").expect("the PodMonitor");
    let targets: Vec<&str> = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["targetLabel"].as_str())
        .collect();
    assert!(targets.contains(&"cluster"), "{targets:?}");
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "metrics", "the port the operator names");
    assert_eq!(promql_metrics("sum by (le, kind) (rate(a_b_bucket{x=\"y\"}[5m])) or b"), ["a_b_bucket", "b"]);
}
