//! The wasmtime host: one `Engine` for the process, one `InstancePre` per loaded module, and a
//! fresh `Store` per decision with an epoch deadline and a memory cap.
//!
//! A module's imports are checked at load against what its kind may use: the contract's
//! `state`, `log` and its own kind's actions, and WASI. Only a module that imports WASI
//! (componentize-py's do; Rust policies built with the SDK do not) is linked with it, and gets
//! an empty context: no files, no environment, no network, no arguments; stderr goes to the
//! operator's log. Anything else it imports refuses it, with the import named.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, ResourceLimiter, Store, Trap,
    component::{
        Component, ComponentExportIndex, ComponentNamedList, HasSelf, InstancePre, Lift, Linker, Lower, ResourceTable,
        TypedFunc, types::ComponentItem,
    },
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe};

use super::{
    contract::{SUPPORTED_API_VERSIONS, v0_3, v1},
    model::{Action, ClusterState, Columns, Info},
};

/// Instances that can exist at once (decisions running in parallel); a decision beyond that
/// fails with an error and is retried by its reconcile.
const POOLED_INSTANCES: u32 = 32;

/// Decisions the operator runs at once, well within the pool (a reload's checks and `policy
/// test` take instances too).
pub const PARALLEL_DECISIONS: usize = POOLED_INSTANCES as usize / 2;

/// How much of a used instance's memory is reset in place rather than unmapped.
const KEEP_RESIDENT: usize = 4 << 20;

/// How much of a module's stderr is kept per call.
const STDERR_CAPACITY: usize = 16 << 10;

/// The epoch advances this often; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Which decision a policy takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    Upgrade,
    Scaling,
    Tenant,
}

impl PolicyKind {
    pub fn world(self) -> &'static str {
        match self {
            PolicyKind::Upgrade => "upgrade-policy",
            PolicyKind::Scaling => "scaling-policy",
            PolicyKind::Tenant => "tenant-policy",
        }
    }

    /// The kind as a PinotPolicy's `spec.kind` writes it.
    pub fn spec_name(self) -> &'static str {
        match self {
            PolicyKind::Upgrade => "upgrade",
            PolicyKind::Scaling => "scaling",
            PolicyKind::Tenant => "tenant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "upgrade" | "upgrade-policy" => Some(PolicyKind::Upgrade),
            "scaling" | "scaling-policy" => Some(PolicyKind::Scaling),
            "tenant" | "tenant-policy" => Some(PolicyKind::Tenant),
            _ => None,
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Limits every decision runs under.
#[derive(Clone, Copy, Debug)]
pub struct PolicyLimits {
    /// Wall time a decision may take.
    pub deadline: Duration,
    /// Linear memory a module may grow to.
    pub memory_bytes: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self { deadline: Duration::from_millis(250), memory_bytes: 32 << 20 }
    }
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the module does not compile as a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "the component is not a {world} (it must export `pinot:policy/{export}@1.x`, or `info` and `{export_0_3}` of {}): {message}",
        SUPPORTED_API_VERSIONS[1]
    )]
    WrongWorld { world: &'static str, export: &'static str, export_0_3: &'static str, message: String },
    #[error("the component imports what a {world} may not use: {message}")]
    Imports { world: &'static str, message: String },
    #[error(
        "the component says it implements {found}, but its exports are those of {expected} (this operator loads {}); rebuild it with the current pinot-policy-sdk",
        SUPPORTED_API_VERSIONS.join(" and ")
    )]
    WrongApiVersion { found: String, expected: &'static str },
    #[error("the smoke test failed: {0}")]
    SmokeTest(DecisionError),
}

/// Why a decision failed. The store is discarded; the operator keeps running.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecisionError {
    #[error("the policy ran past its deadline of {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the policy tried to use more than {0} bytes of memory and was stopped")]
    OutOfMemory(usize),
    #[error("the policy trapped: {0}")]
    Trap(String),
    #[error("the policy refused to decide: {0}")]
    Refused(String),
}

impl DecisionError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecisionError::Timeout(_) => "timeout",
            DecisionError::OutOfMemory(_) => "out_of_memory",
            DecisionError::Trap(_) => "trap",
            DecisionError::Refused(_) => "refused",
        }
    }
}

/// What a module's `Store` holds: the decision (its state and the actions asked for, for
/// modules of 1.0.0), an empty WASI context (made on the module's first WASI call) and the
/// memory accounting.
pub struct PluginState {
    decision: v1::Decision,
    /// `None` until the module makes a WASI call: a policy deciding from its state makes none
    /// (a panic message or a print does), and building a context (random number generators
    /// seeded from the OS, clocks, stdio) is a good part of what a store costs.
    wasi: Option<Wasi>,
    memory_limit: usize,
    memory_exceeded: bool,
    plugin: Arc<str>,
    /// Keeps the epoch ticking while this store exists.
    _ticking: Ticking,
}

/// The WASI a module gets: nothing in it, stderr kept for the log.
struct Wasi {
    ctx: WasiCtx,
    /// What the module wrote to stderr (a Rust panic message, for one), logged after the call.
    stderr: MemoryOutputPipe,
    table: ResourceTable,
}

impl Wasi {
    fn new() -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        Self { ctx: WasiCtx::builder().stderr(stderr.clone()).build(), stderr, table: ResourceTable::new() }
    }
}

/// Advances the engine's epoch every `EPOCH_TICK` while some store exists (a decision, a
/// module's check) and sleeps otherwise: an idle operator takes no wake-ups for it.
struct Ticker {
    running: AtomicUsize,
    stop: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Arc<Self>> {
        let ticker =
            Arc::new(Self { running: AtomicUsize::new(0), stop: AtomicBool::new(false), thread: Default::default() });
        let t = ticker.clone();
        let handle = std::thread::Builder::new().name("policy-epoch".into()).spawn(move || {
            while !t.stop.load(Ordering::Relaxed) {
                if t.running.load(Ordering::Acquire) == 0 {
                    // Woken by the next store (or to stop); the timeout is only a safety net.
                    std::thread::park_timeout(Duration::from_secs(1));
                    continue;
                }
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    fn ticking(self: &Arc<Self>) -> Ticking {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Ticking(self.clone())
    }
}

struct Ticking(Arc<Ticker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(Wasi::new);
        WasiCtxView { ctx: &mut wasi.ctx, table: &mut wasi.table }
    }
}

impl ResourceLimiter for PluginState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            // Trap instead of returning -1 from memory.grow: Rust's allocator would abort anyway.
            return Err(wasmtime::Error::msg(format!("memory limit of {} bytes exceeded", self.memory_limit)));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl v0_3::host::Host for PluginState {
    fn log(&mut self, level: v0_3::host::Level, message: String) {
        self.write_log(v0_3::into_level(level), message)
    }
}

impl v1::log::Host for PluginState {
    fn log(&mut self, level: v1::Level, message: String) -> wasmtime::Result<()> {
        self.write_log(level, message);
        Ok(())
    }
}

impl PluginState {
    fn write_log(&mut self, level: v1::Level, message: String) {
        let plugin = &*self.plugin;
        let message: String = message.chars().take(4096).collect();
        match level {
            v1::Level::Debug => tracing::debug!(plugin, "{message}"),
            v1::Level::Info => tracing::info!(plugin, "{message}"),
            v1::Level::Warn => tracing::warn!(plugin, "{message}"),
            v1::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// A linked module and where its exports are, by contract version.
#[derive(Clone)]
enum Pre {
    /// `pinot:policy@1.x`: `info` and `plan` of the interface of its kind.
    V1 { pre: InstancePre<PluginState>, info: ComponentExportIndex, plan: ComponentExportIndex },
    /// `pinot:policy@0.3.0`: top-level `info` and plan exports, type-checked at load.
    V0_3 { pre: InstancePre<PluginState>, info: ComponentExportIndex, plan: ComponentExportIndex },
}

impl Pre {
    /// A 1.x module whose interface of its kind is exported as `interface` (e.g.
    /// `pinot:policy/upgrade@1.0.0`). The exports' types are checked on every call, which for
    /// these two small signatures costs next to nothing.
    fn v1(pre: InstancePre<PluginState>, interface: &str) -> wasmtime::Result<Pre> {
        let component = pre.component();
        let instance = component
            .get_export_index(None, interface)
            .ok_or_else(|| wasmtime::Error::msg(format!("no export `{interface}`")))?;
        let export = |name: &str| {
            component
                .get_export_index(Some(&instance), name)
                .ok_or_else(|| wasmtime::Error::msg(format!("`{interface}` exports no `{name}`")))
        };
        let (info, plan) = (export("info")?, export("plan")?);
        Ok(Pre::V1 { pre, info, plan })
    }

    /// A 0.3.0 module: its exports type-checked against 0.3.0's world of `kind`. This is the
    /// only type check: calls then use the exports unchecked (see [`call`]).
    fn v0_3(kind: PolicyKind, pre: InstancePre<PluginState>) -> wasmtime::Result<Pre> {
        let checked = pre.clone();
        match kind {
            PolicyKind::Upgrade => v0_3::upgrade::UpgradePolicyPre::new(checked).map(drop)?,
            PolicyKind::Scaling => v0_3::scaling::ScalingPolicyPre::new(checked).map(drop)?,
            PolicyKind::Tenant => v0_3::tenant::TenantPolicyPre::new(checked).map(drop)?,
        }
        let export = |name: &str| {
            pre.component()
                .get_export_index(None, name)
                .ok_or_else(|| wasmtime::Error::msg(format!("no export `{name}`")))
        };
        let (info, plan) = (export("info")?, export(export_0_3(kind))?);
        Ok(Pre::V0_3 { pre, info, plan })
    }
}

/// Instantiates a 0.3.0 module in `store` and calls its export `index` as a function from `P`
/// to `R`.
///
/// Looking an export up by index and calling it without a type check is what keeps the fixed
/// cost of a decision low: a checked lookup walks the whole `cluster-state` type on every
/// instantiation.
///
/// # Safety
/// [`Pre::v0_3`] type-checked the export at `index` against 0.3.0's bindings, and `P` and `R`
/// must be those bindings' parameter and result types.
#[allow(unsafe_code)]
unsafe fn call<P, R>(
    store: &mut Store<PluginState>,
    pre: &InstancePre<PluginState>,
    index: &ComponentExportIndex,
    params: P,
) -> wasmtime::Result<R>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let instance = pre.instantiate(&mut *store)?;
    let func = instance.get_func(&mut *store, index).ok_or_else(|| wasmtime::Error::msg("export not found"))?;
    // SAFETY: the caller's contract (above).
    let typed = unsafe { TypedFunc::<P, R>::new_unchecked(func) };
    typed.call(store, params)
}

/// What a component's imports and exports say it is.
struct Shape {
    /// The name of its export `pinot:policy/<kind>@1.x`, if it has one (else it is taken for a
    /// 0.3.0 module).
    v1: Option<String>,
    /// The contract version its export names (`pinot:policy@1.0.0`, ...).
    api_version: String,
    /// It imports WASI.
    wasi: bool,
}

/// The interface a policy of `kind` exports in 1.x, and the actions it may import.
fn v1_interfaces(kind: PolicyKind) -> (&'static str, &'static str) {
    match kind {
        PolicyKind::Upgrade => ("upgrade", "upgrade-actions"),
        PolicyKind::Scaling => ("scaling", "scaling-actions"),
        PolicyKind::Tenant => ("tenants", "tenant-actions"),
    }
}

/// `pinot:policy/<interface>@<version>` split, for names of this package.
fn policy_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("pinot:policy/")?.split_once('@')
}

/// Reads what a component is from its imports and exports, and refuses one that imports what a
/// policy of `kind` may not use (another kind's actions, a package this operator does not
/// provide), naming the import.
fn shape(engine: &Engine, component: &Component, kind: PolicyKind) -> Result<Shape, LoadError> {
    let ty = component.component_type();
    let (export, actions) = v1_interfaces(kind);
    let mut v1_export = None;
    let mut other_kind = None;
    for (name, _) in ty.exports(engine) {
        match policy_name(name) {
            Some((iface, version)) if version.starts_with("1.") && iface == export => {
                v1_export = Some((name.to_string(), version.to_string()))
            }
            Some((iface @ ("upgrade" | "scaling" | "tenants"), version)) if version.starts_with("1.") => {
                other_kind = Some(format!("it exports pinot:policy/{iface}@{version}"))
            }
            _ => {}
        }
    }
    let world = kind.world();
    if v1_export.is_none()
        && let Some(message) = other_kind
    {
        return Err(LoadError::WrongWorld { world, export, export_0_3: export_0_3(kind), message });
    }
    let refuse = |message: String| LoadError::Imports { world, message };
    let mut wasi = false;
    for (name, item) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            wasi = true;
            continue;
        }
        let allowed = match policy_name(name) {
            Some((iface, version)) if version.starts_with("1.") => {
                if ["types", "state", "log"].contains(&iface) || iface == actions {
                    true
                } else if iface.ends_with("-actions") {
                    return Err(refuse(format!(
                        "it imports {name}, but a {world} may ask only for the actions of pinot:policy/{actions}"
                    )));
                } else {
                    false
                }
            }
            Some((iface, "0.3.0")) => ["types", "host"].contains(&iface),
            _ => false,
        };
        if !allowed {
            let what = if matches!(item.ty, ComponentItem::ComponentInstance(_)) { "interface" } else { "item" };
            return Err(refuse(format!(
                "it imports the {what} `{name}`, which this operator does not provide (a policy may import pinot:policy/state, pinot:policy/log and pinot:policy/{actions} of {}, and WASI)",
                v1::API_VERSION
            )));
        }
    }
    Ok(Shape {
        api_version: v1_export
            .as_ref()
            .map_or_else(|| v0_3::API_VERSION.to_string(), |(_, v)| format!("pinot:policy@{v}")),
        v1: v1_export.map(|(name, _)| name),
        wasi,
    })
}

/// A compiled, linked and smoke-tested module, ready for decisions.
pub struct LoadedPolicy {
    pub kind: PolicyKind,
    pub name: Arc<str>,
    pub info: Info,
    /// `sha256:<hex>` of the module's bytes.
    pub digest: String,
    pre: Pre,
    /// The WASI linker was needed (the module imports WASI).
    wasi: bool,
}

impl LoadedPolicy {
    /// The contract version the module implements, e.g. `pinot:policy@1.0.0`.
    pub fn api_version(&self) -> &str {
        &self.info.api_version
    }

    /// Whether the module imports WASI (and is given an empty one).
    pub fn uses_wasi(&self) -> bool {
        self.wasi
    }

    /// Another handle on the same compiled and linked module.
    pub fn clone_handle(&self) -> LoadedPolicy {
        LoadedPolicy {
            kind: self.kind,
            name: self.name.clone(),
            info: self.info.clone(),
            digest: self.digest.clone(),
            pre: self.pre.clone(),
            wasi: self.wasi,
        }
    }
}

impl fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish()
    }
}

/// `sha256:<hex>` of some bytes, as PinotPolicy digests are written.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

struct EngineInner {
    engine: Engine,
    /// The contract's imports of every supported version.
    pure: Linker<PluginState>,
    /// The same and WASI, for modules that import it.
    with_wasi: Linker<PluginState>,
    limits: PolicyLimits,
    ticker: Arc<Ticker>,
    /// Compiled components by digest: the same bytes are compiled once.
    compiled: Mutex<HashMap<String, Component>>,
    /// Where compiled components are kept across restarts, if anywhere (see [`DiskCache`]).
    disk: Option<DiskCache>,
    /// Columns of finished 1.0.0 decisions, emptied and filled again by the next ones: laying a
    /// state out in them then allocates nothing.
    spare_columns: Mutex<Vec<Columns>>,
}

/// Spare columns kept: one per decision running at once, as a few do.
const SPARE_COLUMNS: usize = 8;

/// Compiled components on disk, so that a restarted operator loads its modules in well under
/// a millisecond instead of compiling them again. Files are keyed by the module's digest under
/// a directory named after the engine's compatibility hash (wasmtime version, configuration,
/// CPU features), so a changed operator never reads another's code; wasmtime checks that
/// header once more when it loads one.
///
/// Precompiled code is native code and is not validated again, so only code this operator
/// compiled itself may be loaded: the directory is created private to the operator's user
/// (0700) and its files written 0600 by rename; a directory or file with looser permissions is
/// never read from (and the cache is then skipped with a warning).
struct DiskCache {
    dir: std::path::PathBuf,
}

impl DiskCache {
    fn open(root: &std::path::Path, engine: &Engine) -> std::io::Result<DiskCache> {
        use std::{
            hash::{Hash, Hasher},
            os::unix::fs::{DirBuilderExt, PermissionsExt},
        };
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("wasmtime-{:016x}", hasher.finish()));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        for d in [root, dir.as_path()] {
            let mode = std::fs::metadata(d)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(std::io::Error::other(format!(
                    "{} is accessible to other users (mode {:o}); make it 0700",
                    d.display(),
                    mode & 0o777
                )));
            }
        }
        Ok(DiskCache { dir })
    }

    fn path(&self, digest: &str) -> std::path::PathBuf {
        self.dir.join(format!("{}.cwasm", digest.trim_start_matches("sha256:")))
    }

    /// A component this operator compiled earlier, if the cache has one.
    #[allow(unsafe_code)]
    fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(digest);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "ignoring a cached module that is not a private file");
            return None;
        }
        // Read into memory rather than mapped: a mapped file truncated under a running
        // operator would crash it (SIGBUS).
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the file was written by `store` of an operator with this engine
        // configuration (the directory is named after its compatibility hash and is private to
        // this user), and wasmtime checks the compatibility header again.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable cached module");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store(&self, digest: &str, component: &Component) {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let path = self.path(digest);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = component.serialize().map_err(std::io::Error::other).and_then(|bytes| {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "could not cache a compiled module");
        }
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.ticker.thread.get() {
            thread.unpark();
        }
    }
}

/// The process's policy engine; cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

impl PolicyEngine {
    pub fn new(limits: PolicyLimits) -> Result<Self, wasmtime::Error> {
        Self::with_cache(limits, None)
    }

    /// An engine that keeps compiled modules in `cache_dir` across restarts (see
    /// [`DiskCache`]); a directory it cannot use is reported and skipped, never fatal.
    pub fn with_cache(limits: PolicyLimits, cache_dir: Option<&std::path::Path>) -> Result<Self, wasmtime::Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // A decision's time is wasmtime's (instantiation, lowering the state), not the policy's own
        // code: compiling without optimizations takes a third less, which is what keeps a hot
        // reload under 100 ms, and decisions are as fast.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        // Decisions instantiate a module every time: a pool of pre-mapped instance slots
        // (with copy-on-write memory images) makes that cheap.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 4)
            .total_memories(POOLED_INSTANCES * 4)
            .total_tables(POOLED_INSTANCES * 4)
            .max_memory_size(limits.memory_bytes.max(1 << 20))
            // Reset a used slot by scanning for the pages the decision dirtied and zeroing just
            // those (Linux 6.7+), instead of unmapping them: the next decision then takes no
            // page faults. Elsewhere this falls back to madvise.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut pure: Linker<PluginState> = Linker::new(&engine);
        v1::add_to_linker(&mut pure, |s| &mut s.decision)?;
        v1::log::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut pure, |s| s)?;
        v0_3::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut pure, |s| s)?;
        let mut with_wasi = pure.clone();
        wasmtime_wasi::p2::add_to_linker_sync(&mut with_wasi)?;

        let ticker = Ticker::start(engine.clone())
            .map_err(|e| wasmtime::Error::msg(format!("starting the epoch ticker: {e}")))?;
        let disk = cache_dir.and_then(|root| match DiskCache::open(root, &engine) {
            Ok(cache) => {
                tracing::info!(dir = %cache.dir.display(), "compiled policy modules are cached on disk");
                Some(cache)
            }
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "not caching compiled policy modules on disk");
                None
            }
        });
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                pure,
                with_wasi,
                limits,
                ticker,
                compiled: Mutex::default(),
                disk,
                spare_columns: Mutex::default(),
            }),
        })
    }

    pub fn limits(&self) -> PolicyLimits {
        self.inner.limits
    }

    /// Compiles a module to this engine's native code, as bytes a later
    /// [`PolicyEngine::load_precompiled`] accepts. Never cached.
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        let component = Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        component.serialize().map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    /// Loads a module this operator precompiled itself ([`PolicyEngine::precompile`]) with the
    /// same engine configuration, skipping compilation. The caller must only pass bytes that
    /// came from `precompile` of this build (they are native code and are not validated
    /// again): this is why precompiled modules are never read from anywhere users can write.
    #[allow(unsafe_code)]
    pub fn load_precompiled(
        &self,
        kind: PolicyKind,
        name: &str,
        precompiled: &[u8],
        digest: &str,
    ) -> Result<LoadedPolicy, LoadError> {
        // SAFETY: `precompiled` comes from `Component::serialize` of an engine with this
        // configuration in this process (see the doc comment); wasmtime checks the engine
        // compatibility header itself and refuses bytes of another configuration.
        let component = unsafe { Component::deserialize(&self.inner.engine, precompiled) }
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        self.inner.compiled.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.to_string(), component);
        self.load_compiled(kind, name, digest)
    }

    fn compile(&self, bytes: &[u8], digest: &str) -> Result<Component, LoadError> {
        if let Some(c) = self.inner.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
            return Ok(c.clone());
        }
        let disk = self.inner.disk.as_ref();
        let component = match disk.and_then(|d| d.load(&self.inner.engine, digest)) {
            Some(c) => c,
            None => {
                let c = Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(d) = disk {
                    d.store(digest, &c);
                }
                c
            }
        };
        self.inner.compiled.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.to_string(), component.clone());
        Ok(component)
    }

    /// Compiles, links and smoke-tests a module: `info()` must answer with the supported
    /// api-version, and a decision on an empty cluster must finish within the limits.
    pub fn load(&self, kind: PolicyKind, name: &str, bytes: &[u8]) -> Result<LoadedPolicy, LoadError> {
        let digest = digest(bytes);
        self.compile(bytes, &digest)?;
        self.load_compiled(kind, name, &digest)
    }

    /// Links and smoke-tests a component already in the compiled cache.
    fn load_compiled(&self, kind: PolicyKind, name: &str, digest: &str) -> Result<LoadedPolicy, LoadError> {
        let component = self
            .inner
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
            .ok_or_else(|| LoadError::Compile(format!("{digest} is not compiled")))?;
        let digest = digest.to_string();
        let world = kind.world();
        let shape = shape(&self.inner.engine, &component, kind)?;
        let linker = if shape.wasi { &self.inner.with_wasi } else { &self.inner.pure };
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Imports {
            world,
            message: if shape.v1.is_some() && shape.api_version != v1::API_VERSION {
                format!(
                    "it was built against {} and uses what this operator's {} does not have; upgrade the operator or build the module against {}: {e:#}",
                    shape.api_version,
                    v1::API_VERSION,
                    v1::API_VERSION
                )
            } else {
                format!("{e:#}")
            },
        })?;
        let (export, _) = v1_interfaces(kind);
        let pre = match &shape.v1 {
            Some(interface) => Pre::v1(instance_pre, interface),
            None => Pre::v0_3(kind, instance_pre),
        }
        .map_err(|e| LoadError::WrongWorld {
            world,
            export,
            export_0_3: export_0_3(kind),
            message: format!("{e:#}"),
        })?;
        let mut loaded = LoadedPolicy {
            kind,
            name: Arc::from(name),
            info: Info { name: String::new(), version: String::new(), api_version: shape.api_version.clone() },
            digest,
            pre,
            wasi: shape.wasi,
        };
        loaded.info = self.info(&loaded).map_err(LoadError::SmokeTest)?;
        if shape.v1.is_none() && loaded.info.api_version != v0_3::API_VERSION {
            return Err(LoadError::WrongApiVersion { found: loaded.info.api_version, expected: v0_3::API_VERSION });
        }
        loaded.info.api_version = shape.api_version;
        self.decide(&loaded, &empty_state()).map_err(LoadError::SmokeTest)?;
        Ok(loaded)
    }

    fn store(&self, plugin: &Arc<str>) -> Store<PluginState> {
        let state = PluginState {
            decision: v1::Decision::default(),
            wasi: None,
            memory_limit: self.inner.limits.memory_bytes,
            memory_exceeded: false,
            plugin: plugin.clone(),
            _ticking: self.inner.ticker.ticking(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| s);
        let ticks = (self.inner.limits.deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Logs what the module wrote to stderr during one call.
    fn log_stderr(store: &Store<PluginState>) {
        let Some(wasi) = &store.data().wasi else { return };
        let bytes = wasi.stderr.contents();
        if !bytes.is_empty() {
            let plugin = &*store.data().plugin;
            tracing::warn!(plugin, "policy stderr: {}", String::from_utf8_lossy(&bytes).trim_end());
        }
    }

    fn classify(&self, store: &Store<PluginState>, error: wasmtime::Error) -> DecisionError {
        if store.data().memory_exceeded {
            return DecisionError::OutOfMemory(self.inner.limits.memory_bytes);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => DecisionError::Timeout(self.inner.limits.deadline),
            _ => DecisionError::Trap(format!("{error:#}")),
        }
    }

    /// Asks the module what it is. For a module of 1.x the contract version is the one its
    /// export names (set at load); `info` gives name and version.
    #[allow(unsafe_code)]
    pub fn info(&self, policy: &LoadedPolicy) -> Result<Info, DecisionError> {
        let mut store = self.store(&policy.name);
        let api_version = policy.info.api_version.clone();
        let from_v1 = |i: v1::PolicyInfo| Info { name: i.name, version: i.version, api_version: api_version.clone() };
        let result = match &policy.pre {
            Pre::V1 { pre, info, .. } => pre
                .instantiate(&mut store)
                .and_then(|i| i.get_typed_func::<(), (v1::PolicyInfo,)>(&mut store, info))
                .and_then(|f| f.call(&mut store, ()))
                .map(|(i,)| from_v1(i)),
            // SAFETY: `info` is typed as in 0.3.0's bindings (see `call`).
            Pre::V0_3 { pre, info, .. } => unsafe { call(&mut store, pre, info, ()) }.map(|(i,)| v0_3::into_info(i)),
        };
        Self::log_stderr(&store);
        result.map_err(|e| self.classify(&store, e))
    }

    /// One decision, in a fresh store.
    #[allow(unsafe_code)]
    pub fn decide(&self, policy: &LoadedPolicy, state: &ClusterState) -> Result<Vec<Action>, DecisionError> {
        let mut store = self.store(&policy.name);
        let result = match &policy.pre {
            Pre::V0_3 { pre, plan, .. } => {
                // SAFETY: 0.3.0's state and action types, as `Pre::v0_3` checked (see `call`).
                let r: wasmtime::Result<(Result<Vec<v0_3::tables::Action>, String>,)> =
                    unsafe { call(&mut store, pre, plan, (&v0_3::tables(state),)) };
                r.map(|(r,)| r.map(|a| a.into_iter().map(v0_3::into_action).collect()))
            }
            Pre::V1 { pre, plan, .. } => {
                let mut columns =
                    self.inner.spare_columns.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
                columns.fill(state);
                store.data_mut().decision = v1::Decision::new(columns);
                let result = pre
                    .instantiate(&mut store)
                    .and_then(|i| i.get_typed_func::<(), (Result<(), String>,)>(&mut store, plan))
                    .and_then(|f| f.call(&mut store, ()))
                    .map(|(r,)| r.map(|()| store.data_mut().decision.take_actions()));
                if let Some(columns) = store.data_mut().decision.take_columns() {
                    let mut spare = self.inner.spare_columns.lock().unwrap_or_else(|e| e.into_inner());
                    if spare.len() < SPARE_COLUMNS {
                        spare.push(columns);
                    }
                }
                result
            }
        };
        Self::log_stderr(&store);
        match result {
            Ok(Ok(actions)) => Ok(actions),
            Ok(Err(message)) => Err(DecisionError::Refused(message)),
            Err(e) => Err(self.classify(&store, e)),
        }
    }
}

/// The plan export of a 0.3.0 module of `kind`.
fn export_0_3(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Upgrade => "plan-upgrade",
        PolicyKind::Scaling => "plan-scaling",
        PolicyKind::Tenant => "plan-tenants",
    }
}

/// The state of a cluster with nothing in it, for smoke tests.
pub fn empty_state() -> ClusterState {
    ClusterState {
        name: "smoke-test".into(),
        namespace: "smoke-test".into(),
        generation: 1,
        deployment_order: vec![],
        pools: vec![],
        conditions: vec![],
        tables: vec![],
        tenants: vec![],
        now_unix_seconds: 0,
        config: vec![],
        ensemble: None,
    }
}
