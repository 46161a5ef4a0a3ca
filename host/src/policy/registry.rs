//! The policies a running operator can decide with: the bundled defaults, and every
//! PinotPolicy that loaded. A new module replaces the old one atomically: decisions in flight
//! hold their `Arc` and finish on the old module; a module that fails to load never replaces
//! the last good one.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use super::{
    Action, ClusterState, DecisionError, LoadError, LoadedPolicy, PolicyEngine, PolicyKind, bundled, runtime::digest,
};

/// The namespace under which ClusterPinotPolicies are kept (no namespace has an empty name).
pub const CLUSTER_SCOPE: &str = "";

/// A module that is active, with the configuration it decides with.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: LoadedPolicy,
    pub config: Vec<(String, String)>,
    /// When the module was installed (a change of configuration keeps it).
    pub loaded_at: SystemTime,
    /// The resource it is the module of: `PinotPolicy <ns>/<name>`, `ClusterPinotPolicy
    /// <name>`, or `bundled`.
    pub origin: String,
}

/// The resource a policy is: a PinotPolicy of a namespace, or a ClusterPinotPolicy.
pub fn describe(namespace: &str, name: &str) -> String {
    if namespace == CLUSTER_SCOPE {
        format!("ClusterPinotPolicy {name}")
    } else {
        format!("PinotPolicy {namespace}/{name}")
    }
}

/// Why a module was not installed; the reason is the PinotPolicy's status reason.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "the module's digest is {found} but spec.sha256 says {expected}; publish the module you reviewed, or update spec.sha256"
    )]
    DigestMismatch { expected: String, found: String },
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl InstallError {
    pub fn reason(&self) -> &'static str {
        match self {
            InstallError::DigestMismatch { .. } => "DigestMismatch",
            InstallError::Load(LoadError::Compile(_)) => "DoesNotCompile",
            InstallError::Load(LoadError::WrongWorld { .. }) => "WrongWorld",
            InstallError::Load(LoadError::Imports { .. }) => "ForbiddenImports",
            InstallError::Load(LoadError::WrongApiVersion { .. }) => "WrongApiVersion",
            InstallError::Load(LoadError::SmokeTest(_)) => "SmokeTestFailed",
        }
    }
}

/// Why a cluster's policy cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{} is not loaded (its module was rejected, or is still being read: see its status)",
        describe(namespace, name)
    )]
    NotLoaded { namespace: String, name: String },
    #[error(
        "neither PinotPolicy {namespace}/{name} nor ClusterPinotPolicy {name} is loaded (they do not exist, or the module was rejected: see the status)"
    )]
    NotFound { namespace: String, name: String },
    #[error("{} implements {found}, not {wanted}; name a policy of the right kind", describe(namespace, name))]
    WrongKind { namespace: String, name: String, found: PolicyKind, wanted: PolicyKind },
}

/// Normalises `sha256:<hex>` or bare hex to `sha256:<lower-case hex>`.
pub fn normalise_digest(d: &str) -> String {
    let hex = d.trim().strip_prefix("sha256:").unwrap_or(d.trim());
    format!("sha256:{}", hex.to_ascii_lowercase())
}

pub struct PolicyRegistry {
    engine: PolicyEngine,
    defaults: HashMap<PolicyKind, Arc<ActivePolicy>>,
    custom: RwLock<HashMap<(String, String), Arc<ActivePolicy>>>,
    /// Every PinotPolicy that exists (loaded or not): a namespaced policy of a name, even one
    /// whose module was rejected, wins over the ClusterPinotPolicy of that name.
    declared: RwLock<HashSet<(String, String)>>,
    /// Whether `declared` holds every PinotPolicy yet (the first list is done); until then no
    /// cluster falls back to a ClusterPinotPolicy, which its own PinotPolicy might overrule.
    declared_complete: AtomicBool,
    /// The (namespace, name) of every PinotPolicy whose active module or configuration changed
    /// or that went away, for the clusters deciding with it (see [`PolicyRegistry::changes`]).
    changes: tokio::sync::broadcast::Sender<(String, String)>,
}

impl PolicyRegistry {
    /// Loads the bundled defaults; failing here is a build defect, reported at start.
    pub fn new(engine: PolicyEngine) -> Result<Self, LoadError> {
        let mut defaults = HashMap::new();
        for (kind, name, bytes) in bundled::defaults() {
            let policy = engine.load(kind, name, bytes)?;
            let active =
                ActivePolicy { policy, config: vec![], loaded_at: SystemTime::now(), origin: "bundled".into() };
            defaults.insert(kind, Arc::new(active));
        }
        let (changes, _) = tokio::sync::broadcast::channel(256);
        Ok(Self {
            engine,
            defaults,
            custom: RwLock::default(),
            declared: RwLock::default(),
            declared_complete: AtomicBool::new(false),
            changes,
        })
    }

    /// The (namespace, name) of each PinotPolicy from the moment its module or configuration
    /// changes or it is removed: a cluster that decides with it decides again at once. A
    /// receiver that falls behind is told so (`RecvError::Lagged`) and should take every
    /// policy as changed.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<(String, String)> {
        self.changes.subscribe()
    }

    fn changed(&self, namespace: &str, name: &str) {
        // No receiver (no cluster controller running) is fine.
        let _ = self.changes.send((namespace.to_string(), name.to_string()));
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    pub fn default_for(&self, kind: PolicyKind) -> Arc<ActivePolicy> {
        self.defaults[&kind].clone()
    }

    /// The active module of a PinotPolicy, if one loaded.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<ActivePolicy>> {
        self.custom.read().unwrap_or_else(|e| e.into_inner()).get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// The policy a cluster of `namespace` decides `kind` with: the PinotPolicy `name` of its
    /// namespace if one exists, else the ClusterPinotPolicy `name`; the bundled default when
    /// it names none.
    pub fn resolve(
        &self,
        namespace: &str,
        name: Option<&str>,
        kind: PolicyKind,
    ) -> Result<Arc<ActivePolicy>, ResolveError> {
        let Some(name) = name else { return Ok(self.default_for(kind)) };
        let (scope, active) = match self.get(namespace, name) {
            Some(active) => (namespace, active),
            None if self.is_declared(namespace, name) || !self.declared_complete.load(Ordering::Acquire) => {
                return Err(ResolveError::NotLoaded { namespace: namespace.into(), name: name.into() });
            }
            None => match self.get(CLUSTER_SCOPE, name) {
                Some(active) => (CLUSTER_SCOPE, active),
                None => return Err(ResolveError::NotFound { namespace: namespace.into(), name: name.into() }),
            },
        };
        if active.policy.kind != kind {
            return Err(ResolveError::WrongKind {
                namespace: scope.into(),
                name: name.into(),
                found: active.policy.kind,
                wanted: kind,
            });
        }
        Ok(active)
    }

    fn is_declared(&self, namespace: &str, name: &str) -> bool {
        self.declared.read().unwrap_or_else(|e| e.into_inner()).contains(&(namespace.to_string(), name.to_string()))
    }

    /// A PinotPolicy exists (whether or not its module loads): it wins over the
    /// ClusterPinotPolicy of its name in its namespace.
    pub fn declare(&self, namespace: &str, name: &str) {
        let added =
            self.declared.write().unwrap_or_else(|e| e.into_inner()).insert((namespace.to_string(), name.to_string()));
        if added {
            self.changed(namespace, name);
        }
    }

    /// Every PinotPolicy that exists, once the first list of them is complete: from now on a
    /// cluster whose namespace has no PinotPolicy of a name decides with the ClusterPinotPolicy
    /// of that name.
    pub fn declare_all(&self, policies: impl IntoIterator<Item = (String, String)>) {
        self.declared.write().unwrap_or_else(|e| e.into_inner()).extend(policies);
        if !self.declared_complete.swap(true, Ordering::AcqRel) {
            let cluster_policies: Vec<String> = self
                .custom
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .filter(|(ns, _)| ns == CLUSTER_SCOPE)
                .map(|(_, name)| name.clone())
                .collect();
            for name in cluster_policies {
                self.changed(CLUSTER_SCOPE, &name);
            }
        }
    }

    /// Compiles and smoke-tests a module and makes it the active one for the PinotPolicy;
    /// on any failure the previous module stays active. Blocking: call it off the async
    /// runtime (`spawn_blocking`).
    pub fn install(
        &self,
        namespace: &str,
        name: &str,
        kind: PolicyKind,
        bytes: &[u8],
        expected_digest: &str,
        config: Vec<(String, String)>,
    ) -> Result<Arc<ActivePolicy>, InstallError> {
        let found = digest(bytes);
        let expected = normalise_digest(expected_digest);
        if found != expected {
            return Err(InstallError::DigestMismatch { expected, found });
        }
        let policy = self.engine.load(kind, &format!("{namespace}/{name}"), bytes)?;
        let origin = describe(namespace, name);
        let active = Arc::new(ActivePolicy { policy, config, loaded_at: SystemTime::now(), origin });
        self.custom.write().unwrap_or_else(|e| e.into_inner()).insert((namespace.into(), name.into()), active.clone());
        self.changed(namespace, name);
        Ok(active)
    }

    /// Keeps the module but changes the configuration it decides with.
    pub fn reconfigure(&self, namespace: &str, name: &str, config: Vec<(String, String)>) -> Option<Arc<ActivePolicy>> {
        let mut custom = self.custom.write().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        let old = custom.get(&key)?.clone();
        let policy = old.policy.clone_handle();
        let active = Arc::new(ActivePolicy { policy, config, loaded_at: old.loaded_at, origin: old.origin.clone() });
        custom.insert(key, active.clone());
        drop(custom);
        self.changed(namespace, name);
        Some(active)
    }

    /// Takes the policy's module out of service (its signature is no longer trusted); the
    /// PinotPolicy still claims its name.
    pub fn unload(&self, namespace: &str, name: &str) {
        let removed =
            self.custom.write().unwrap_or_else(|e| e.into_inner()).remove(&(namespace.to_string(), name.to_string()));
        if removed.is_some() {
            self.changed(namespace, name);
        }
    }

    /// The policy is gone: its module, and (for a PinotPolicy) its claim on its name.
    pub fn remove(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let removed = self.custom.write().unwrap_or_else(|e| e.into_inner()).remove(&key);
        let undeclared = self.declared.write().unwrap_or_else(|e| e.into_inner()).remove(&key);
        if removed.is_some() || undeclared {
            self.changed(namespace, name);
        }
    }

    /// One decision with a policy, its configuration given to it.
    pub fn decide(&self, active: &ActivePolicy, state: &ClusterState) -> Result<Vec<Action>, DecisionError> {
        let start = std::time::Instant::now();
        let result = if active.config.is_empty() {
            self.engine.decide(&active.policy, state)
        } else {
            let mut state = state.clone();
            state.config = active.config.clone();
            self.engine.decide(&active.policy, &state)
        };
        let policy = active.policy.info.name.as_str();
        crate::metrics::observe(
            "pinot_operator_policy_decision_duration_seconds",
            &[("policy", policy)],
            start.elapsed(),
        );
        if let Err(e) = &result {
            crate::metrics::inc(
                "pinot_operator_policy_decision_failures_total",
                &[("policy", policy), ("reason", e.reason())],
            );
        }
        result
    }
}
