//! Temporary profiling harness (not committed).
use pinot_operator::policy::{
    ClusterState, PolicyEngine, PolicyKind, PolicyLimits, bundled,
    model::{Instance, Pod, Pool, Role},
};
use std::time::{Duration, Instant};
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
    }
}

fn main() {
    let engine = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let policy = engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    let pools: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let n = 20000;
    for p in pools {
        let s = state(p);
        for _ in 0..500 {
            engine.decide(&policy, &s).unwrap();
        }
        let mut samples: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                engine.decide(&policy, &s).unwrap();
                t.elapsed()
            })
            .collect();
        samples.sort();
        println!(
            "{p} pools: min {:.1} p25 {:.1} p50 {:.1} p99 {:.1} µs",
            samples[0].as_secs_f64() * 1e6,
            samples[n / 4].as_secs_f64() * 1e6,
            samples[n / 2].as_secs_f64() * 1e6,
            samples[n * 99 / 100].as_secs_f64() * 1e6
        );
    }
}
