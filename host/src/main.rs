//! `pinot-operator`: the command line of the Pinot control plane.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use oci_client::secrets::RegistryAuth;
use pinot_operator::{
    cluster::ControllerConfig,
    cluster::preview::PreviewRequest,
    pinot::ControllerLocator,
    policy::oci::{self, PinnedReference, Registries, RegistrySettings},
    policy::signature::{self, SecretKey, TrustedKey},
    policy::{
        ClusterState, LoadError, LoadedPolicy, PolicyEngine, PolicyKind, PolicyLimits, PolicyRegistry, guardrails,
    },
    policy_controller::PolicySources,
    shutdown_signal,
};

#[derive(Parser)]
#[command(name = "pinot-operator", version, about = "The Kubernetes control plane for Apache Pinot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (kubectl apply -f - installs them).
    Crds,
    /// Convert manifests of the seed operator (datainfra.io/v1beta1 Pinot, PinotSchema,
    /// PinotTable, PinotTenant) to this operator's resources: YAML on stdout, a warning on
    /// stderr for everything that does not carry over. `-` reads stdin.
    Convert {
        /// Manifest files (several documents each allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Test and inspect policy plugins before they reach a cluster.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// What the policies would do to a live cluster now: observes it as the operator does,
    /// runs its upgrade, scaling and tenant policies (or --module) and prints each action with
    /// the guardrails' verdict and what the operator would carry out. Writes nothing.
    Plan(PlanArgs),
    /// `kubectl pinot ...`: the kubectl plugin (installed as `kubectl-pinot`, a link to this
    /// binary, it takes these commands directly).
    #[command(subcommand, hide = true)]
    Kubectl(KubectlCommand),
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster).
    Run {
        /// Kubeconfig to use instead of KUBECONFIG / ~/.kube/config / the in-cluster account.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "PINOT_OPERATOR_NAMESPACE")]
        namespace: Option<String>,
        /// Base URL of each cluster's Pinot controller; `{name}`, `{namespace}` and `{domain}`
        /// (the cluster DNS domain) are replaced. Out of the cluster (sandbox, laptop) point it
        /// at a reachable address; a cluster's `pinot.controlplane.dev/controller-url`
        /// annotation overrides it.
        #[arg(long, env = "PINOT_CONTROLLER_URL_TEMPLATE", default_value = pinot_operator::pinot::DEFAULT_CONTROLLER_URL_TEMPLATE)]
        controller_url_template: String,
        /// The Kubernetes cluster's DNS domain, which Pinot's instance ids contain
        /// (`<pod>.<service>.<namespace>.svc.<domain>`). Default: read from the operator pod's
        /// /etc/resolv.conf (its `svc.<domain>` search entry), else `cluster.local`.
        #[arg(long, env = "PINOT_CLUSTER_DOMAIN")]
        cluster_domain: Option<String>,
        /// How long a client Service of type LoadBalancer may wait for its address before the
        /// cluster reports `LoadBalancerPending` (the Kubernetes cluster may provide no load
        /// balancer).
        #[arg(long, env = "PINOT_LOAD_BALANCER_GRACE_SECONDS", default_value_t = 180)]
        load_balancer_grace_seconds: u64,
        /// Directory of policy modules that PinotPolicies may name with `spec.module.file`
        /// (e.g. a mounted ConfigMap); changes are picked up while the operator runs.
        #[arg(long, env = "PINOT_POLICY_DIR")]
        policy_dir: Option<PathBuf>,
        /// Directory where compiled policy modules are kept across restarts (created 0700;
        /// e.g. an emptyDir volume). Without it every start compiles the modules again.
        #[arg(long, env = "PINOT_POLICY_CACHE_DIR")]
        policy_cache_dir: Option<PathBuf>,
        /// A registry (`host[:port]`, as written in references) that PinotPolicies' OCI
        /// modules are pulled from over plain HTTP; repeat it, or separate them with commas.
        #[arg(long = "insecure-registry", env = "PINOT_INSECURE_REGISTRIES", value_delimiter = ',')]
        insecure_registries: Vec<String>,
        /// PEM file of certificates trusted for registries besides the system's (a private
        /// registry's CA).
        #[arg(long, env = "PINOT_REGISTRY_CA_FILE")]
        registry_ca_file: Option<PathBuf>,
        /// A directory of PEM public keys (a mounted ConfigMap or Secret, e.g. cosign.pub):
        /// PinotPolicy modules then load only from OCI artifacts with a cosign signature by one
        /// of them (ConfigMap modules are rejected; the policy directory stays the admin's).
        #[arg(long, env = "PINOT_TRUSTED_KEYS_DIR")]
        trusted_keys: Option<PathBuf>,
        /// The largest policy module loaded, from any source (a larger one is Rejected with
        /// ModuleTooLarge).
        #[arg(long, env = "PINOT_MAX_MODULE_BYTES", default_value_t = pinot_operator::policy::oci::DEFAULT_MAX_MODULE_BYTES)]
        max_module_bytes: u64,
        /// How many clusters may upgrade at the same time (0: no limit). A cluster whose
        /// upgrade halted keeps its slot, so a bad image is caught on the first clusters.
        #[arg(long, env = "PINOT_MAX_CONCURRENT_UPGRADES", default_value_t = 2)]
        max_concurrent_upgrades: usize,
        /// How often PinotSchemas and PinotTables that are Ready are compared with the live
        /// objects in Pinot, to repair changes made in Pinot directly.
        #[arg(long, env = "PINOT_DRIFT_CHECK_INTERVAL_SECONDS", default_value_t = 300)]
        drift_check_interval_seconds: u64,
        /// How long a cluster's reconcile waits for further changes once one arrives, so that a
        /// burst of them (a pod turning ready, then its StatefulSet's status) costs one pass.
        /// Each upgrade step waits this much longer; 0 turns it off.
        #[arg(long, env = "PINOT_RECONCILE_DEBOUNCE_MS", default_value_t = 250)]
        reconcile_debounce_ms: u64,
        /// How many PinotClusters are reconciled at the same time (0: no limit). A pass that
        /// waits for an unreachable Pinot controller holds a slot for up to 10 s.
        #[arg(long, env = "PINOT_MAX_CONCURRENT_RECONCILES", default_value_t = pinot_operator::cluster::DEFAULT_CONCURRENCY)]
        max_concurrent_reconciles: u16,
        /// The operator's own namespace, where ClusterPinotPolicies' ConfigMaps and pull secrets
        /// are read from (default: the pod's namespace, else its service account's).
        #[arg(long, env = "POD_NAMESPACE")]
        operator_namespace: Option<String>,
        /// Log as JSON lines.
        #[arg(long, env = "PINOT_OPERATOR_LOG_JSON")]
        log_json: bool,
        /// Where `/metrics` (Prometheus), `/healthz` and `/readyz` are served; `off` serves none.
        #[arg(long, env = "PINOT_METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: String,
        /// Reconcile only while holding the Lease `pinot-operator` (coordination.k8s.io), so that
        /// several replicas can run: one leads, the others stand by.
        #[arg(long, env = "PINOT_LEADER_ELECT")]
        leader_elect: bool,
        /// Namespace of the Lease (the operator's own; default: the one it runs in).
        #[arg(long, env = "POD_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// This replica's identity in the Lease (default: the pod's name, else the host name).
        #[arg(long, env = "POD_NAME")]
        leader_election_id: Option<String>,
    },
}

/// What `plan` is told.
#[derive(clap::Args)]
struct PlanArgs {
    /// NAMESPACE/NAME of the PinotCluster (NAME alone: -n, else the kubeconfig's namespace).
    cluster: String,
    /// The namespace of a NAME given alone.
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A policy module to try instead of the cluster's policy of its kind.
    #[arg(long)]
    module: Option<PathBuf>,
    /// The kind of --module (found from the module when absent), and the kind whose state
    /// `--output yaml` writes (default: upgrade, or the module's).
    #[arg(long)]
    kind: Option<String>,
    /// `text` (default) or `yaml`: the observed state the policy decided from, in the shape
    /// `policy test --state` reads (keep real states as test fixtures).
    #[arg(short, long, default_value = "text")]
    output: String,
    /// Base URL of the cluster's Pinot controller, as for `run` (from outside the
    /// Kubernetes cluster, e.g. a `kubectl port-forward`: http://127.0.0.1:9000).
    #[arg(long, env = "PINOT_CONTROLLER_URL_TEMPLATE", default_value = pinot_operator::pinot::DEFAULT_CONTROLLER_URL_TEMPLATE)]
    controller_url_template: String,
    #[arg(long, env = "PINOT_CLUSTER_DOMAIN", default_value = pinot_operator::pinot::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// The operator's namespace (where ClusterPinotPolicies' modules and pull secrets are; the
    /// Helm and kustomize installs use pinot-system).
    #[arg(long, default_value = "pinot-system")]
    operator_namespace: String,
    /// The operator's --trusted-keys, to refuse unsigned modules as it does.
    #[arg(long)]
    trusted_keys: Option<PathBuf>,
    /// The operator's --policy-dir, for policies that name a file of it.
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// The operator's --max-concurrent-upgrades: an upgrade that would start is queued while
    /// this many other clusters upgrade.
    #[arg(long, default_value_t = 2)]
    max_concurrent_upgrades: usize,
    /// Registries spoken to over plain HTTP, as for `run`.
    #[arg(long = "insecure-registry", value_delimiter = ',')]
    insecure_registries: Vec<String>,
    /// Extra CA certificates for registries, as for `run`.
    #[arg(long)]
    registry_ca_file: Option<PathBuf>,
}

/// `kubectl pinot`: what a cluster's users ask of the operator from kubectl.
#[derive(Subcommand)]
enum KubectlCommand {
    /// What the policies would do to the cluster now (see `pinot-operator plan`).
    Plan(Box<PlanArgs>),
    /// The cluster, its pools and zones, Pinot's view, ZooKeeper and its policies.
    Status {
        /// The PinotCluster.
        name: String,
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// A rolling restart of the cluster (or of one pool: --pool; `zookeeper` for the managed
    /// ensemble), carried out pod by pod by the upgrade policy like an upgrade. (`kubectl
    /// rollout restart` of a pool's StatefulSet is carried out the same way.)
    Restart {
        /// The PinotCluster.
        name: String,
        #[arg(long)]
        pool: Option<String>,
        #[arg(short, long)]
        namespace: Option<String>,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run a module on an observed state from a file; print its actions and the guardrails'
    /// verdict on each. Exit code 1 when the module fails or a guardrail refuses the plan.
    Test {
        /// The policy component (.wasm).
        module: PathBuf,
        /// The observed state, YAML or JSON (see deploy/examples/policy/).
        #[arg(long)]
        state: PathBuf,
        /// upgrade, scaling or tenant; found from the module when absent.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Print a module's info, world, api-version, digest and whether it imports WASI.
    Inspect {
        /// The policy component (.wasm).
        module: PathBuf,
    },
    /// Publish a module to an OCI registry as a Wasm artifact (after checking that it loads as a
    /// policy). Prints the reference pinned by digest, to write in a PinotPolicy's
    /// `spec.module.oci.reference`, as its last line.
    Push {
        /// The policy component (.wasm).
        module: PathBuf,
        /// Where to publish it: `registry/repository:tag` (no tag: `latest`).
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Fetch a module from an OCI registry by digest, check it as the operator does, and write
    /// it to a file.
    Pull {
        /// `registry/repository@sha256:<digest>`.
        reference: String,
        /// Where to write the module.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Make a key pair for signing policies, as `cosign generate-key-pair` does (ECDSA P-256;
    /// the private key encrypted with $COSIGN_PASSWORD, which may be empty): PREFIX.key and
    /// PREFIX.pub. cosign reads the files, and this reads cosign's.
    Keygen {
        /// Where to write the keys: PREFIX.key and PREFIX.pub.
        #[arg(long, default_value = "cosign")]
        output_key_prefix: String,
    },
    /// Sign a published module as `cosign sign --key` does (the signature goes to the
    /// artifact's `sha256-<digest>.sig` tag); the key's password is $COSIGN_PASSWORD.
    Sign {
        /// `registry/repository@sha256:<digest>`, as `policy push` printed it.
        reference: String,
        /// The private key (cosign.key, of `policy keygen` or `cosign generate-key-pair`).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Check that a published module carries a signature by one of the keys, as the operator
    /// does with --trusted-keys (and `cosign verify --key` does). Exit code 1 when none.
    Verify {
        /// `registry/repository@sha256:<digest>`.
        reference: String,
        /// A public key (cosign.pub); repeat for several.
        #[arg(long, required = true)]
        key: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Turn a policy built with `cargo build --target wasm32-unknown-unknown` (a core module
    /// that carries its WIT world, as wit-bindgen writes it) into a component, as `wasm-tools
    /// component new` does, and check that it loads as a policy.
    Component {
        /// The core module (.wasm).
        module: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// The namespace of the pod's service account.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How the `policy` commands reach a registry.
#[derive(clap::Args)]
struct RegistryArgs {
    /// Speak plain HTTP to the registry (a local registry without TLS).
    #[arg(long)]
    insecure: bool,
    /// PEM file of certificates to trust besides the system's (a private registry's CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// User name for the registry; the password is read from stdin (`--password-stdin`).
    /// Without it, the credentials of `docker login` are used (`$REGISTRY_AUTH_FILE`,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), else none.
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password from stdin.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl RegistryArgs {
    fn registries(&self, registry: &str) -> anyhow::Result<Registries> {
        let extra_roots_pem = read_ca(self.ca_file.as_deref(), "--ca-file")?;
        Registries::new(RegistrySettings {
            insecure: if self.insecure { vec![registry.to_string()] } else { vec![] },
            extra_roots_pem,
            ..RegistrySettings::default()
        })
        .map_err(|e| anyhow::anyhow!("--ca-file: {e}"))
    }

    fn auth(&self, registry: &str) -> anyhow::Result<RegistryAuth> {
        if let Some(user) = &self.username {
            let password = std::io::read_to_string(std::io::stdin()).context("reading the password from stdin")?;
            return Ok(RegistryAuth::Basic(user.clone(), password.trim_end_matches(['\r', '\n']).to_string()));
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let candidates = [
            std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from),
            std::env::var_os("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("config.json")),
            home.map(|h| h.join(".docker/config.json")),
        ];
        for path in candidates.into_iter().flatten() {
            if let Ok(json) = std::fs::read(&path) {
                return oci::credentials_from_docker_config(&json, registry)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
            }
        }
        Ok(RegistryAuth::Anonymous)
    }
}

/// The password of a signing key, from $COSIGN_PASSWORD as cosign reads it (it may be empty).
fn cosign_password() -> anyhow::Result<String> {
    std::env::var("COSIGN_PASSWORD")
        .map_err(|_| anyhow::anyhow!("set COSIGN_PASSWORD to the key's password (it may be empty: COSIGN_PASSWORD=)"))
}

/// Writes a private key readable by its owner only.
fn write_private(path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {path}"))?;
    file.write_all(bytes).with_context(|| format!("writing {path}"))
}

/// The PEM certificates of a CA file flag (none without one).
fn read_ca(path: Option<&std::path::Path>, flag: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    path.map(|p| std::fs::read(p).with_context(|| format!("{flag} {}", p.display()))).into_iter().collect()
}

/// The registry part of a reference (`host[:port]`, or `docker.io`).
fn registry_of(reference: &str) -> anyhow::Result<String> {
    let parsed: oci_client::Reference =
        reference.parse().map_err(|e| anyhow::anyhow!("{reference:?} is not an OCI reference: {e}"))?;
    Ok(parsed.registry().to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Installed as `kubectl-pinot` (a link to this binary), kubectl runs it as a plugin:
    // `kubectl pinot status NAME` is `pinot-operator kubectl status NAME`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as =
        args.first().and_then(|a| std::path::Path::new(a).file_name()).map(|n| n.to_string_lossy().into_owned());
    if invoked_as.is_some_and(|n| n.starts_with("kubectl-pinot")) {
        args.insert(1, "kubectl".into());
    }
    match run(Cli::parse_from(args)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds => {
            print!("{}", pinot_crds::crd_yaml());
            Ok(())
        }
        Command::Convert { files } => convert_command(&files),
        Command::Policy(command) => policy_command(command).await,
        Command::Plan(args) => plan_command(args).await,
        Command::Kubectl(KubectlCommand::Plan(args)) => plan_command(*args).await,
        Command::Kubectl(KubectlCommand::Status { name, namespace, kubeconfig }) => {
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            print!("{}", pinot_operator::kubectl::status(&client, &namespace, &name).await?);
            Ok(())
        }
        Command::Kubectl(KubectlCommand::Restart { name, pool, namespace, kubeconfig }) => {
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
            println!("{}", pinot_operator::kubectl::restart(&client, &namespace, &name, pool.as_deref()).await?);
            Ok(())
        }
        Command::Run {
            kubeconfig,
            namespace,
            controller_url_template,
            cluster_domain,
            load_balancer_grace_seconds,
            policy_dir,
            policy_cache_dir,
            insecure_registries,
            registry_ca_file,
            max_module_bytes,
            trusted_keys,
            operator_namespace,
            max_concurrent_upgrades,
            drift_check_interval_seconds,
            reconcile_debounce_ms,
            max_concurrent_reconciles,
            log_json,
            metrics_addr,
            leader_elect,
            leader_election_namespace,
            leader_election_id,
        } => {
            init_tracing(log_json);
            let all_namespaces = namespace.is_none();
            if metrics_addr != "off" {
                let addr: std::net::SocketAddr = metrics_addr
                    .parse()
                    .with_context(|| format!("--metrics-addr {metrics_addr:?}: write HOST:PORT or off"))?;
                let bound =
                    pinot_operator::metrics::serve(addr).await.with_context(|| format!("serving metrics on {addr}"))?;
                tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
            }
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let cluster_domain = cluster_domain.filter(|d| !d.trim().is_empty()).unwrap_or_else(|| {
                std::fs::read_to_string("/etc/resolv.conf")
                    .ok()
                    .and_then(|text| pinot_operator::pinot::cluster_domain_from_resolv_conf(&text))
                    .unwrap_or_else(|| pinot_operator::pinot::DEFAULT_CLUSTER_DOMAIN.to_string())
            });
            tracing::info!(%cluster_domain, "cluster DNS domain");
            let controllers = ControllerLocator::new(controller_url_template).with_domain(cluster_domain.clone());
            let registry = Arc::new(
                PolicyRegistry::new(PolicyEngine::with_cache(PolicyLimits::default(), policy_cache_dir.as_deref())?)
                    .context("loading the bundled policies")?,
            );
            let config = ControllerConfig {
                namespace,
                controllers,
                registry,
                max_concurrent_upgrades,
                drift_interval: std::time::Duration::from_secs(drift_check_interval_seconds.max(1)),
                debounce: std::time::Duration::from_millis(reconcile_debounce_ms),
                concurrency: max_concurrent_reconciles,
                cluster_domain,
                load_balancer_grace: std::time::Duration::from_secs(load_balancer_grace_seconds),
            };
            let extra_roots_pem = read_ca(registry_ca_file.as_deref(), "--registry-ca-file")?;
            let sources = PolicySources {
                dir: policy_dir,
                registries: RegistrySettings {
                    insecure: insecure_registries.into_iter().filter(|r| !r.trim().is_empty()).collect(),
                    extra_roots_pem,
                    max_module_bytes,
                    cache_dir: policy_cache_dir.as_ref().map(|d| d.join("oci")),
                    ..RegistrySettings::default()
                },
                platform_namespace: operator_namespace
                    .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
                    .map(|ns| ns.trim().to_string())
                    .filter(|ns| !ns.is_empty()),
                // ClusterPinotPolicies are loaded by an operator of every namespace only: several
                // operators of one namespace each would fight over them.
                cluster_wide: all_namespaces,
                trusted_keys,
            };
            Registries::new(sources.registries.clone()).map_err(|e| anyhow::anyhow!("--registry-ca-file: {e}"))?;
            if leader_elect {
                let namespace = leader_election_namespace
                    .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
                    .context("--leader-elect needs --leader-election-namespace (or POD_NAMESPACE)")?;
                let identity = leader_election_id
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .unwrap_or_else(|| format!("pinot-operator-{:08x}", std::process::id()));
                let leader = pinot_operator::leader::LeaderConfig::new(namespace.trim(), identity);
                pinot_operator::run_elected(client, config, sources, leader, shutdown_signal())
                    .await
                    .context("running the operator")?;
            } else {
                let clusters = pinot_operator::run_operator(client, config, sources, shutdown_signal()).await;
                clusters.context("running the PinotCluster controller")?;
            }
            tracing::info!("stopped");
            Ok(())
        }
    }
}

async fn plan_command(args: PlanArgs) -> anyhow::Result<()> {
    let PlanArgs {
        cluster,
        namespace,
        kubeconfig,
        module,
        kind,
        output,
        controller_url_template,
        cluster_domain,
        operator_namespace,
        insecure_registries,
        registry_ca_file,
        trusted_keys,
        policy_dir,
        max_concurrent_upgrades,
    } = args;
    let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
    let (namespace, name) = match cluster.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (namespace.unwrap_or_else(|| client.default_namespace().to_string()), cluster.clone()),
    };
    let engine = PolicyEngine::new(PolicyLimits::default())?;
    let mut kind = kind
        .map(|k| PolicyKind::parse(&k).ok_or_else(|| anyhow::anyhow!("--kind {k:?}: use upgrade, scaling or tenant")))
        .transpose()?;
    let module = match &module {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let (found, _) = load_any(&engine, path, &bytes, kind)?;
            kind = Some(found);
            Some((found, path.display().to_string(), bytes))
        }
        None => None,
    };
    let extra_roots_pem = read_ca(registry_ca_file.as_deref(), "--registry-ca-file")?;
    let sources = PolicySources {
        registries: RegistrySettings { insecure: insecure_registries, extra_roots_pem, ..RegistrySettings::default() },
        platform_namespace: Some(operator_namespace),
        trusted_keys,
        dir: policy_dir,
        ..Default::default()
    };
    let reader = pinot_operator::policy_controller::ModuleReader::new(client.clone(), &sources);
    let request = PreviewRequest {
        namespace,
        name,
        controllers: ControllerLocator::new(controller_url_template).with_domain(cluster_domain.clone()),
        cluster_domain,
        max_concurrent_upgrades,
        module,
    };
    let preview = pinot_operator::cluster::preview::preview(&client, &reader, request).await?;
    match output.as_str() {
        "yaml" => {
            let kind = kind.unwrap_or(PolicyKind::Upgrade);
            let state = preview.kinds.iter().find(|k| k.kind == kind).and_then(|k| k.state.clone());
            let state = state.ok_or_else(|| {
                anyhow::anyhow!(
                    "the {kind} policy was not asked this pass: {}",
                    preview.kinds.iter().find(|k| k.kind == kind).map(|k| k.outcome.as_str()).unwrap_or_default()
                )
            })?;
            print!("{}", serde_yaml::to_string(&state)?);
        }
        "text" => print!("{}", render_preview(&preview)),
        other => anyhow::bail!("--output {other:?}: use text or yaml"),
    }
    Ok(())
}

async fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    let engine = PolicyEngine::new(PolicyLimits::default())?;
    match command {
        PolicyCommand::Push { module, reference, registry } => {
            let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
            let (kind, loaded) = load_any(&engine, &module, &bytes, None)?;
            let host = registry_of(&reference)?;
            let registries = registry.registries(&host)?;
            let auth = registry.auth(&host)?;
            let created = k8s_openapi::jiff::Timestamp::now().to_string();
            let annotations = [
                (oci::ANNOTATION_TITLE, loaded.info.name.clone()),
                (oci::ANNOTATION_VERSION, loaded.info.version.clone()),
                (oci::ANNOTATION_CREATED, created),
                (oci::ANNOTATION_POLICY_KIND, kind.spec_name().to_string()),
                (oci::ANNOTATION_API_VERSION, loaded.info.api_version.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let pinned = registries
                .push(&reference, bytes, annotations, &auth)
                .await
                .map_err(|e| anyhow::anyhow!("pushing {reference}: {e}"))?;
            println!(
                "pushed {} {} ({kind}, module {}) to {reference}",
                loaded.info.name, loaded.info.version, loaded.digest
            );
            println!("{pinned}");
            Ok(())
        }
        PolicyCommand::Keygen { output_key_prefix } => {
            let password = cosign_password()?;
            let key = SecretKey::generate();
            let (private, public) = (format!("{output_key_prefix}.key"), format!("{output_key_prefix}.pub"));
            for path in [&private, &public] {
                anyhow::ensure!(
                    !std::path::Path::new(path).exists(),
                    "{path} exists: remove it or choose another --output-key-prefix"
                );
            }
            write_private(&private, key.to_cosign_pem(password.as_bytes()).as_bytes())?;
            std::fs::write(&public, key.public().to_pem()).with_context(|| format!("writing {public}"))?;
            println!("Private key written to {private}");
            println!("Public key written to {public}");
            Ok(())
        }
        PolicyCommand::Sign { reference, key, registry } => {
            let pinned = PinnedReference::parse("REFERENCE", &reference)?;
            let pem = std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            let secret = SecretKey::from_cosign_pem(&pem, cosign_password()?.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            let registries = registry.registries(pinned.registry())?;
            let auth = registry.auth(pinned.registry())?;
            let payload = signature::payload(&pinned.repository_name(), &pinned.digest);
            let layer = signature::SignatureLayer { signature: secret.sign(&payload), payload };
            let at = registries.push_signature(&pinned, layer, &auth).await?;
            println!("signed {pinned}");
            println!("signature: {at}");
            Ok(())
        }
        PolicyCommand::Verify { reference, key, registry } => {
            let pinned = PinnedReference::parse("REFERENCE", &reference)?;
            let mut keys = Vec::new();
            for path in &key {
                let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                keys.push(TrustedKey::from_pem(path.display().to_string(), &pem)?);
            }
            let registries = registry.registries(pinned.registry())?;
            let auth = registry.auth(pinned.registry())?;
            let layers = registries.signatures(&pinned, &auth).await?;
            if layers.is_empty() {
                let tag = signature::signature_tag(&pinned.digest);
                anyhow::bail!(signature::VerifyError::Unsigned { artifact: pinned.to_string(), tag });
            }
            let signer = signature::verify(&pinned.to_string(), &pinned.digest, &layers, &keys)?;
            println!("{pinned}: signed by {}", signer.name);
            Ok(())
        }
        PolicyCommand::Pull { reference, output, registry } => {
            let pinned = PinnedReference::parse("REFERENCE", &reference)?;
            let registries = registry.registries(pinned.registry())?;
            let auth = registry.auth(pinned.registry())?;
            let artifact = registries.pull(&pinned, &auth).await?;
            let (kind, loaded) = load_any(&engine, &output, &artifact.bytes, None)?;
            std::fs::write(&output, &artifact.bytes).with_context(|| format!("writing {}", output.display()))?;
            println!("{}: {kind} {} {} ({})", output.display(), loaded.info.name, loaded.info.version, loaded.digest);
            Ok(())
        }
        PolicyCommand::Inspect { module } => {
            let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
            let (kind, loaded) = load_any(&engine, &module, &bytes, None)?;
            println!("module:      {}", module.display());
            println!("name:        {}", loaded.info.name);
            println!("version:     {}", loaded.info.version);
            println!("world:       pinot:policy/{}", kind.world());
            println!("api-version: {}", loaded.info.api_version);
            println!("digest:      {}", loaded.digest);
            println!("wasi:        {}", if loaded.uses_wasi() { "imported (an empty one is given)" } else { "none" });
            Ok(())
        }
        PolicyCommand::Component { module, output } => {
            let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
            let component = pinot_operator::policy::component::from_core_module(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", module.display()))?;
            let (kind, loaded) = load_any(&engine, &output, &component, None)?;
            std::fs::write(&output, &component).with_context(|| format!("writing {}", output.display()))?;
            println!("{}: {kind} {} {} ({})", output.display(), loaded.info.name, loaded.info.version, loaded.digest);
            Ok(())
        }
        PolicyCommand::Test { module, state, kind } => {
            let bytes = std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
            let kind = kind
                .map(|k| {
                    PolicyKind::parse(&k).ok_or_else(|| anyhow::anyhow!("--kind {k:?}: use upgrade, scaling or tenant"))
                })
                .transpose()?;
            let (kind, loaded) = load_any(&engine, &module, &bytes, kind)?;
            let text = std::fs::read_to_string(&state).with_context(|| format!("reading {}", state.display()))?;
            let observed: ClusterState =
                serde_yaml::from_str(&text).with_context(|| format!("{} is not an observed state", state.display()))?;
            println!("policy {} {} ({kind}, {})", loaded.info.name, loaded.info.version, loaded.digest);
            let actions = engine.decide(&loaded, &observed).map_err(|e| anyhow::anyhow!("the policy failed: {e}"))?;
            if actions.is_empty() {
                println!("no actions");
            }
            let verdicts = guardrails::verdicts(&observed, &actions);
            for (action, verdict) in actions.iter().zip(&verdicts) {
                match verdict {
                    None => println!("  allowed  {}", guardrails::describe(action)),
                    Some(why) => println!("  REFUSED  {}: {why}", guardrails::describe(action)),
                }
            }
            if verdicts.iter().any(Option::is_some) {
                anyhow::bail!("the guardrails refuse this plan: the host would carry out none of it");
            }
            Ok(())
        }
    }
}

/// `plan`'s report: the cluster, then each policy, its actions and what the operator would do.
fn render_preview(preview: &pinot_operator::cluster::preview::Preview) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "PinotCluster {}: {}", preview.cluster, preview.observed);
    if let Some(hold) = &preview.hold {
        let _ = writeln!(out, "{hold}");
    }
    for k in &preview.kinds {
        let _ = writeln!(out, "\n{} policy: {}", k.kind.spec_name(), k.policy);
        if k.actions.is_empty() {
            let _ = writeln!(out, "  no actions");
        }
        for (action, verdict) in &k.actions {
            match verdict {
                None => {
                    let _ = writeln!(out, "  allowed  {}", guardrails::describe(action));
                }
                Some(why) => {
                    let _ = writeln!(out, "  REFUSED  {}: {why}", guardrails::describe(action));
                }
            }
        }
        let _ = writeln!(out, "  => the operator would {}", k.outcome);
    }
    out
}

/// Loads a module as the given kind, or as whichever kind it implements.
fn load_any(
    engine: &PolicyEngine,
    path: &std::path::Path,
    bytes: &[u8],
    kind: Option<PolicyKind>,
) -> anyhow::Result<(PolicyKind, LoadedPolicy)> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let kinds =
        kind.map(|k| vec![k]).unwrap_or_else(|| vec![PolicyKind::Upgrade, PolicyKind::Scaling, PolicyKind::Tenant]);
    let mut last = None;
    for kind in kinds {
        match engine.load(kind, &name, bytes) {
            Ok(loaded) => return Ok((kind, loaded)),
            Err(e @ LoadError::WrongWorld { .. }) => last = Some(e),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }
    Err(anyhow::anyhow!("{}: {}", path.display(), last.expect("at least one kind was tried")))
}

fn convert_command(files: &[PathBuf]) -> anyhow::Result<()> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for file in files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading stdin")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                serde_json::Value::deserialize(doc).with_context(|| format!("{} is not YAML", file.display()))?;
            docs.push(value);
        }
    }
    let converted = pinot_operator::convert::convert(&docs);
    for resource in &converted.resources {
        print!("---\n{}", serde_yaml::to_string(resource)?);
    }
    for warning in &converted.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!("{} resources converted, {} warnings", converted.resources.len(), converted.warnings.len());
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json { builder.json().init() } else { builder.init() }
}
