//! The rules of the default scaling policy (`scaling-default`). Every decision is taken again from the observed state, so a
//! scale-in interrupted at any point (the operator killed mid-drain) resumes where Pinot is.
//!
//! - Scale out: raise the replicas at once. Once the pool's pods are ready and tagged (the
//!   tenant policy tags them), rebalance the tables whose servers do not all hold segments yet
//!   (`rebalanceOnScale`, default on for servers).
//! - Scale in, one pod at a time, highest ordinal first:
//!   - servers: refuse (`block`) when the servers left could not hold a table's replication,
//!     or when the server is the last of its Pinot pool (its zone) for a tag spread over
//!     pools (its replica group would move into another zone); otherwise untag (`server_untagged`) and rebalance the tables of its tags, wait until
//!     it holds no segment, disable it, then lower replicas;
//!   - brokers: untag (`broker_untagged`, which takes it out of the broker resource), then
//!     lower replicas; refused when a table would be left without a broker;
//!   - minions: drain (Pinot tags it `minion_drained`), then lower replicas;
//!   - controllers: lower replicas.
//! - Instances of pods that are gone (`departed`) are dropped from Pinot once not live.
//! - A scale-in called off (replicas raised again): a server it had already drained (disabled
//!   and `server_untagged`) is enabled and tagged like a new server (`DefaultTenant`), and a
//!   drained minion is untagged again; a server untagged but not yet disabled is left to the
//!   tenant policy, which places untagged servers.

use std::collections::BTreeSet;

use pinot_policy_sdk::{Pool, Role, ScalingAction as Action, State};

const SERVER_UNTAGGED: &str = "server_untagged";
const BROKER_UNTAGGED: &str = "broker_untagged";
const MINION_DRAINED: &str = "minion_drained";
const MINION_UNTAGGED: &str = "minion_untagged";

/// Instances of pods that stay, left drained by a scale-in that was called off: back into
/// service as if they had just joined.
fn restore(pool: &Pool, out: &mut Vec<Action>) {
    for pod in pool.pods().filter(|p| p.ordinal() < pool.desired_replicas()) {
        let Some(i) = pod.instance() else { continue };
        let only = |tag: &str| i.tags().len() > 0 && i.tags().all(|t| t == tag);
        match pool.role() {
            Role::Server if !i.enabled() && only(SERVER_UNTAGGED) => {
                out.push(Action::EnableInstance(i.id().into()));
                out.push(Action::UpdateTags {
                    instance: i.id().into(),
                    tags: vec!["DefaultTenant_OFFLINE".into(), "DefaultTenant_REALTIME".into()],
                });
            }
            Role::Minion if only(MINION_DRAINED) => out.push(retag(i.id(), MINION_UNTAGGED)),
            _ => {}
        }
    }
}

fn set_replicas(pool: &Pool, replicas: u32) -> Action {
    Action::SetReplicas { pool: pool.name().into(), replicas }
}

fn retag(id: &str, tag: &str) -> Action {
    Action::UpdateTags { instance: id.into(), tags: vec![tag.into()] }
}

/// Whether an instance of `pool` stays once the pool has scaled to its desired replicas.
fn stays(state: &State, pool_name: &str, ordinal: u32) -> bool {
    state.pool(pool_name).is_some_and(|p| ordinal < p.desired_replicas())
}

/// Enabled instances that carry `tag` and stay after every scale-in under way.
fn staying_with_tag(state: &State, tag: &str) -> u32 {
    state
        .instances()
        .filter(|(pool, pod, i)| i.enabled() && i.has_tag(tag) && stays(state, pool.name(), pod.ordinal()))
        .count() as u32
}

/// The scale-in of one pool: the next step for its highest pod, or why it cannot go on.
fn scale_in(state: &State, pool: Pool, desired: u32, out: &mut Vec<Action>) {
    let current = pool.current_replicas();
    if pool.pods().any(|p| !p.ready() || p.terminating()) || pool.missing_ordinals().next().is_some() {
        out.push(Action::Wait(format!(
            "scaling in {} to {desired}: waiting for its pods to be ready before removing the next one",
            pool.name()
        )));
        return;
    }
    let Some(leaving) = pool.pods().filter(|p| p.ordinal() < current).max_by_key(|p| p.ordinal()) else {
        out.push(set_replicas(&pool, current - 1));
        return;
    };
    let left = current - desired;
    let Some(instance) = leaving.instance() else {
        // Never joined Pinot: nothing to move.
        out.push(set_replicas(&pool, current - 1));
        return;
    };
    match pool.role() {
        Role::Server => {
            for table in state.tables() {
                let remaining = staying_with_tag(state, table.server_tag());
                if remaining < table.replication() {
                    out.push(Action::Block(format!(
                        "scaling in {} to {desired} would leave {remaining} servers tagged {} for table {} with replication {}; \
                         add servers or lower the table's replication first (nothing was removed)",
                        pool.name(),
                        table.server_tag(),
                        table.name(),
                        table.replication()
                    )));
                    return;
                }
            }
            // Zones as Pinot pools: the last server of a pool of a tag spread over pools
            // keeps its zone's replica group; without it the group would move into a zone that
            // has one already.
            for (tag, number) in instance.pinot_pools().filter(|(tag, _)| instance.has_tag(tag)) {
                let carriers = || {
                    state
                        .instances()
                        .filter(move |(_, _, i)| i.enabled() && i.has_tag(tag) && i.pinot_pool(tag).is_some())
                };
                let pools: std::collections::BTreeSet<u32> =
                    carriers().filter_map(|(_, _, i)| i.pinot_pool(tag)).collect();
                let staying = carriers()
                    .filter(|(p, pod, i)| i.pinot_pool(tag) == Some(number) && stays(state, p.name(), pod.ordinal()))
                    .count();
                if pools.len() > 1 && staying == 0 {
                    let zone = leaving.zone().map(|z| format!(" (zone {z})")).unwrap_or_default();
                    out.push(Action::Block(format!(
                        "scaling in {} to {desired} would leave Pinot pool {number}{zone} of {tag} without a server: \
                         its replica group would move into another zone; scale in a pool of another zone, or take \
                         this zone out of the tenant first (nothing was removed)",
                        pool.name()
                    )));
                    return;
                }
            }
            let tagged = instance.tags().any(|t| t != SERVER_UNTAGGED);
            if tagged {
                out.push(retag(instance.id(), SERVER_UNTAGGED));
                for table in state.tables().filter(|t| instance.has_tag(t.server_tag()) && t.segments() > 0) {
                    out.push(Action::RebalanceTable(table.name().into()));
                }
                return;
            }
            if instance.segments() > 0 {
                // Untagged: the rebalances move its segments away. Start them again if none
                // runs (the operator may have stopped between untagging and rebalancing).
                if !state.tables().any(|t| t.rebalancing()) {
                    for table in state.tables().filter(|t| t.segments() > 0) {
                        out.push(Action::RebalanceTable(table.name().into()));
                    }
                }
                out.push(Action::Wait(format!(
                    "scaling in {} to {desired}: draining {} ({left} pods left to remove; segments left: {})",
                    pool.name(),
                    leaving.name(),
                    instance.segments()
                )));
                return;
            }
            if instance.enabled() {
                out.push(Action::DisableInstance(instance.id().into()));
                return;
            }
        }
        Role::Broker => {
            for table in state.tables() {
                if instance.has_tag(table.broker_tag()) && staying_with_tag(state, table.broker_tag()) == 0 {
                    out.push(Action::Block(format!(
                        "scaling in {} to {desired} would leave table {} without a broker tagged {}; add brokers to that tenant first",
                        pool.name(),
                        table.name(),
                        table.broker_tag()
                    )));
                    return;
                }
            }
            if instance.tags().any(|t| t != BROKER_UNTAGGED) {
                out.push(retag(instance.id(), BROKER_UNTAGGED));
                return;
            }
        }
        Role::Minion => {
            if !instance.tags().all(|t| t == MINION_DRAINED) || instance.tags().len() == 0 {
                out.push(Action::DrainInstance(instance.id().into()));
                return;
            }
        }
        Role::Controller => {}
    }
    out.push(set_replicas(&pool, current - 1));
}

/// How many of the `servers` carrying `tag` a table of `replication` can use. With the tag's
/// servers in Pinot pools (zones), a table has one replica group per pool it uses, each as
/// large as the smallest pool allows (Pinot's pool-based replica groups): `replication` groups
/// of the smallest pool's size, so servers of the pools it does not use never hold its segments.
fn usable_servers(state: &State, tag: &str, replication: u32, servers: u32) -> u32 {
    let mut per_pool: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
    for (_, _, i) in state.instances().filter(|(_, _, i)| i.enabled() && i.live() && i.has_tag(tag)) {
        if let Some(pool) = i.pinot_pool(tag) {
            *per_pool.entry(pool).or_default() += 1;
        }
    }
    match per_pool.values().min() {
        Some(smallest) if per_pool.len() > 1 => servers.min(replication.max(1) * smallest),
        _ => servers,
    }
}

/// After a scale-out: the tables that some of their servers do not serve yet.
fn rebalance_after_scale_out(state: &State, out: &mut Vec<Action>) {
    let mut wanted = BTreeSet::new();
    for pool in state.pools().filter(|p| p.role() == Role::Server) {
        let settled = pool.current_replicas() == pool.desired_replicas()
            && pool.ready_replicas() == pool.current_replicas()
            && pool.pods().all(|p| p.instance().is_some_and(|i| i.live()));
        let allowed = state.config(&format!("pool/{}/rebalanceOnScale", pool.name())) != Some("false");
        if !settled || !allowed {
            continue;
        }
        for table in state.tables().filter(|t| t.segments() > 0 && !t.rebalancing()) {
            if !pool.pods().any(|p| p.instance().is_some_and(|i| i.has_tag(table.server_tag()))) {
                continue;
            }
            let servers =
                state.instances().filter(|(_, _, i)| i.enabled() && i.live() && i.has_tag(table.server_tag())).count()
                    as u32;
            let can_hold = usable_servers(state, table.server_tag(), table.replication(), servers)
                .min(table.segments().saturating_mul(table.replication()));
            if table.servers_with_segments() < can_hold {
                wanted.insert(table.name());
            }
        }
    }
    out.extend(wanted.into_iter().map(|t| Action::RebalanceTable(t.into())));
}

/// The default decision, for policies that build on it.
pub fn plan(state: &State) -> Vec<Action> {
    let mut out = Vec::new();
    for pool in state.pools() {
        for gone in pool.departed() {
            if gone.live() {
                out.push(Action::Wait(format!("waiting for {} to leave Pinot before dropping it", gone.id())));
            } else if gone.segments() == 0 {
                out.push(Action::DropInstance(gone.id().into()));
            } else {
                out.push(Action::Block(format!(
                    "instance {} of a removed pod of {} still holds {} segments; rebalance its tables",
                    gone.id(),
                    pool.name(),
                    gone.segments()
                )));
            }
        }
        restore(&pool, &mut out);
        let desired = pool.desired_replicas().clamp(pool.min_replicas(), pool.max_replicas());
        if pool.current_replicas() < desired {
            out.push(set_replicas(&pool, desired));
        } else if pool.current_replicas() > desired {
            scale_in(state, pool, desired, &mut out);
        }
    }
    // Rebalancing moves segments; not while a scale-in is moving them already.
    if !out.iter().any(|a| matches!(a, Action::RebalanceTable(_) | Action::Block(_))) {
        rebalance_after_scale_out(state, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use pinot_policy_sdk::{Role, ScalingAction as Action, StateBuilder};

    use super::plan;

    /// One server per zone, each its zone's Pinot pool of `sales_OFFLINE`.
    fn zoned() -> StateBuilder {
        let mut b = StateBuilder::new("c");
        for (n, zone) in ["a", "b", "c"].iter().enumerate() {
            let pool = format!("server-{zone}");
            let pod = format!("c-{pool}-0");
            b = b.pool(&pool, Role::Server, 1).zones(&pool, &[&format!("zone-{zone}")]);
            b = b.pod(&pod, |p| p.instance.as_mut().unwrap().tags = vec!["sales_OFFLINE".into()]);
            b = b.pinot_pool(&pod, "sales_OFFLINE", n as u32);
        }
        b
    }

    #[test]
    fn the_last_server_of_a_zones_pinot_pool_is_not_scaled_in() {
        let state = zoned().desired_replicas("server-c", 0).build();
        let actions = plan(&state);
        assert!(
            matches!(&actions[..], [Action::Block(why)] if why.contains("Pinot pool 2 (zone zone-c) of sales_OFFLINE")),
            "{actions:?}"
        );
        // A second server in zone c: one of them may go.
        let two = StateBuilder::new("c").pool("server-c", Role::Server, 2).zones("server-c", &["zone-c"]);
        let two = two
            .pod("c-server-c-0", |p| p.instance.as_mut().unwrap().tags = vec!["sales_OFFLINE".into()])
            .pod("c-server-c-1", |p| p.instance.as_mut().unwrap().tags = vec!["sales_OFFLINE".into()])
            .pinot_pool("c-server-c-0", "sales_OFFLINE", 2)
            .pinot_pool("c-server-c-1", "sales_OFFLINE", 2)
            .pool("server-a", Role::Server, 1)
            .pod("c-server-a-0", |p| p.instance.as_mut().unwrap().tags = vec!["sales_OFFLINE".into()])
            .pinot_pool("c-server-a-0", "sales_OFFLINE", 0)
            .desired_replicas("server-c", 1)
            .build();
        let actions = plan(&two);
        assert!(
            actions.iter().any(|a| matches!(a, Action::UpdateTags { instance, tags } if instance.contains("c-server-c-1") && tags == &["server_untagged"])),
            "{actions:?}"
        );
    }

    /// Tables over zones use one replica group per pool: servers of a pool a table does not
    /// use never hold its segments, and that is no reason to rebalance.
    #[test]
    fn a_table_on_fewer_pools_than_zones_is_not_rebalanced_for_the_unused_pool() {
        let table = |replication: u32, holders: u32| pinot_policy_sdk::model::Table {
            name: "clicks_OFFLINE".into(),
            replication,
            server_tag: "sales_OFFLINE".into(),
            broker_tag: "DefaultTenant_BROKER".into(),
            segments: 12,
            servers_with_segments: holders,
            rebalancing: false,
        };
        // Three zones, one server each: replication 2 uses two of them.
        let state = zoned().table(table(2, 2)).build();
        assert!(!plan(&state).iter().any(|a| matches!(a, Action::RebalanceTable(_))), "{:?}", plan(&state));
        // Replication 3 on two holders: the third zone's server has none yet.
        let state = zoned().table(table(3, 2)).build();
        assert_eq!(plan(&state), [Action::RebalanceTable("clicks_OFFLINE".into())]);
    }
}
