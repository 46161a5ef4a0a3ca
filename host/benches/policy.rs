//! Policy runtime benchmarks: decision latency with a fresh Store at 3, 10 and 30 pools,
//! compile time, precompiled load time and hot-reload time (`cargo bench -p pinot-operator`).
//! Before criterion runs, a percentile pass prints p50 / p99 of decision latency, which the
//! README's table quotes.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use futures::StreamExt;
use pinot_operator::policy::{
    ClusterState, LoadedPolicy, PolicyEngine, PolicyKind, PolicyLimits, PolicyRegistry, bundled,
    model::{Instance, Pod, Pool, Role},
    reload::directory_changes,
    runtime::digest,
};

/// A cluster of `pools` pools of 3 pods each, mid-upgrade.
fn state(pools: usize) -> ClusterState {
    let roles = [Role::Controller, Role::Broker, Role::Server, Role::Minion];
    let pools = (0..pools)
        .map(|i| {
            let name = format!("pool-{i}");
            let pods = (0..3u32)
                .map(|o| Pod {
                    name: format!("c-{name}-{o}"),
                    ordinal: o,
                    revision: if o == 0 { "r2".into() } else { "r1".into() },
                    ready: true,
                    terminating: false,
                    restarts: 0,
                    age_seconds: 100,
                    zone: Some(format!("zone-{}", i % 3)),
                    node_ready: true,
                    instance: Some(Instance {
                        id: format!("Server_c-{name}-{o}.c-{name}-headless.ns.svc.cluster.local_8098"),
                        live: true,
                        enabled: true,
                        queries_enabled: true,
                        tags: vec!["DefaultTenant_OFFLINE".into()],
                        segments: 12,
                        pools: [("DefaultTenant_OFFLINE".to_string(), (i % 3) as u32)].into(),
                    }),
                })
                .collect();
            Pool {
                name,
                role: roles[i % 4],
                zones: vec![format!("zone-{}", i % 3)],
                desired_replicas: 3,
                current_replicas: 3,
                min_replicas: 0,
                max_replicas: 10,
                ready_replicas: 3,
                updated_replicas: 1,
                current_revision: "r1".into(),
                target_revision: "r2".into(),
                image: "apachepinot/pinot:1.3.0".into(),
                max_unavailable: 1,
                pods,
                departed: vec![],
            }
        })
        .collect();
    ClusterState {
        name: "bench".into(),
        namespace: "ns".into(),
        generation: 1,
        deployment_order: roles.to_vec(),
        pools,
        conditions: vec![],
        tables: vec![],
        tenants: vec![],
        now_unix_seconds: 0,
        config: vec![],
        ensemble: None,
    }
}

fn engine() -> PolicyEngine {
    PolicyEngine::new(PolicyLimits::default()).unwrap()
}

/// The bundled default upgrade policy as the SDK of contract 0.3.0 built it: the baseline the
/// 1.x builds of the same policy are measured against, in the same run.
const UPGRADE_DEFAULT_0_3: &[u8] = include_bytes!("../../plugins/testing/contract-0.3.0/upgrade_default.wasm");

/// The same policy as the SDK of contract 1.0.0 built it (before 1.1.0's zones).
const UPGRADE_DEFAULT_1_0: &[u8] = include_bytes!("../../plugins/testing/contract-1.0.0/upgrade_default.wasm");

/// Latency samples of 5000 decisions of each module, the modules taking turns so that all see
/// the same machine (frequency, noise) over the run; sorted.
fn samples(engine: &PolicyEngine, modules: &[&LoadedPolicy], s: &ClusterState) -> Vec<Vec<Duration>> {
    for _ in 0..300 {
        for m in modules {
            engine.decide(m, s).unwrap();
        }
    }
    let time = |p: &LoadedPolicy| {
        let t = Instant::now();
        engine.decide(p, s).unwrap();
        t.elapsed()
    };
    let mut out = vec![Vec::new(); modules.len()];
    for _ in 0..5000 {
        for (m, xs) in modules.iter().zip(&mut out) {
            xs.push(time(m));
        }
    }
    for xs in &mut out {
        xs.sort();
    }
    out
}

fn percentiles() {
    let engine = engine();
    let now = engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    let v1_0 = engine.load(PolicyKind::Upgrade, "upgrade-default-1.0.0", UPGRADE_DEFAULT_1_0).unwrap();
    let before = engine.load(PolicyKind::Upgrade, "upgrade-default-0.3.0", UPGRADE_DEFAULT_0_3).unwrap();
    assert_eq!(now.api_version(), "pinot:policy@1.2.0");
    assert_eq!(v1_0.api_version(), "pinot:policy@1.0.0");
    assert_eq!(before.api_version(), "pinot:policy@0.3.0");
    println!(
        "decision latency, fresh Store per decision (upgrade-default built for contracts 1.2.0, 1.0.0 and 0.3.0, \
         taking turns):"
    );
    println!("| pools | 1.2.0 p50 | 1.2.0 p99 | 1.0.0 p50 | 0.3.0 p50 | 0.3.0 p99 | 1.2.0 / 0.3.0 | 1.0.0 / 0.3.0 |");
    println!("|---|---|---|---|---|---|---|---|");
    for pools in [3, 10, 30] {
        let s = state(pools);
        // All decide alike: the comparison is of the contracts, not of different policies.
        let decided = engine.decide(&before, &s).unwrap();
        assert_eq!(engine.decide(&now, &s).unwrap(), decided);
        assert_eq!(engine.decide(&v1_0, &s).unwrap(), decided);
        let runs = samples(&engine, &[&now, &v1_0, &before], &s);
        let p50 = |v: &[Duration]| micros(v[v.len() / 2]);
        let p99 = |v: &[Duration]| micros(v[v.len() * 99 / 100]);
        let (a, b, c) = (&runs[0], &runs[1], &runs[2]);
        println!(
            "| {pools} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} | {:.2} |",
            p50(a),
            p99(a),
            p50(b),
            p50(c),
            p99(c),
            p50(a) / p50(c),
            p50(b) / p50(c)
        );
    }
}

/// Hot reload from the file system: a module is written into a watched policy directory (an
/// atomic rename, as `kubectl cp` or a ConfigMap volume does it) and the time is taken until the
/// new module is active, through the operator's own watcher (`notify`, debounce) and install
/// path (digest, compile, link, smoke test, swap).
fn reload_latency() {
    let engine = engine();
    let registry = std::sync::Arc::new(PolicyRegistry::new(engine).unwrap());
    let dir = std::env::temp_dir().join(format!("pinot-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    let (reg, watched) = (registry.clone(), dir.clone());
    runtime.block_on(async {
        let mut changes = Box::pin(directory_changes(&watched).unwrap());
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                let Ok(bytes) = tokio::fs::read(watched.join("policy.wasm")).await else { continue };
                let d = digest(&bytes);
                if reg.get("ns", "bench").is_some_and(|a| a.policy.digest == d) {
                    continue;
                }
                let reg = reg.clone();
                let installed = tokio::task::spawn_blocking(move || {
                    reg.install("ns", "bench", PolicyKind::Upgrade, &bytes, &d, vec![]).map(|a| a.policy.digest.clone())
                })
                .await
                .unwrap();
                if let Ok(d) = installed {
                    let _ = done_tx.send(d);
                }
            }
        });
    });
    let mut samples = Vec::new();
    for n in 0..12u32 {
        let module = unique_module(&format!("file-{n:04}"));
        let expected = digest(&module);
        let tmp = dir.join(".policy.wasm.tmp");
        std::fs::write(&tmp, &module).unwrap();
        let t = Instant::now();
        std::fs::rename(&tmp, dir.join("policy.wasm")).unwrap();
        loop {
            let active = done_rx.recv_timeout(Duration::from_secs(10)).expect("the module became active");
            if active == expected {
                break;
            }
        }
        samples.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The first reload also warms up the watcher; leave it out.
    samples.remove(0);
    samples.sort();
    println!(
        "hot reload, file written -> module active: p50 {:.1} ms, max {:.1} ms",
        samples[samples.len() / 2].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default upgrade module with a custom section that makes its bytes (and digest) unique,
/// so nothing comes from the compiled cache.
fn unique_module(name: &str) -> Vec<u8> {
    let mut m = bundled::UPGRADE_DEFAULT.to_vec();
    m.extend_from_slice(&[0, (name.len() + 1) as u8, name.len() as u8]);
    m.extend_from_slice(name.as_bytes());
    m
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn benches(c: &mut Criterion) {
    let engine = engine();
    let policy = engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    let mut group = c.benchmark_group("decision");
    for pools in [3, 10, 30] {
        let s = state(pools);
        group.bench_function(format!("{pools}-pools"), |b| b.iter(|| engine.decide(&policy, &s).unwrap()));
    }
    group.finish();

    let mut group = c.benchmark_group("module");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(|| engine.precompile(bundled::UPGRADE_DEFAULT).unwrap()));
    let precompiled = engine.precompile(bundled::UPGRADE_DEFAULT).unwrap();
    let d = digest(bundled::UPGRADE_DEFAULT);
    group.bench_function("load-precompiled", |b| {
        b.iter(|| engine.load_precompiled(PolicyKind::Upgrade, "bench", &precompiled, &d).unwrap())
    });
    // Hot reload: what happens between a file event (after its 20 ms debounce) and the new
    // module being active: digest check, compile, link, smoke test, swap. Every iteration
    // installs a module the engine has never seen (a custom section makes its bytes unique),
    // so nothing comes from the compiled cache.
    let registry = PolicyRegistry::new(engine.clone()).unwrap();
    let mut n: u32 = 0;
    group.bench_function("hot-reload-install", |b| {
        b.iter(|| {
            n += 1;
            let m = unique_module(&format!("reload-{n:08}"));
            registry.install("ns", "bench", PolicyKind::Upgrade, &m, &digest(&m), vec![]).unwrap();
        })
    });
    group.finish();
}

criterion_group!(policy, benches);

fn main() {
    percentiles();
    reload_latency();
    policy();
    Criterion::default().configure_from_args().final_summary();
}
