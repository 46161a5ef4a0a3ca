//! Scale proof: many PinotClusters at once, against the operator as a separate process.
//!
//! `make kube-up`, then `make bench-scale` (which checks the cluster before building; or `cargo
//! bench -p pinot-testbed --bench scale`). Creates `PINOT_BENCH_CLUSTERS` (default 1000)
//! PinotClusters of 4 pools of 1 replica each in one namespace, with the release operator running
//! as its own process under the manifests' ServiceAccount (so the apiserver's audit log tells its
//! requests apart), and prints: the time until every cluster is Available, the CPU seconds the
//! operator process spent (the apiserver, scheduler and simulator are other processes), its peak
//! RSS, and, over `PINOT_BENCH_QUIET_SECONDS` (default 60) once everything is Available, its CPU
//! use and the Kubernetes API requests per second it makes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    TestNamespace, condition, controller_url_template, kubeconfig_path, kubectl, repo_root, test_client,
};
use serde::Deserialize;
use serde_json::{Value, json};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process, from /proc.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, hwm)
}

/// Requests of `user` in the apiserver's audit log (and the file it last rotated to), each as
/// when it was received and "verb resource[/subresource]".
fn audited_requests(log: &Path, user: &str) -> Vec<(Timestamp, String)> {
    let rotated = std::fs::read_dir(log.parent().unwrap())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != log && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("audit")));
    let user = format!("\"username\":\"{user}\"");
    rotated
        .chain([log.to_path_buf()])
        .flat_map(|file| {
            std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>()
        })
        .filter(|l| l.contains("\"ResponseComplete\"") && l.contains(&user))
        .filter_map(|l| {
            let v: Value = serde_json::from_str(&l).ok()?;
            let at: Timestamp = v["requestReceivedTimestamp"].as_str()?.parse().ok()?;
            let o = &v["objectRef"];
            let sub = o["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
            Some((at, format!("{} {}{sub}", v["verb"].as_str().unwrap_or("?"), o["resource"].as_str().unwrap_or("?"))))
        })
        .collect()
}

async fn service_account_kubeconfig(client: &kube::Client, ns: &str) -> PathBuf {
    let dir = repo_root().join("deploy/kustomize/base");
    let yaml = kubectl(&["kustomize", dir.to_str().unwrap()]).await;
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(&yaml) {
        let mut doc = Value::deserialize(d).unwrap();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if !matches!(kind.as_str(), "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding") {
            continue;
        }
        if kind.starts_with("Cluster") {
            doc["metadata"]["name"] = json!(format!("pinot-operator-{ns}"));
        }
        if kind == "ClusterRoleBinding" {
            doc["roleRef"]["name"] = json!(format!("pinot-operator-{ns}"));
        }
        if kind.ends_with("Binding") {
            doc["subjects"][0]["namespace"] = json!(ns);
        }
        if doc["metadata"]["namespace"].is_string() {
            doc["metadata"]["namespace"] = json!(ns);
        }
        docs.push(serde_yaml::to_string(&doc).unwrap());
    }
    let file = std::env::temp_dir().join(format!("{ns}-rbac.yaml"));
    std::fs::write(&file, docs.join("---\n")).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: vec![], expiration_seconds: Some(24 * 3600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("pinot-operator", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    config["users"] = serde_yaml::to_value(json!([{"name": "operator-sa", "user": {"token": token}}])).unwrap();
    for c in config["contexts"].as_sequence_mut().unwrap() {
        c["context"]["user"] = "operator-sa".into();
    }
    let path = std::env::temp_dir().join(format!("{ns}-operator-kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// The sum of a counter over all its label sets in the operator's `/metrics`.
async fn counter(metrics_addr: &str, name: &str) -> f64 {
    let text = match reqwest::get(format!("http://{metrics_addr}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return f64::NAN,
    };
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A free local port for the operator's metrics.
fn metrics_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn start_operator(kubeconfig: &Path, ns: &str, metrics_addr: &str) -> Child {
    // Its own target directory: built with the bench's features, the shared dependencies would
    // be rebuilt on every run, once for the bench and once for the operator.
    let target = repo_root().join("target/bench-operator");
    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "pinot-operator", "--target-dir", target.to_str().unwrap()])
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(status.success(), "building the release operator");
    Command::new(target.join("release/pinot-operator"))
        .args(["run", "--kubeconfig", kubeconfig.to_str().unwrap(), "--namespace", ns, "--metrics-addr", metrics_addr])
        .env("PINOT_CONTROLLER_URL_TEMPLATE", controller_url_template())
        .env("RUST_LOG", std::env::var("PINOT_BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()))
        // Its log, for a look at what it did (`PINOT_BENCH_OPERATOR_LOG` sets the filter).
        .stdout(std::fs::File::create(target.join("operator.log")).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn cluster(i: u64) -> Value {
    let fast = json!({"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "200"}});
    let pool = |name: &str| json!({"name": name, "role": name, "replicas": 1, "storage": {"ephemeral": true}, "podOverrides": fast});
    json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": format!("c{i:04}")},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"},
                 "upgrade": {"parallelInstall": true},
                 "pools": [pool("controller"), pool("broker"), pool("server"), pool("minion")]},
    })
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_number("PINOT_BENCH_CLUSTERS", 1000);
    let quiet = Duration::from_secs(env_number("PINOT_BENCH_QUIET_SECONDS", 60));
    let client = test_client().await;
    // Each cluster has 4 pods; the simulated Nodes hold 110 each.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let room: u64 = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("pods")?.0.parse::<u64>().ok())
        .sum();
    assert!(
        room >= 4 * n,
        "{n} clusters need {} pods but the Nodes hold {room}: restart the local control plane with more \
         simulated Nodes (`make kube-down`, then `PINOT_SIM_NODES_PER_ZONE={} make kube-up`)",
        4 * n,
        (4 * n).div_ceil(3 * 110) + 1
    );
    let ns = TestNamespace::create(&client, "bench-scale").await;
    let kubeconfig = service_account_kubeconfig(&client, &ns.name).await;
    let metrics = metrics_addr();
    let mut operator = start_operator(&kubeconfig, &ns.name, &metrics);
    let pid = operator.id();
    let user = format!("system:serviceaccount:{}:pinot-operator", ns.name);
    let audit_log = kubeconfig_path().parent().unwrap().join("logs/audit.log");

    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let start = Instant::now();
    let (cpu_before, _) = usage(pid);
    futures::future::join_all((0..n).map(|i| {
        let clusters = clusters.clone();
        async move {
            let c: PinotCluster = serde_json::from_value(cluster(i)).unwrap();
            clusters.create(&PostParams::default(), &c).await.unwrap();
        }
    }))
    .await;
    eprintln!("{n} PinotClusters created in {:?}", start.elapsed());
    let mut last_report = Instant::now();
    loop {
        let list = clusters.list(&ListParams::default()).await.unwrap();
        let available =
            list.items.iter().filter(|c| condition(c, "Available").is_some_and(|(s, _)| s == "True")).count() as u64;
        if available == n {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("{:?}: {available}/{n} Available", start.elapsed());
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let converged = start.elapsed();
    let (cpu_converged, rss_converged) = usage(pid);
    let passes = counter(&metrics, "pinot_operator_reconciles_total").await;
    let pinot_calls = counter(&metrics, "pinot_operator_pinot_requests_total").await;

    let quiet_from = Timestamp::now();
    let (cpu_quiet_start, _) = usage(pid);
    tokio::time::sleep(quiet).await;
    let (cpu_quiet_end, rss_peak) = usage(pid);
    let quiet_passes = counter(&metrics, "pinot_operator_reconciles_total").await - passes;
    let quiet_pinot_calls = counter(&metrics, "pinot_operator_pinot_requests_total").await - pinot_calls;
    let quiet_until = Timestamp::now();
    // The audit log is written a moment after each request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = audited_requests(&audit_log, &user);
    let _ = operator.kill();
    let _ = operator.wait();

    println!("| measure ({n} PinotClusters of 4 pools x 1 replica) | result | target |");
    println!("|---|---|---|");
    println!("| time until every cluster is Available | {:.0} s | — |", converged.as_secs_f64());
    println!("| operator CPU to converge | {:.1} s | ≤ 60 s |", cpu_converged - cpu_before);
    println!(
        "| operator peak RSS | {} MiB (at convergence {} MiB) | ≤ 300 MiB |",
        rss_peak / 1024,
        rss_converged / 1024
    );
    println!(
        "| operator CPU once quiet ({} s) | {:.2} % of a core | near zero |",
        quiet.as_secs(),
        100.0 * (cpu_quiet_end - cpu_quiet_start) / quiet.as_secs_f64()
    );
    let quiet_requests: Vec<&str> =
        requests.iter().filter(|(at, _)| (quiet_from..quiet_until).contains(at)).map(|(_, r)| r.as_str()).collect();
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for r in &quiet_requests {
        *by_kind.entry(r).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "| operator API requests once quiet | {:.2} /s ({} in {} s{}) | no polling |",
        quiet_requests.len() as f64 / quiet.as_secs_f64(),
        quiet_requests.len(),
        quiet.as_secs(),
        if kinds.is_empty() { String::new() } else { format!(": {}", kinds.join(", ")) }
    );
    println!(
        "| operator API requests to converge | {} | — |",
        requests.iter().filter(|(at, _)| *at < quiet_from).count()
    );
    println!("| reconciles to converge | {passes} ({:.1} per cluster) | — |", passes / n as f64);
    println!("| Pinot API calls to converge | {pinot_calls} ({:.1} per cluster) | — |", pinot_calls / n as f64);
    println!(
        "| reconciles and Pinot API calls once quiet | {quiet_passes} and {quiet_pinot_calls} in {} s | no polling |",
        quiet.as_secs()
    );
    kubectl(&["delete", "clusterrolebinding", &format!("pinot-operator-{}", ns.name)]).await;
    kubectl(&["delete", "clusterrole", &format!("pinot-operator-{}", ns.name)]).await;
    ns.cleanup().await;
}
