//! Policy runtime benchmarks: decision latency with a fresh Store at 3, 10 and 30 pools,
//! compile time, precompiled load time and hot-reload time (`cargo bench -p pinot-operator`).
//! Before criterion runs, a percentile pass prints p50 / p99 of decision latency, which the
//! README's table quotes.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use pinot_operator::policy::{
    ClusterState, PolicyEngine, PolicyKind, PolicyLimits, PolicyRegistry, bundled,
    contract::types::{Instance, Pod, Pool, Role},
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
                    instance: Some(Instance {
                        id: format!("Server_c-{name}-{o}.c-{name}-headless.ns.svc.cluster.local_8098"),
                        live: true,
                        enabled: true,
                        queries_enabled: true,
                        tags: vec!["DefaultTenant_OFFLINE".into()],
                        segments: 12,
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
    }
}

fn engine() -> PolicyEngine {
    PolicyEngine::new(PolicyLimits::default()).unwrap()
}

fn percentiles() {
    let engine = engine();
    let policy = engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    println!("decision latency, fresh Store per decision (upgrade-default):");
    println!("| pools | p50 | p99 |");
    println!("|---|---|---|");
    for pools in [3, 10, 30] {
        let s = state(pools);
        for _ in 0..200 {
            engine.decide(&policy, &s).unwrap();
        }
        let mut samples: Vec<Duration> = (0..5000)
            .map(|_| {
                let t = Instant::now();
                engine.decide(&policy, &s).unwrap();
                t.elapsed()
            })
            .collect();
        samples.sort();
        println!(
            "| {pools} | {:.1} µs | {:.1} µs |",
            micros(samples[samples.len() / 2]),
            micros(samples[samples.len() * 99 / 100])
        );
    }
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
    // Hot reload: what happens between a file event (after its 50 ms debounce) and the new
    // module being active: digest check, compile, link, smoke test, swap. Every iteration
    // installs a module the engine has never seen (a custom section makes its bytes unique),
    // so nothing comes from the compiled cache.
    let registry = PolicyRegistry::new(engine.clone()).unwrap();
    let mut n: u32 = 0;
    group.bench_function("hot-reload-install", |b| {
        b.iter(|| {
            n += 1;
            let mut m = bundled::UPGRADE_DEFAULT.to_vec();
            let name = format!("reload-{n:08}");
            m.extend_from_slice(&[0, (name.len() + 1) as u8, name.len() as u8]);
            m.extend_from_slice(name.as_bytes());
            registry.install("ns", "bench", PolicyKind::Upgrade, &m, &digest(&m), vec![]).unwrap();
        })
    });
    group.finish();
}

criterion_group!(policy, benches);

fn main() {
    percentiles();
    policy();
    Criterion::default().configure_from_args().final_summary();
}
