//! The policies a running operator can decide with: the bundled defaults, and every
//! PinotPolicy that loaded. A new module replaces the old one atomically: decisions in flight
//! hold their `Arc` and finish on the old module; a module that fails to load never replaces
//! the last good one.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::SystemTime,
};

use super::{
    Action, ClusterState, DecisionError, LoadError, LoadedPolicy, PolicyEngine, PolicyKind, bundled, runtime::digest,
};

/// A module that is active, with the configuration it decides with.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: LoadedPolicy,
    pub config: Vec<(String, String)>,
    /// When the module was installed (a change of configuration keeps it).
    pub loaded_at: SystemTime,
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
        "PinotPolicy {namespace}/{name} is not loaded (it does not exist, or its module was rejected: see its status)"
    )]
    NotLoaded { namespace: String, name: String },
    #[error("PinotPolicy {namespace}/{name} implements {found}, not {wanted}; name a policy of the right kind")]
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
            defaults.insert(kind, Arc::new(ActivePolicy { policy, config: vec![], loaded_at: SystemTime::now() }));
        }
        let (changes, _) = tokio::sync::broadcast::channel(256);
        Ok(Self { engine, defaults, custom: RwLock::default(), changes })
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

    /// The policy a cluster decides `kind` with: the named PinotPolicy, or the default.
    pub fn resolve(
        &self,
        namespace: &str,
        name: Option<&str>,
        kind: PolicyKind,
    ) -> Result<Arc<ActivePolicy>, ResolveError> {
        let Some(name) = name else { return Ok(self.default_for(kind)) };
        let active = self
            .get(namespace, name)
            .ok_or_else(|| ResolveError::NotLoaded { namespace: namespace.into(), name: name.into() })?;
        if active.policy.kind != kind {
            return Err(ResolveError::WrongKind {
                namespace: namespace.into(),
                name: name.into(),
                found: active.policy.kind,
                wanted: kind,
            });
        }
        Ok(active)
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
        let active = Arc::new(ActivePolicy { policy, config, loaded_at: SystemTime::now() });
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
        let active = Arc::new(ActivePolicy { policy, config, loaded_at: old.loaded_at });
        custom.insert(key, active.clone());
        drop(custom);
        self.changed(namespace, name);
        Some(active)
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        let removed =
            self.custom.write().unwrap_or_else(|e| e.into_inner()).remove(&(namespace.to_string(), name.to_string()));
        if removed.is_some() {
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
