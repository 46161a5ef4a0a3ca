//! Loading and reloading policy modules, with no Kubernetes in it: a module's bytes (however
//! the caller got them, or read here from a file of the operator's policy directory) are
//! checked against the digest the policy names, compiled and smoke-tested off the async
//! runtime, and swapped into the [`PolicyRegistry`]; a module that fails keeps the last good
//! one active. [`directory_changes`] watches the policy directory with `notify`: the `..data`
//! symlink swap of a mounted ConfigMap, atomic renames and in-place writes all end in a
//! rescan, at once when an event says a file is complete (a rename onto its name, a close
//! after writing), otherwise after a short quiet time; reads are ignored (reading the files
//! would otherwise trigger an endless rescan loop).
//!
//! The PinotPolicy controller ([`crate::policy_controller`]) reads the policies and their
//! ConfigMaps, calls [`reload`], and reports the outcome in status and events.

use std::{path::Path, sync::Arc, time::Duration};

use futures::Stream;
use notify::{EventKind, RecursiveMode, Watcher};

use super::{InstallError, PolicyKind, PolicyRegistry, registry::normalise_digest, runtime::digest};

/// Quiet time after the last file event before the directory is rescanned.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// A module that is not (or not again) active: the reason a PinotPolicy's status gives, and
/// the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    /// The policy names its module wrongly (`InvalidSpec`).
    pub fn invalid_spec(message: impl Into<String>) -> Self {
        Rejection { reason: "InvalidSpec", message: message.into() }
    }

    /// The module the policy names cannot be read (`ModuleNotFound`).
    pub fn not_found(message: impl Into<String>) -> Self {
        Rejection { reason: "ModuleNotFound", message: message.into() }
    }
}

/// A policy's module, read, with what the policy says about it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub kind: PolicyKind,
    pub bytes: Vec<u8>,
    /// The digest the policy was reviewed with (`sha256:<hex>` or bare hex).
    pub sha256: String,
    /// The configuration the module decides with.
    pub config: Vec<(String, String)>,
}

/// What [`reload`] did with an accepted module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// A new module was compiled, smoke-tested and swapped in.
    Installed,
    /// The module was already active; only its configuration was updated, if it changed.
    Unchanged,
}

/// The kind a policy's `spec.kind` names.
pub fn parse_kind(kind: &str) -> Result<PolicyKind, Rejection> {
    PolicyKind::parse(kind)
        .ok_or_else(|| Rejection::invalid_spec(format!("spec.kind {kind:?} is not upgrade, scaling or tenant")))
}

/// The bytes of `file`, a plain file name in the operator's policy directory (`None` when the
/// operator runs without one).
pub async fn read_module_file(policy_dir: Option<&Path>, file: &str) -> Result<Vec<u8>, Rejection> {
    let Some(dir) = policy_dir else {
        return Err(Rejection::not_found("spec.module.file is set but the operator runs without --policy-dir"));
    };
    if file.contains('/') || file.starts_with('.') || file.is_empty() {
        return Err(Rejection::invalid_spec(format!(
            "spec.module.file {file:?} must be a plain file name in the policy directory"
        )));
    }
    let path = dir.join(file);
    tokio::fs::read(&path).await.map_err(|e| Rejection::not_found(format!("reading {}: {e}", path.display())))
}

/// Makes `candidate` the active module of the policy `namespace/name`: refused when its digest
/// is not the one the policy names (whatever runs stays); when the same module is already
/// active only its configuration changes; otherwise it is compiled and smoke-tested on a
/// blocking thread (compiling takes CPU time, kept off the runtime that serves reconciles) and
/// swapped in. On any failure the module loaded before stays active.
pub async fn reload(
    registry: &Arc<PolicyRegistry>,
    namespace: &str,
    name: &str,
    candidate: Candidate,
) -> Result<Reloaded, Rejection> {
    let Candidate { kind, bytes, sha256, config } = candidate;
    let expected = normalise_digest(&sha256);
    let found = digest(&bytes);
    match registry.get(namespace, name) {
        // The module changed behind the spec's back: keep what runs.
        _ if found != expected => Err(Rejection {
            reason: "DigestMismatch",
            message: InstallError::DigestMismatch { expected, found }.to_string(),
        }),
        // Same module: only the configuration may have changed.
        Some(active) if active.policy.digest == expected && active.policy.kind == kind => {
            if active.config != config {
                registry.reconfigure(namespace, name, config);
            }
            Ok(Reloaded::Unchanged)
        }
        _ => {
            let registry = registry.clone();
            let (namespace, name) = (namespace.to_string(), name.to_string());
            match tokio::task::spawn_blocking(move || {
                registry.install(&namespace, &name, kind, &bytes, &sha256, config)
            })
            .await
            {
                Ok(result) => result
                    .map(|_| Reloaded::Installed)
                    .map_err(|e| Rejection { reason: e.reason(), message: e.to_string() }),
                Err(e) => Err(Rejection { reason: "SmokeTestFailed", message: format!("loading panicked: {e}") }),
            }
        }
    }
}

/// A stream that yields once per burst of changes in `dir`: at once when an event says a file
/// is complete (a rename onto its name, which is how atomic writes and a mounted ConfigMap's
/// `..data` swap end, or the close of a file written in place), otherwise once the burst has
/// been quiet for `DEBOUNCE`.
pub fn directory_changes(dir: &Path) -> notify::Result<impl Stream<Item = ()> + Send + 'static> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && let Some(change) = Change::of(&event.kind)
        {
            let _ = tx.send(change);
        }
    })?;
    // Recursive: a write through the `..data` symlink lands in a subdirectory.
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while let Some(first) = rx.recv().await {
            // Debounce until the burst is over, unless a file is known to be complete.
            let mut complete = first == Change::Complete;
            while !complete {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(change)) => complete = change == Change::Complete,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if out_tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(tokio_stream(out_rx))
}

/// What a file event says about the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// A file is complete: renamed onto its name, or closed after writing.
    Complete,
    /// Something changed and more may follow.
    Changing,
}

impl Change {
    /// `None` for events that change nothing: reads (the rescan's own reads would otherwise
    /// trigger an endless rescan loop).
    fn of(kind: &EventKind) -> Option<Change> {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Complete),
            EventKind::Access(_) => None,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Change::Complete),
            _ => Some(Change::Changing),
        }
    }
}

fn tokio_stream(mut rx: tokio::sync::mpsc::UnboundedReceiver<()>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod change_tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};

    use super::*;

    #[test]
    fn completed_files_trigger_at_once_writes_in_progress_wait_and_reads_are_ignored() {
        let complete = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        ];
        for kind in complete {
            assert_eq!(Change::of(&kind), Some(Change::Complete), "{kind:?}");
        }
        let changing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ];
        for kind in changing {
            assert_eq!(Change::of(&kind), Some(Change::Changing), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert_eq!(Change::of(&kind), None, "{kind:?}");
        }
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;
    use crate::policy::{PolicyEngine, PolicyLimits, bundled};

    fn registry() -> Arc<PolicyRegistry> {
        Arc::new(PolicyRegistry::new(PolicyEngine::new(PolicyLimits::default()).unwrap()).unwrap())
    }

    fn candidate(bytes: &[u8], sha256: &str, config: &[(&str, &str)]) -> Candidate {
        Candidate {
            kind: PolicyKind::Upgrade,
            bytes: bytes.to_vec(),
            sha256: sha256.into(),
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn an_unknown_kind_is_an_invalid_spec() {
        assert_eq!(parse_kind("upgrade"), Ok(PolicyKind::Upgrade));
        assert_eq!(parse_kind("rollout").unwrap_err().reason, "InvalidSpec");
    }

    #[tokio::test]
    async fn a_module_file_is_a_plain_name_in_the_policy_directory() {
        let dir = std::env::temp_dir().join(format!("pinot-reload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.wasm"), b"module").unwrap();
        assert_eq!(read_module_file(Some(&dir), "p.wasm").await, Ok(b"module".to_vec()));
        assert_eq!(read_module_file(None, "p.wasm").await.unwrap_err().reason, "ModuleNotFound");
        assert_eq!(read_module_file(Some(&dir), "missing.wasm").await.unwrap_err().reason, "ModuleNotFound");
        for bad in ["", "../p.wasm", "sub/p.wasm", ".hidden"] {
            assert_eq!(read_module_file(Some(&dir), bad).await.unwrap_err().reason, "InvalidSpec", "{bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_module_is_installed_once_reconfigured_in_place_and_a_wrong_digest_keeps_it() {
        let registry = registry();
        let module = bundled::UPGRADE_DEFAULT;
        let sha = digest(module);
        let first = reload(&registry, "ns", "p", candidate(module, &sha, &[])).await;
        assert_eq!(first, Ok(Reloaded::Installed));
        let loaded_at = registry.get("ns", "p").unwrap().loaded_at;

        let again =
            reload(&registry, "ns", "p", candidate(module, &sha["sha256:".len()..].to_uppercase(), &[("k", "v")]))
                .await;
        assert_eq!(again, Ok(Reloaded::Unchanged));
        let active = registry.get("ns", "p").unwrap();
        assert_eq!(active.config, vec![("k".to_string(), "v".to_string())]);
        assert_eq!(active.loaded_at, loaded_at);

        let other = bundled::SCALING_DEFAULT;
        let rejected = reload(&registry, "ns", "p", candidate(other, &sha, &[])).await.unwrap_err();
        assert_eq!(rejected.reason, "DigestMismatch");
        assert_eq!(registry.get("ns", "p").unwrap().policy.digest, sha);
    }

    #[tokio::test]
    async fn a_module_that_does_not_compile_is_rejected_and_nothing_is_installed() {
        let registry = registry();
        let bytes = b"not wasm";
        let rejected = reload(&registry, "ns", "p", candidate(bytes, &digest(bytes), &[])).await.unwrap_err();
        assert_eq!(rejected.reason, "DoesNotCompile");
        assert!(registry.get("ns", "p").is_none());
    }
}
