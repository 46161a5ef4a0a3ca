//! The wasmtime host: one `Engine` for the process, one `InstancePre` per loaded module, and a
//! fresh `Store` per decision with an epoch deadline and a memory cap. Rust `wasm32-wasip2`
//! components import `wasi:cli` and `wasi:io` even for pure logic, so a minimal WASI with an
//! empty context (no files, no environment, no network, no arguments; stderr goes to the
//! operator's log) is linked; components that import no WASI at all load too.

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
        TypedFunc,
    },
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe};

use super::{
    contract::{SUPPORTED_API_VERSIONS, v1, v1::host, v2, v3},
    model::{Action, ClusterState, Info},
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
        "the component is not a {world} of any contract version this operator loads (it must export `info` and `{export}` of {}, and import nothing but WASI and pinot:policy/host): {message}",
        SUPPORTED_API_VERSIONS.join(" or ")
    )]
    WrongWorld { world: &'static str, export: &'static str, message: String },
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

/// What a module's `Store` holds: an empty WASI context (made on the module's first WASI call)
/// and the memory accounting.
pub struct PluginState {
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

impl v2::host::Host for PluginState {
    fn log(&mut self, level: v2::host::Level, message: String) {
        host::Host::log(self, v2::into_level(level), message)
    }
}

impl v3::host::Host for PluginState {
    fn log(&mut self, level: v3::host::Level, message: String) {
        host::Host::log(self, v3::into_level(level), message)
    }
}

impl host::Host for PluginState {
    fn log(&mut self, level: host::Level, message: String) {
        let plugin = &*self.plugin;
        let message: String = message.chars().take(4096).collect();
        match level {
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// A contract version this operator loads modules of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
    V3,
}

impl Version {
    /// Newest first: a module is taken for the newest version its exports match.
    const SUPPORTED: [Version; 3] = [Version::V3, Version::V2, Version::V1];

    fn api_version(self) -> &'static str {
        match self {
            Version::V1 => v1::API_VERSION,
            Version::V2 => v2::API_VERSION,
            Version::V3 => v3::API_VERSION,
        }
    }

    /// Type-checks a module's `info` and plan exports against this version's world of `kind`.
    fn typecheck(self, kind: PolicyKind, pre: &InstancePre<PluginState>) -> wasmtime::Result<()> {
        let pre = pre.clone();
        match (self, kind) {
            (Version::V3, PolicyKind::Upgrade) => v3::upgrade::UpgradePolicyPre::new(pre).map(drop),
            (Version::V3, PolicyKind::Scaling) => v3::scaling::ScalingPolicyPre::new(pre).map(drop),
            (Version::V3, PolicyKind::Tenant) => v3::tenant::TenantPolicyPre::new(pre).map(drop),
            (Version::V2, PolicyKind::Upgrade) => v2::upgrade::UpgradePolicyPre::new(pre).map(drop),
            (Version::V2, PolicyKind::Scaling) => v2::scaling::ScalingPolicyPre::new(pre).map(drop),
            (Version::V2, PolicyKind::Tenant) => v2::tenant::TenantPolicyPre::new(pre).map(drop),
            (Version::V1, PolicyKind::Upgrade) => v1::upgrade::UpgradePolicyPre::new(pre).map(drop),
            (Version::V1, PolicyKind::Scaling) => v1::scaling::ScalingPolicyPre::new(pre).map(drop),
            (Version::V1, PolicyKind::Tenant) => v1::tenant::TenantPolicyPre::new(pre).map(drop),
        }
    }
}

/// A linked module: the contract version its exports match and where those exports are.
#[derive(Clone)]
struct Pre {
    pre: InstancePre<PluginState>,
    version: Version,
    info: ComponentExportIndex,
    plan: ComponentExportIndex,
}

impl Pre {
    /// Type-checks the module's exports against each supported contract version, newest first.
    /// This is the only type check: calls then use the exports unchecked (see [`call`]).
    fn new(kind: PolicyKind, pre: InstancePre<PluginState>) -> Result<Pre, wasmtime::Error> {
        let mut errors = Vec::new();
        for version in Version::SUPPORTED {
            match version.typecheck(kind, &pre) {
                Ok(()) => {
                    let export = |name: &str| {
                        pre.component()
                            .get_export_index(None, name)
                            .ok_or_else(|| wasmtime::Error::msg(format!("no export `{name}`")))
                    };
                    let (info, plan) = (export("info")?, export(export_name(kind))?);
                    return Ok(Pre { pre, version, info, plan });
                }
                Err(e) => errors.push(format!("as {}: {e:#}", version.api_version())),
            }
        }
        Err(wasmtime::Error::msg(errors.join("; ")))
    }

    /// The contract version the module's exports match.
    fn api_version(&self) -> &'static str {
        self.version.api_version()
    }
}

/// Instantiates the module in `store` and calls its export `index` as a function from `P` to
/// `R`.
///
/// Looking an export up by index and calling it without a type check is what keeps the fixed
/// cost of a decision low: a checked lookup walks the whole `cluster-state` type on every
/// instantiation.
///
/// # Safety
/// `Pre::new` type-checked the export at `index` against the bindings of the module's contract
/// version, and `P` and `R` must be those bindings' parameter and result types.
#[allow(unsafe_code)]
unsafe fn call<P, R>(
    store: &mut Store<PluginState>,
    pre: &Pre,
    index: &ComponentExportIndex,
    params: P,
) -> wasmtime::Result<R>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let instance = pre.pre.instantiate(&mut *store)?;
    let func = instance.get_func(&mut *store, index).ok_or_else(|| wasmtime::Error::msg("export not found"))?;
    // SAFETY: the caller's contract (above).
    let typed = unsafe { TypedFunc::<P, R>::new_unchecked(func) };
    typed.call(store, params)
}

/// One decision of a module: its plan export called with the state in its version's layout
/// `S`, and its actions `A` mapped back to the host's by `into`.
///
/// # Safety
/// `S` and `A` must be the state and action types of the bindings of the module's version (see
/// [`call`]).
#[allow(unsafe_code)]
unsafe fn plan<S: Lower, A: Lift>(
    store: &mut Store<PluginState>,
    pre: &Pre,
    state: &S,
    into: fn(A) -> Action,
) -> wasmtime::Result<Result<Vec<Action>, String>> {
    // SAFETY: the caller's contract (above).
    let (r,): (Result<Vec<A>, String>,) = unsafe { call(store, pre, &pre.plan, (state,))? };
    Ok(r.map(|a| a.into_iter().map(into).collect()))
}

/// A compiled, linked and smoke-tested module, ready for decisions.
pub struct LoadedPolicy {
    pub kind: PolicyKind,
    pub name: Arc<str>,
    pub info: Info,
    /// `sha256:<hex>` of the module's bytes.
    pub digest: String,
    pre: Pre,
}

impl LoadedPolicy {
    /// The contract version the module implements, e.g. `pinot:policy@0.2.0`.
    pub fn api_version(&self) -> &'static str {
        self.pre.api_version()
    }

    /// Another handle on the same compiled and linked module.
    pub fn clone_handle(&self) -> LoadedPolicy {
        LoadedPolicy {
            kind: self.kind,
            name: self.name.clone(),
            info: self.info.clone(),
            digest: self.digest.clone(),
            pre: self.pre.clone(),
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
    linker: Linker<PluginState>,
    limits: PolicyLimits,
    ticker: Arc<Ticker>,
    /// Compiled components by digest: the same bytes are compiled once.
    compiled: Mutex<HashMap<String, Component>>,
    /// Where compiled components are kept across restarts, if anywhere (see [`DiskCache`]).
    disk: Option<DiskCache>,
}

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
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // `pinot:policy/host` of every supported version.
        host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        v2::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        v3::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;

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
        Ok(Self { inner: Arc::new(EngineInner { engine, linker, limits, ticker, compiled: Mutex::default(), disk }) })
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
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld {
            world: kind.world(),
            export: export_name(kind),
            message: format!("{e:#}"),
        };
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = Pre::new(kind, instance_pre).map_err(wrong)?;
        let mut loaded = LoadedPolicy {
            kind,
            name: Arc::from(name),
            info: Info { name: String::new(), version: String::new(), api_version: String::new() },
            digest,
            pre,
        };
        loaded.info = self.info(&loaded).map_err(LoadError::SmokeTest)?;
        if loaded.info.api_version != loaded.api_version() {
            let expected = loaded.api_version();
            return Err(LoadError::WrongApiVersion { found: loaded.info.api_version, expected });
        }
        self.decide(&loaded, &empty_state()).map_err(LoadError::SmokeTest)?;
        Ok(loaded)
    }

    fn store(&self, plugin: &Arc<str>) -> Store<PluginState> {
        let state = PluginState {
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

    /// Asks the module what it is.
    #[allow(unsafe_code)]
    pub fn info(&self, policy: &LoadedPolicy) -> Result<Info, DecisionError> {
        let mut store = self.store(&policy.name);
        let pre = &policy.pre;
        // SAFETY: `info` is typed as in the bindings of the module's version (see `call`).
        let result = unsafe {
            match pre.version {
                Version::V3 => call(&mut store, pre, &pre.info, ()).map(|(i,)| v3::into_info(i)),
                Version::V2 => call(&mut store, pre, &pre.info, ()).map(|(i,)| v2::into_info(i)),
                Version::V1 => call(&mut store, pre, &pre.info, ()).map(|(i,)| v1::into_info(i)),
            }
        };
        Self::log_stderr(&store);
        result.map_err(|e| self.classify(&store, e))
    }

    /// One decision, in a fresh store.
    #[allow(unsafe_code)]
    pub fn decide(&self, policy: &LoadedPolicy, state: &ClusterState) -> Result<Vec<Action>, DecisionError> {
        let mut store = self.store(&policy.name);
        let pre = &policy.pre;
        // Each version gets the state in its own layout, and its actions are mapped back.
        // SAFETY: each arm passes its version's state and action types (see `plan`).
        let result = unsafe {
            match pre.version {
                Version::V3 => plan(&mut store, pre, &v3::tables(state), v3::into_action),
                Version::V2 => plan(&mut store, pre, &v2::flatten(state), v2::into_action),
                Version::V1 => plan(&mut store, pre, &v1::lower(state), v1::into_action),
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

fn export_name(kind: PolicyKind) -> &'static str {
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
    }
}
