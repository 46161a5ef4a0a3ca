//! The default upgrade policy: roles in `deploymentOrder`; within a role one zone at a time;
//! within a pool at most `maxUnavailable` pods at once, highest ordinal first; a pod that does
//! not become ready within `podReadyTimeoutSeconds` (default 600) halts the upgrade.
//!
//! Servers are restarted as they are: on SIGTERM a Pinot server takes itself out of the
//! brokers' routing (`shutdownInProgress`), waits for its queries to finish and leaves, on every
//! release (Pinot's `BaseServerStarter.stop`), so the policy never turns queries off
//! (`queries_disable` exists on Pinot's master only). Whether the next server may go is the
//! host's routing gate: it holds a restart back while a server holding a replica of one of the
//! same segments is not serving again (its flag still set, its segments not ONLINE in the
//! external view), whatever the pod's readiness says. A server whose queries someone disabled
//! is left so: Pinot never clears the flag itself, and the operator does not either.
//!
//! A pod not on the target revision that is down already is replaced first, whatever the
//! budget: it serves nothing, and this is how a rollback replaces a pod stuck on a bad image.
//!
//! Zones: while a zone is impaired (a pod of the cluster is on a node that is not Ready: a lost
//! zone, a partition) the upgrade waits, naming the zone: a pod restarted in another zone would
//! take a second replica group out (only a pod that is down already may be replaced). Within a
//! pool spread over zones, pods go zone by zone (by the zone their node is in).
//!
//! ZooKeeper (contract 1.2.0): the managed ensemble takes its place in the deployment order
//! (first by default) and is restarted one member at a time, followers first (highest id
//! first), the leader last, the next member only once the one restarted is back serving in sync
//! with the leader (`synced`). A member leaving the ensemble is never restarted; a member down
//! on the old revision is replaced first; a restarted member not back in sync within
//! `zookeeper/podReadyTimeoutSeconds` (else `podReadyTimeoutSeconds`, default 600) halts the
//! upgrade with nothing else restarted.
//!
//! Configuration: `podReadyTimeoutSeconds`, and `pool/<pool>/podReadyTimeoutSeconds` and
//! `zookeeper/podReadyTimeoutSeconds` (the host sets these from `spec.upgrade`, the pools and
//! `spec.zookeeper.managed`).

use std::collections::BTreeMap;

use pinot_policy_sdk::{Ensemble, MemberMode, Pod, Pool, State, UpgradeAction as Action, UpgradePolicy};

struct DefaultUpgrade;

fn config_u64(state: &State, key: &str) -> Option<u64> {
    state.config(key).and_then(|v| v.parse().ok())
}

/// The pods a pool waits for, by name; missing ones by the name they will have.
fn down_names(pool: &Pool, unavailable: &[Pod], missing: &[u32]) -> String {
    let mut names: Vec<String> = unavailable.iter().map(|p| p.name().to_string()).collect();
    names.extend(missing.iter().map(|o| pool.pod_name(*o)));
    names.join(", ")
}

/// The next restarts of a pool, or why it waits; `None` when it is done.
fn next_step(state: &State, pool: Pool) -> Option<Vec<Action>> {
    let default = config_u64(state, "podReadyTimeoutSeconds").unwrap_or(600);
    let timeout = config_u64(state, &format!("pool/{}/podReadyTimeoutSeconds", pool.name())).unwrap_or(default);
    let target = pool.target_revision();
    // A pod serves only when it is Ready and its Pinot instance (once the controller knows it)
    // is live: a restarted pod whose instance has not rejoined yet still counts as down.
    let unavailable: Vec<Pod> =
        pool.pods().filter(|p| !p.ready() || p.terminating() || p.instance().is_some_and(|i| !i.live())).collect();
    // An ordinal without any pod was deleted and is not recreated yet: down as well, although
    // no pod says so (between a restarted pod's deletion and its replacement).
    let missing: Vec<u32> = pool.missing_ordinals().collect();
    for pod in &unavailable {
        if pod.revision() == target && !pod.terminating() && pod.age_seconds() > timeout {
            return Some(vec![Action::Block(format!(
                // No age in the message: it would change the status on every look while halted.
                "pod {} of pool {} is not ready after its restart (timeout {timeout}s passed); fix the cause or roll the spec back",
                pod.name(),
                pool.name(),
            ))]);
        }
    }
    let mut pending: Vec<Pod> = pool.pods().filter(|p| p.revision() != target && !p.terminating()).collect();
    if let Some(down) = pending.iter().filter(|p| !p.ready()).max_by_key(|p| p.ordinal()) {
        return Some(vec![Action::RestartPod(down.name().into())]);
    }
    if pending.is_empty() {
        if unavailable.is_empty() && missing.is_empty() && pool.ready_replicas() >= pool.current_replicas() {
            return None;
        }
        return Some(vec![Action::Wait(format!(
            "waiting for {} of pool {} to become ready",
            down_names(&pool, &unavailable, &missing),
            pool.name()
        ))]);
    }
    let budget = pool.max_unavailable().max(1) as usize;
    let down = unavailable.len() + missing.len();
    if down >= budget {
        return Some(vec![Action::Wait(format!(
            "upgrading pool {}: {}/{} pods updated; waiting for {}",
            pool.name(),
            pool.updated_replicas(),
            pool.pods().len(),
            down_names(&pool, &unavailable, &missing)
        ))]);
    }
    // Highest ordinal first; a pool not pinned to one zone zone by zone (the zone each pod runs
    // in: what a pool pinned to one zone needs no look at).
    if pool.zones().len() == 1 {
        pending.sort_by_key(|p| std::cmp::Reverse(p.ordinal()));
        return Some(
            pending.into_iter().take(budget - down).map(|pod| Action::RestartPod(pod.name().into())).collect(),
        );
    }
    pending.sort_by_key(|p| (p.zone().unwrap_or(pool.first_zone()), std::cmp::Reverse(p.ordinal())));
    let zone = pending[0].zone();
    let same_zone = pending.into_iter().filter(|p| p.zone() == zone);
    Some(same_zone.take(budget - down).map(|pod| Action::RestartPod(pod.name().into())).collect())
}

/// The next restart of the ZooKeeper ensemble, or why it waits; `None` when every member runs
/// the target revision in sync.
fn ensemble_step(state: &State, ensemble: Ensemble) -> Option<Vec<Action>> {
    let default = config_u64(state, "podReadyTimeoutSeconds").unwrap_or(600);
    let timeout = config_u64(state, "zookeeper/podReadyTimeoutSeconds").unwrap_or(default);
    let target = ensemble.target_revision();
    let staying: Vec<_> = ensemble.members().filter(|m| !m.leaving()).collect();
    let mut pending: Vec<_> = staying.iter().filter(|m| m.revision() != target && !m.terminating()).copied().collect();
    let present = |id: u32| ensemble.members().any(|m| m.id() == id);
    let missing: Vec<u32> = (1..=ensemble.configured_members()).filter(|id| !present(*id)).collect();
    let down: Vec<_> = ensemble.members().filter(|m| !m.up()).collect();
    let names: Vec<String> =
        down.iter().map(|m| m.pod().to_string()).chain(missing.iter().map(|id| format!("member {id}"))).collect();
    // While members are to be restarted: one restarted onto the target that is the only member
    // down past its timeout never rejoins (a bad image, a volume it cannot reach). Several down
    // at once is an election or an outage, not a restart gone wrong: wait.
    if let ([m], []) = (&down[..], &missing[..])
        && !pending.is_empty()
        && m.revision() == target
        && !m.terminating()
        && m.age_seconds() > timeout
    {
        let mode = match m.mode() {
            MemberMode::Unreachable => "its client port does not answer",
            _ => "it does not serve in sync with a leader",
        };
        return Some(vec![Action::Block(format!(
            "ZooKeeper member {} is not back in the quorum after its restart ({mode}; timeout {timeout}s passed); \
             no other member is restarted: fix the cause or roll spec.zookeeper.managed back",
            m.pod()
        ))]);
    }
    // Down already on the old revision: replacing it takes nothing more down (a rollback past
    // a member stuck on a bad image).
    if let Some(down) = pending.iter().find(|m| !m.up()) {
        return Some(vec![Action::RestartPod(down.pod().into())]);
    }
    if pending.is_empty() {
        if names.is_empty() {
            return None;
        }
        return Some(vec![Action::Wait(format!(
            "waiting for ZooKeeper {} to be back in the quorum and in sync",
            names.join(", ")
        ))]);
    }
    // Below three members nothing keeps a quorum through a restart: one at a time, regardless.
    if !names.is_empty() && ensemble.configured_members() > 2 {
        return Some(vec![Action::Wait(format!(
            "restarting ZooKeeper member by member: waiting for {} to be back in the quorum and in sync",
            names.join(", ")
        ))]);
    }
    // Followers first, highest id first; the leader last (one election, at the end).
    pending.sort_by_key(|m| (m.mode() == MemberMode::Leader, std::cmp::Reverse(m.id())));
    Some(vec![Action::RestartPod(pending[0].pod().into())])
}

/// The zones with a pod on a node that is not Ready, with those pods.
fn impaired_zones(state: &State) -> BTreeMap<&str, Vec<&str>> {
    let mut zones: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pod in state.pools().flat_map(|p| p.pods()).filter(|p| !p.node_ready()) {
        if let Some(zone) = pod.zone() {
            zones.entry(zone).or_default().push(pod.name());
        }
    }
    zones
}

/// While a zone is impaired: replace a pod that is down already on a Ready node (it serves
/// nothing), else wait, naming the zone; nothing when there is nothing to upgrade.
fn while_impaired(state: &State, impaired: &BTreeMap<&str, Vec<&str>>) -> Vec<Action> {
    let off_target = |p: &Pod| p.revision() != p.pool().target_revision() && !p.terminating();
    for role in state.deployment_order() {
        let down = state
            .pools()
            .filter(|p| p.role() == *role)
            .flat_map(|p| p.pods())
            .find(|p| off_target(p) && !p.ready() && p.node_ready());
        if let Some(pod) = down {
            return vec![Action::RestartPod(pod.name().into())];
        }
    }
    if !state.pools().flat_map(|p| p.pods()).any(|p| off_target(&p)) {
        return vec![];
    }
    let zones: Vec<String> =
        impaired.iter().map(|(zone, pods)| format!("{zone} (pods {} on nodes not Ready)", pods.join(", "))).collect();
    vec![Action::Wait(format!(
        "zone {} is impaired; the upgrade waits until it is back: restarting a pod of another zone now would take a \
         second zone's replicas out",
        zones.join(", zone ")
    ))]
}

impl UpgradePolicy for DefaultUpgrade {
    const NAME: &'static str = "upgrade-default";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn plan(state: &State) -> Result<Vec<Action>, String> {
        let impaired = impaired_zones(state);
        if !impaired.is_empty() {
            return Ok(while_impaired(state, &impaired));
        }
        let ensemble = state.ensemble();
        let ensemble_at = ensemble.map(|e| e.order() as usize);
        for (position, role) in state.deployment_order().iter().enumerate() {
            if ensemble_at == Some(position)
                && let Some(actions) = ensemble.and_then(|e| ensemble_step(state, e))
            {
                return Ok(actions);
            }
            let mut pools: Vec<(&str, &str, Pool)> =
                state.pools().filter(|p| p.role() == *role).map(|p| (p.first_zone(), p.name(), p)).collect();
            pools.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            // One zone at a time: the first zone with work decides.
            let mut zone_with_work: Option<&str> = None;
            let mut actions = Vec::new();
            for (zone, _, pool) in pools {
                if zone_with_work.is_some_and(|z| z != zone) {
                    break;
                }
                if let Some(a) = next_step(state, pool) {
                    zone_with_work = Some(zone);
                    actions.extend(a);
                }
            }
            if !actions.is_empty() {
                return Ok(actions);
            }
        }
        if ensemble_at.is_some_and(|at| at >= state.deployment_order().len())
            && let Some(actions) = ensemble.and_then(|e| ensemble_step(state, e))
        {
            return Ok(actions);
        }
        Ok(vec![])
    }
}

pinot_policy_sdk::export_upgrade_policy!(DefaultUpgrade);

/// The policy's unit tests, with plain `cargo test` on the host (`make test` runs them): states
/// from the SDK's `StateBuilder`, in the shape `pinot-operator policy test --state` reads.
#[cfg(test)]
mod tests {
    use pinot_policy_sdk::{Role, StateBuilder, UpgradeAction, UpgradePolicy};

    use super::DefaultUpgrade;

    fn zookeeper_upgrade(edit: impl FnOnce(StateBuilder) -> StateBuilder) -> Vec<UpgradeAction> {
        let state = StateBuilder::new("events")
            .pool("controller", Role::Controller, 1)
            .target_revision("controller", "events-controller-2")
            .ensemble(3)
            .ensemble_target_revision("events-zookeeper-2")
            .member("events-zookeeper-1", |m| m.mode = pinot_policy_sdk::MemberMode::Leader)
            .member("events-zookeeper-2", |m| m.mode = pinot_policy_sdk::MemberMode::Follower);
        DefaultUpgrade::plan(&edit(state).build()).unwrap()
    }

    #[test]
    fn zookeeper_goes_first_followers_before_the_leader_one_member_at_a_time() {
        let restart = |pod: &str| vec![UpgradeAction::RestartPod(pod.into())];
        // Before the controllers, the highest follower first.
        assert_eq!(zookeeper_upgrade(|s| s), restart("events-zookeeper-2"));
        // Restarted, not in sync yet: wait for it, naming it.
        let waiting = zookeeper_upgrade(|s| {
            s.member("events-zookeeper-2", |m| {
                m.revision = "events-zookeeper-2".into();
                m.synced = false;
                m.mode = pinot_policy_sdk::MemberMode::NotServing;
                m.age_seconds = 5;
            })
        });
        assert!(matches!(&waiting[..], [UpgradeAction::Wait(w)] if w.contains("events-zookeeper-2")), "{waiting:?}");
        // Back in sync: the other follower, then the leader last.
        let on_target = |m: &mut pinot_policy_sdk::model::Member| m.revision = "events-zookeeper-2".into();
        assert_eq!(zookeeper_upgrade(|s| s.member("events-zookeeper-2", on_target)), restart("events-zookeeper-0"));
        assert_eq!(
            zookeeper_upgrade(|s| s.member("events-zookeeper-2", on_target).member("events-zookeeper-0", on_target)),
            restart("events-zookeeper-1")
        );
        // Every member on target and in sync: the controllers' turn.
        let done = zookeeper_upgrade(|s| {
            s.member("events-zookeeper-0", on_target)
                .member("events-zookeeper-1", on_target)
                .member("events-zookeeper-2", on_target)
        });
        assert_eq!(done, restart("events-controller-0"));
        // Placed after the controllers by deploymentOrder: they go first.
        assert_eq!(zookeeper_upgrade(|s| s.ensemble_order(1)), restart("events-controller-0"));
    }

    #[test]
    fn a_zookeeper_member_not_back_in_time_halts_and_a_leaving_one_is_never_restarted() {
        let halted = zookeeper_upgrade(|s| {
            s.member("events-zookeeper-2", |m| {
                m.revision = "events-zookeeper-2".into();
                m.synced = false;
                m.ready = false;
                m.mode = pinot_policy_sdk::MemberMode::Unreachable;
                m.age_seconds = 601;
            })
        });
        assert!(
            matches!(&halted[..], [UpgradeAction::Block(b)] if b.contains("events-zookeeper-2") && b.contains("does not answer")),
            "{halted:?}"
        );
        let leaving = zookeeper_upgrade(|s| s.member("events-zookeeper-2", |m| m.leaving = true));
        assert_eq!(leaving, vec![UpgradeAction::RestartPod("events-zookeeper-0".into())]);
        // A member the operator cannot ask while its pod is Ready is not taken for down: the
        // next follower goes as usual (the guardrails count it as up too).
        let unasked = zookeeper_upgrade(|s| {
            s.member("events-zookeeper-0", |m| {
                m.synced = false;
                m.mode = pinot_policy_sdk::MemberMode::Unreachable;
            })
        });
        assert_eq!(unasked, vec![UpgradeAction::RestartPod("events-zookeeper-2".into())]);
    }

    #[test]
    fn servers_restart_highest_ordinal_first_one_at_a_time() {
        let state = StateBuilder::new("events")
            .pool("server", Role::Server, 3)
            .target_revision("server", "events-server-2")
            .build();
        assert_eq!(DefaultUpgrade::plan(&state), Ok(vec![UpgradeAction::RestartPod("events-server-2".into())]));

        // The restarted pod is not ready yet: wait for it, name it.
        let state = StateBuilder::new("events")
            .pool("server", Role::Server, 3)
            .target_revision("server", "events-server-2")
            .pod("events-server-2", |p| {
                p.revision = "events-server-2".into();
                p.ready = false;
                p.age_seconds = 10;
            })
            .build();
        let plan = DefaultUpgrade::plan(&state).unwrap();
        assert!(matches!(&plan[..], [UpgradeAction::Wait(why)] if why.contains("events-server-2")), "{plan:?}");
    }

    #[test]
    fn controllers_go_before_servers_and_a_pod_that_never_comes_back_halts_the_upgrade() {
        let state = StateBuilder::new("events")
            .pool("controller", Role::Controller, 1)
            .pool("server", Role::Server, 2)
            .target_revision("controller", "events-controller-2")
            .target_revision("server", "events-server-2")
            .build();
        assert_eq!(DefaultUpgrade::plan(&state), Ok(vec![UpgradeAction::RestartPod("events-controller-0".into())]));

        let state = StateBuilder::new("events")
            .pool("server", Role::Server, 2)
            .target_revision("server", "events-server-2")
            .config("podReadyTimeoutSeconds", "300")
            .pod("events-server-1", |p| {
                p.revision = "events-server-2".into();
                p.ready = false;
                p.age_seconds = 301;
            })
            .build();
        let plan = DefaultUpgrade::plan(&state).unwrap();
        assert!(matches!(&plan[..], [UpgradeAction::Block(why)] if why.contains("events-server-1")), "{plan:?}");
    }

    /// A test state written as the file `policy test --state` reads decides the same.
    #[test]
    fn a_state_file_reads_as_the_builder_built_it() {
        let built = StateBuilder::new("events").pool("server", Role::Server, 2).target_revision("server", "r2");
        let yaml = serde_yaml::to_string(&built.clone().model()).unwrap();
        let read: pinot_policy_sdk::model::ClusterState = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            DefaultUpgrade::plan(&pinot_policy_sdk::State::from_model(read)),
            DefaultUpgrade::plan(&built.build())
        );
    }

    /// A zone whose node is not Ready: nothing that serves restarts, anywhere; a pod down
    /// already on a Ready node is still replaced; once the zone is back the upgrade goes on.
    #[test]
    fn an_impaired_zone_holds_the_upgrade_and_names_the_zone() {
        let upgrading = || {
            StateBuilder::new("events")
                .pool("server-a", Role::Server, 1)
                .zones("server-a", &["zone-a"])
                .pool("server-b", Role::Server, 1)
                .zones("server-b", &["zone-b"])
                .target_revision("server-a", "events-server-a-2")
                .target_revision("server-b", "events-server-b-2")
        };
        let lost_b = |b: StateBuilder| {
            b.pod("events-server-b-0", |p| {
                p.ready = false;
                p.node_ready = false;
                p.instance.as_mut().unwrap().live = false;
            })
        };
        let state = lost_b(upgrading()).build();
        let plan = DefaultUpgrade::plan(&state).unwrap();
        assert!(
            matches!(&plan[..], [UpgradeAction::Wait(why)] if why.contains("zone zone-b (pods events-server-b-0 on nodes not Ready) is impaired")),
            "{plan:?}"
        );
        // A pod of zone a that is down already (a bad image) is replaced all the same.
        let state = lost_b(upgrading()).pod("events-server-a-0", |p| p.ready = false).build();
        assert_eq!(DefaultUpgrade::plan(&state), Ok(vec![UpgradeAction::RestartPod("events-server-a-0".into())]));
        // Back: zone a first.
        assert_eq!(
            DefaultUpgrade::plan(&upgrading().build()),
            Ok(vec![UpgradeAction::RestartPod("events-server-a-0".into())])
        );
    }

    /// A pool spread over zones goes zone by zone, by the zone each pod runs in.
    #[test]
    fn a_spread_pool_restarts_zone_by_zone() {
        let state = StateBuilder::new("events")
            .pool("server", Role::Server, 6)
            .zones("server", &["zone-a", "zone-b", "zone-c"])
            .target_revision("server", "events-server-2")
            .edit_pool("server", |p| p.max_unavailable = 2)
            .build();
        // Pods 0 and 3 are in zone-a: both go (the budget is 2), highest first.
        assert_eq!(
            DefaultUpgrade::plan(&state),
            Ok(vec![
                UpgradeAction::RestartPod("events-server-3".into()),
                UpgradeAction::RestartPod("events-server-0".into())
            ])
        );
    }
}
