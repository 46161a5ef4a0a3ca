//! An example team policy: **servers a whole zone at a time**. Roles go in `deploymentOrder`.
//! Controllers, brokers and minions restart one pod at a time whatever their `maxUnavailable`.
//! Servers go zone by zone (zones in name order): first the queries of every server of the
//! zone that still runs the old revision are disabled, then all of them restart together (as
//! far as each pool's `maxUnavailable` allows: set it to the pool's replicas for a true
//! whole-zone restart), then their queries come back; only then the next zone starts.
//!
//! Build: `cargo build --target wasm32-unknown-unknown --release -p pinot-upgrade-zone-at-a-time`
//! in `plugins/`, then `pinot-operator policy component`; see `deploy/examples/policy/zone-at-a-time.yaml` for running it.

use pinot_policy_sdk::{Pod, Pool, Role, State, UpgradeAction as Action, UpgradePolicy};

struct ZoneAtATime;

fn pending<'a>(pool: &Pool<'a>) -> impl Iterator<Item = Pod<'a>> + use<'a> {
    let target = pool.target_revision();
    pool.pods().filter(move |p| p.revision() != target && !p.terminating())
}

fn down<'a>(pool: &Pool<'a>) -> Vec<Pod<'a>> {
    pool.pods().filter(|p| !p.ready() || p.terminating()).collect()
}

/// Pods deleted and not recreated yet: down as well.
fn missing(pool: &Pool) -> usize {
    pool.missing_ordinals().count()
}

/// Queries to enable again on servers that are back on the target revision.
fn back(pools: &[Pool]) -> Vec<Action> {
    pools
        .iter()
        .flat_map(|pool| pool.pods().map(move |p| (pool, p)))
        .filter_map(|(pool, p)| {
            let i = p.instance()?;
            (p.ready() && p.revision() == pool.target_revision() && i.live() && !i.queries_enabled())
                .then(|| Action::EnableQueries(i.id().into()))
        })
        .collect()
}

/// One zone of server pools.
fn plan_server_zone(pools: &[Pool]) -> Option<Vec<Action>> {
    let enable = back(pools);
    if !enable.is_empty() {
        return Some(enable);
    }
    let todo: Vec<Pod> = pools.iter().flat_map(pending).collect();
    if todo.is_empty() {
        let mut waiting: Vec<String> = pools.iter().flat_map(down).map(|p| p.name().to_string()).collect();
        let recreating: usize = pools.iter().map(missing).sum();
        if recreating > 0 {
            waiting.push(format!("{recreating} pod(s) being recreated"));
        }
        return (!waiting.is_empty()).then(|| vec![Action::Wait(format!("waiting for {}", waiting.join(", ")))]);
    }
    // Queries off on the whole zone first.
    let disable: Vec<Action> = todo
        .iter()
        .filter_map(|p| p.instance().filter(|i| p.ready() && i.live() && i.queries_enabled()))
        .map(|i| Action::DisableQueries(i.id().into()))
        .collect();
    if !disable.is_empty() {
        return Some(disable);
    }
    // Then every pod of the zone, within each pool's budget.
    let mut actions = Vec::new();
    for pool in pools {
        let budget = (pool.max_unavailable().max(1) as usize).saturating_sub(down(pool).len() + missing(pool));
        let mut pods: Vec<Pod> = pending(pool).collect();
        pods.sort_by_key(|p| (p.ready(), std::cmp::Reverse(p.ordinal())));
        let mut ready_taken = 0;
        for p in pods {
            if !p.ready() {
                actions.push(Action::RestartPod(p.name().into()));
            } else if ready_taken < budget {
                ready_taken += 1;
                actions.push(Action::RestartPod(p.name().into()));
            }
        }
    }
    if actions.is_empty() {
        actions.push(Action::Wait("waiting for restarted servers of the zone to come back".into()));
    }
    Some(actions)
}

/// One pool of another role: one pod at a time.
fn plan_one_by_one(pool: &Pool) -> Option<Vec<Action>> {
    let down = down(pool);
    let mut todo: Vec<Pod> = pending(pool).collect();
    todo.sort_by_key(|p| (p.ready(), std::cmp::Reverse(p.ordinal())));
    match (todo.first(), down.first()) {
        (Some(p), _) if !p.ready() => Some(vec![Action::RestartPod(p.name().into())]),
        _ if missing(pool) > 0 => {
            Some(vec![Action::Wait(format!("waiting for pool {} to recreate its pods", pool.name()))])
        }
        (_, Some(d)) => Some(vec![Action::Wait(format!("waiting for {}", d.name()))]),
        (Some(p), None) => Some(vec![Action::RestartPod(p.name().into())]),
        (None, None) => None,
    }
}

impl UpgradePolicy for ZoneAtATime {
    const NAME: &'static str = "upgrade-zone-at-a-time";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn plan(state: &State) -> Result<Vec<Action>, String> {
        for role in state.deployment_order() {
            let mut pools: Vec<Pool> = state.pools().filter(|p| p.role() == *role).collect();
            pools.sort_by_key(|p| (p.first_zone(), p.name()));
            if *role == Role::Server {
                let mut zones: Vec<&str> = pools.iter().map(|p| p.first_zone()).collect();
                zones.dedup();
                for z in zones {
                    let in_zone: Vec<Pool> = pools.iter().copied().filter(|p| p.first_zone() == z).collect();
                    if let Some(actions) = plan_server_zone(&in_zone) {
                        return Ok(actions);
                    }
                }
            } else {
                for pool in &pools {
                    if let Some(actions) = plan_one_by_one(pool) {
                        return Ok(actions);
                    }
                }
            }
        }
        Ok(vec![])
    }
}

pinot_policy_sdk::export_upgrade_policy!(ZoneAtATime);
