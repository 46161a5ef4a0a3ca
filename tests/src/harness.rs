//! Test harness: a client for the test cluster, a namespace per test and an operator per test.
//!
//! The test cluster is the one `PINOT_TEST_KUBECONFIG` names (kind, or a real cluster), or
//! else the local control plane `make kube-up` started (`.local/kube/kubeconfig` in the
//! repository). Tests never skip: without a reachable cluster they fail and say how to get one.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use pinot_crds::{PinotCluster, PinotPolicy, PinotSchema, PinotTable, PinotTenant};
use pinot_operator::{
    cluster::ControllerConfig,
    pinot::ControllerLocator,
    policy::{PolicyEngine, PolicyLimits, PolicyRegistry},
    policy_controller::PolicySources,
};
use tokio::{sync::oneshot, task::JoinHandle};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

/// The team's shared folder (Pinot fixtures), beside the repository as CI checks it out;
/// `PINOT_SHARED_DIR` overrides it.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("PINOT_SHARED_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join("../shared"),
    }
}

/// The kubeconfig of the cluster tests run against.
///
/// Cargo runs tests and benches in the package's directory (`tests/`), not where the command
/// was typed, so a relative `PINOT_TEST_KUBECONFIG` that names no file there is taken relative
/// to the repository's root (`PINOT_TEST_KUBECONFIG=.local/kube/kubeconfig cargo bench ...`
/// typed at the root works).
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("PINOT_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => resolve_kubeconfig(PathBuf::from(p)),
        _ => repo_root().join(".local/kube/kubeconfig"),
    }
}

/// An absolute path for `path`: as it is when absolute, else relative to the current directory
/// if a file is there, else relative to the repository's root.
fn resolve_kubeconfig(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join(&path).exists() {
        return cwd.join(path);
    }
    repo_root().join(path)
}

/// Why there is no test cluster, naming the kubeconfig tried and how to get one.
fn no_cluster(path: &Path, what: &str) -> String {
    let given = std::env::var_os("PINOT_TEST_KUBECONFIG").filter(|p| !p.is_empty()).map(PathBuf::from);
    let fix = match given {
        Some(p) if !path.exists() => {
            let tried = if p.is_absolute() {
                p.display().to_string()
            } else {
                // Cargo runs tests and benches in tests/: both places a relative path may mean.
                let cwd = std::env::current_dir().unwrap_or_default();
                format!("{} and {}", cwd.join(&p).display(), repo_root().join(&p).display())
            };
            format!(
                "PINOT_TEST_KUBECONFIG={} names no file (tried {tried}): set it to the kubeconfig of a running cluster (absolute, or relative to the repository's root), or unset it to use the local control plane (`make kube-up` first)",
                p.display()
            )
        }
        Some(_) => "check that the cluster PINOT_TEST_KUBECONFIG names is running, or unset it and run `make kube-up` for the local control plane".into(),
        None if !path.exists() => format!(
            "the local control plane is not set up ({} does not exist): run `make kube-up` first (or set PINOT_TEST_KUBECONFIG to the kubeconfig of another cluster)",
            path.display()
        ),
        None => "run `make kube-up` (it starts the local control plane if it stopped), or set PINOT_TEST_KUBECONFIG to the kubeconfig of another cluster".into(),
    };
    format!("{what} (kubeconfig {}). Fix: {fix}", path.display())
}

/// Where the simulated data plane serves the Pinot controllers of the test clusters
/// (`PINOT_TEST_CONTROLLER_URL_TEMPLATE` overrides it, e.g. for a real cluster).
pub fn controller_url_template() -> String {
    std::env::var("PINOT_TEST_CONTROLLER_URL_TEMPLATE")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:19000/clusters/{namespace}/{name}".into())
}

/// The base URL of the simulator's admin API for one cluster.
pub fn simulator_admin_url(namespace: &str, name: &str) -> String {
    let base = controller_url_template().replace("{namespace}", namespace).replace("{name}", name);
    base.replacen("/clusters/", "/_sim/clusters/", 1)
}

/// A client for the test cluster, with the CRDs installed.
pub async fn test_client() -> Client {
    init_tracing();
    pinot_operator::pinot::install_tls_provider();
    let path = kubeconfig_path();
    let client = pinot_operator::kube_client(Some(&path))
        .await
        .unwrap_or_else(|e| panic!("{}", no_cluster(&path, &format!("no test cluster: {e}"))));
    if let Err(e) = client.apiserver_version().await {
        panic!("{}", no_cluster(&path, &format!("the test cluster does not answer: {e}")));
    }
    install_crds(&client).await;
    client
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,pinot_operator=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Applies the CRDs from the Rust types and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crds = pinot_crds::crds();
    for crd in &crds {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("pinot-tests").force(), &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        wait_for(&format!("CRD {name} established"), Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
            }
        })
        .await;
    }
    // kubectl validates manifests against the apiserver's OpenAPI document, which is published
    // a moment after a CRD changes: wait until it lists every field of every spec.
    let expected: Vec<(String, Vec<String>)> = crds
        .iter()
        .map(|crd| {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let fields = schema["openAPIV3Schema"]["properties"]["spec"]["properties"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            (format!("dev.controlplane.pinot.v1alpha1.{}", crd.spec.names.kind), fields)
        })
        .collect();
    wait_for("the CRD schemas in the apiserver's OpenAPI", Duration::from_secs(60), || {
        let client = client.clone();
        let expected = expected.clone();
        async move {
            let request = http::Request::get("/openapi/v2").body(Vec::new()).ok()?;
            let doc: serde_json::Value = client.request(request).await.ok()?;
            expected
                .iter()
                .all(|(definition, fields)| {
                    let published = &doc["definitions"][definition]["properties"]["spec"]["properties"];
                    fields.iter().all(|f| published.get(f).is_some())
                })
                .then_some(())
        }
    })
    .await;
}

async fn strip_finalizers<K>(client: &Client, ns: &str)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    for obj in list {
        if !obj.finalizers().is_empty() {
            let _ = api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
        }
    }
}

/// A namespace that exists for one test; `cleanup` deletes it.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let api: Api<Namespace> = Api::all(client.clone());
        let ns =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        api.create(&PostParams::default(), &ns).await.unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self { name, client: client.clone() }
    }

    /// Deletes the namespace (and so everything in it). Left in place when a test fails, to
    /// be looked at.
    pub async fn cleanup(self) {
        // The test's operator has stopped: take the operator's finalizers off, or the namespace
        // would stay Terminating for ever.
        strip_finalizers::<PinotSchema>(&self.client, &self.name).await;
        strip_finalizers::<PinotTable>(&self.client, &self.name).await;
        strip_finalizers::<PinotTenant>(&self.client, &self.name).await;
        strip_finalizers::<PinotPolicy>(&self.client, &self.name).await;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// An operator running in this process, watching one namespace; stopped when dropped.
pub struct OperatorHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// How long the tests' operators let a LoadBalancer Service wait for an address.
pub const TEST_LOAD_BALANCER_GRACE: Duration = Duration::from_secs(5);

/// How often the tests' operators compare Ready schemas and tables with Pinot.
pub const TEST_DRIFT_INTERVAL: Duration = Duration::from_secs(2);

/// One policy registry per test process: the bundled defaults are compiled once.
pub fn shared_registry() -> Arc<PolicyRegistry> {
    static REGISTRY: OnceLock<Arc<PolicyRegistry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let engine = PolicyEngine::new(PolicyLimits::default()).expect("policy engine");
            Arc::new(PolicyRegistry::new(engine).expect("bundled policies load"))
        })
        .clone()
}

impl OperatorHandle {
    /// The operator's controllers (PinotCluster and PinotPolicy) for one namespace.
    pub fn start(client: &Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, None)
    }

    /// As [`OperatorHandle::start`], with a policy directory.
    pub fn start_with(client: &Client, namespace: &str, policy_dir: Option<PathBuf>) -> Self {
        Self::start_full(client, namespace, policy_dir, 0)
    }

    /// As [`OperatorHandle::start`], with where policy modules come from (a policy directory,
    /// registries).
    pub fn start_with_sources(client: &Client, namespace: &str, sources: PolicySources) -> Self {
        Self::start_inner(client, namespace, sources, 0, None)
    }

    /// As [`OperatorHandle::start`], allowing `max_concurrent_upgrades` clusters to upgrade at once.
    pub fn start_capped(client: &Client, namespace: &str, max_concurrent_upgrades: usize) -> Self {
        Self::start_full(client, namespace, None, max_concurrent_upgrades)
    }

    /// As [`OperatorHandle::start`], reconciling only while it holds the leader Lease.
    pub fn start_elected(client: &Client, namespace: &str, leader: pinot_operator::leader::LeaderConfig) -> Self {
        Self::start_inner(client, namespace, PolicySources::default(), 0, Some(leader))
    }

    /// As [`OperatorHandle::start_elected`], with where policy modules come from.
    pub fn start_elected_with(
        client: &Client,
        namespace: &str,
        leader: pinot_operator::leader::LeaderConfig,
        sources: PolicySources,
    ) -> Self {
        Self::start_inner(client, namespace, sources, 0, Some(leader))
    }

    fn start_full(
        client: &Client,
        namespace: &str,
        policy_dir: Option<PathBuf>,
        max_concurrent_upgrades: usize,
    ) -> Self {
        Self::start_inner(client, namespace, PolicySources::dir(policy_dir), max_concurrent_upgrades, None)
    }

    fn start_inner(
        client: &Client,
        namespace: &str,
        sources: PolicySources,
        max_concurrent_upgrades: usize,
        leader: Option<pinot_operator::leader::LeaderConfig>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let registry = shared_registry();
        let config = ControllerConfig {
            namespace: Some(namespace.to_string()),
            controllers: ControllerLocator::new(controller_url_template()),
            registry: registry.clone(),
            max_concurrent_upgrades,
            drift_interval: TEST_DRIFT_INTERVAL,
            debounce: pinot_operator::cluster::DEFAULT_DEBOUNCE,
            concurrency: pinot_operator::cluster::DEFAULT_CONCURRENCY,
            cluster_domain: pinot_operator::pinot::DEFAULT_CLUSTER_DOMAIN.to_string(),
            // There is no load balancer here: a LoadBalancer Service is reported soon.
            load_balancer_grace: TEST_LOAD_BALANCER_GRACE,
        };
        let client = client.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let result = match leader {
                Some(leader) => pinot_operator::run_elected(client, config, sources, leader, shutdown).await,
                None => pinot_operator::run_operator(client, config, sources, shutdown).await.map_err(Into::into),
            };
            if let Err(e) = result {
                panic!("operator stopped with an error: {e}");
            }
        });
        Self { stop: Some(stop), task: Some(task) }
    }

    pub fn registry(&self) -> Arc<PolicyRegistry> {
        shared_registry()
    }

    /// Stops the operator and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for OperatorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming what it waited for.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads a YAML file of the repository.
pub fn read_yaml<T: serde::de::DeserializeOwned>(relative: &str) -> T {
    let path = repo_root().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The value of one condition of a PinotCluster's status, e.g. `("True", message)`.
pub fn condition(cluster: &PinotCluster, type_: &str) -> Option<(String, String)> {
    cluster.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.message.clone()))
}

/// The status and message of a condition of any resource, from its JSON.
pub fn condition_of(object: &serde_json::Value, type_: &str) -> Option<(String, String)> {
    let c = object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?;
    Some((c["status"].as_str()?.to_string(), c["message"].as_str().unwrap_or_default().to_string()))
}

/// Runs `kubectl` (the one on PATH, or the one built with the local control plane) against the
/// test cluster and returns its standard output; panics with its error output when it fails.
pub async fn kubectl(args: &[&str]) -> String {
    let (ok, stdout, stderr) = kubectl_unchecked(args).await;
    assert!(ok, "kubectl {} failed: {stderr}", args.join(" "));
    stdout
}

/// Runs `kubectl` as [`kubectl`] does, without failing: (succeeded, stdout, stderr).
pub async fn kubectl_unchecked(args: &[&str]) -> (bool, String, String) {
    kubectl_env(args, &[]).await
}

/// As [`kubectl_unchecked`], with environment variables (a `PATH` with kubectl plugins).
pub async fn kubectl_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String, String) {
    let program = which_kubectl();
    // The kubeconfig by environment: kubectl refuses flags before a plugin's name, and passes
    // the environment on to the plugin.
    let output = tokio::process::Command::new(&program)
        .env("KUBECONFIG", kubeconfig_path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn which_kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("kubectl");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cache = std::env::var_os("PINOT_OPERATOR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("pinot-operator")))
        .unwrap_or_else(|| home.join(".cache/pinot-operator"));
    std::fs::read_dir(&cache)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no kubectl on PATH or in {}; run make kube-up", cache.display()))
}

/// The operator's `RestartedPod` events in a namespace, oldest first.
pub async fn restart_events(client: &Client, ns: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut restarts: Vec<_> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RestartedPod"))
        .collect();
    restarts.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    restarts
}

/// The `pinot-operator` binary of this build (beside the test executables; `cargo test
/// --workspace` builds it).
pub fn operator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let binary = dir.join("pinot-operator");
    assert!(
        binary.is_file(),
        "{} does not exist: build it with `cargo build -p pinot-operator` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// How often the StatefulSet controller created each pod in `ns` (its SuccessfulCreate events):
/// a pod restarted once was created twice.
pub async fn pod_creations(client: &Client, ns: &str) -> std::collections::BTreeMap<String, i32> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut out = std::collections::BTreeMap::new();
    for e in events.list(&Default::default()).await.unwrap() {
        if e.reason.as_deref() != Some("SuccessfulCreate") {
            continue;
        }
        let message = e.message.unwrap_or_default();
        if let Some(pod) = message.split("Pod ").nth(1).and_then(|m| m.split(' ').next()) {
            *out.entry(pod.to_string()).or_default() += e.count.unwrap_or(1);
        }
    }
    out
}
