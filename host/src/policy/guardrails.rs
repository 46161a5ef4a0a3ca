//! The host's guardrails: before it acts on a plan, every action must name an existing pool,
//! pod, instance or table, keep replicas within the bounds the spec allows, never leave a
//! pool with more pods unavailable than its disruption budget, never remove a server pod whose
//! instance still holds segments, disable or drain only instances a scale-in takes out, and
//! never drop an instance that is live, holds segments or still has its pod, and never renumber
//! the Pinot pool of an instance holding segments; a ZooKeeper member is restarted only while
//! its ensemble keeps a quorum of its configuration serving in sync without it (never two
//! members down in a 3-member ensemble), and a member leaving the ensemble never. One invalid
//! action refuses the whole plan.

use std::collections::HashMap;

use super::model::{Action, ClusterState, Instance, Pool, Role};

/// The first action of a plan that may not be carried out, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("action {index} ({action}) refused: {reason}")]
pub struct Violation {
    pub index: usize,
    pub action: String,
    pub reason: String,
}

/// A short human form of an action, for verdicts, events and the CLI.
pub fn describe(action: &Action) -> String {
    match action {
        Action::RestartPod(p) => format!("restart-pod {p}"),
        Action::SetReplicas(s) => format!("set-replicas {} {}", s.pool, s.replicas),
        Action::DisableQueries(i) => format!("disable-queries {i}"),
        Action::EnableQueries(i) => format!("enable-queries {i}"),
        Action::UpdateTags(t) => format!("update-tags {} [{}]", t.instance, t.tags.join(",")),
        Action::SetInstancePool(p) => format!("set-instance-pool {} {}={}", p.instance, p.tag, p.pool),
        Action::RebalanceTable(t) => format!("rebalance-table {t}"),
        Action::DisableInstance(i) => format!("disable-instance {i}"),
        Action::EnableInstance(i) => format!("enable-instance {i}"),
        Action::DrainInstance(i) => format!("drain-instance {i}"),
        Action::DropInstance(i) => format!("drop-instance {i}"),
        Action::Wait(why) => format!("wait: {why}"),
        Action::Block(why) => format!("block: {why}"),
    }
}

pub use crate::pinot::MINION_DRAINED;

/// Whether a Pinot step would change nothing that this pass observed: tags already as asked
/// (in any order), an instance already disabled, enabled or drained. The host skips such steps,
/// so a policy that asks for the same step on every pass makes no Pinot call and no quick
/// recheck (it would otherwise look again every 200 ms for ever).
pub fn changes_nothing(state: &ClusterState, action: &Action) -> bool {
    let instance = |id: &str| find_instance(state, id).map(|(_, i)| i);
    match action {
        Action::UpdateTags(t) => instance(&t.instance).is_some_and(|i| tag_set(&i.tags) == tag_set(&t.tags)),
        Action::DisableInstance(id) => instance(id).is_some_and(|i| !i.enabled),
        Action::EnableInstance(id) => instance(id).is_some_and(|i| i.enabled),
        Action::DrainInstance(id) => instance(id).is_some_and(|i| tag_set(&i.tags) == [MINION_DRAINED]),
        Action::SetInstancePool(p) => instance(&p.instance).is_some_and(|i| i.pools.get(&p.tag) == Some(&p.pool)),
        _ => false,
    }
}

/// The instance `id`, a pod's or else a departed one, with its pool.
fn find_instance<'a>(state: &'a ClusterState, id: &str) -> Option<(&'a Pool, &'a Instance)> {
    pod_instance(state, id).or_else(|| departed_instance(state, id))
}

/// The instance `id` of a pod, with its pool.
fn pod_instance<'a>(state: &'a ClusterState, id: &str) -> Option<(&'a Pool, &'a Instance)> {
    state
        .pools
        .iter()
        .find_map(|p| p.pods.iter().find_map(|pod| pod.instance.as_ref().filter(|i| i.id == id).map(|i| (p, i))))
}

/// The departed instance `id` (its pod gone for good), with its pool.
fn departed_instance<'a>(state: &'a ClusterState, id: &str) -> Option<(&'a Pool, &'a Instance)> {
    state.pools.iter().find_map(|p| p.departed.iter().find(|i| i.id == id).map(|i| (p, i)))
}

/// Tags as a set: sorted, without repeats.
fn tag_set(tags: &[String]) -> Vec<&str> {
    let mut set: Vec<&str> = tags.iter().map(String::as_str).collect();
    set.sort_unstable();
    set.dedup();
    set
}

/// The verdict on each action of a plan (`None`: allowed).
pub fn verdicts(state: &ClusterState, plan: &[Action]) -> Vec<Option<String>> {
    // Pods each pool would have unavailable, counting restarts earlier in the plan.
    let mut unavailable: HashMap<&str, u32> = state
        .pools
        .iter()
        .map(|p| {
            let down = p.pods.iter().filter(|pod| !pod.ready || pod.terminating).count() as u32;
            // An ordinal with no pod at all was deleted and is not recreated yet.
            let missing =
                (0..p.current_replicas).filter(|o| !p.pods.iter().any(|pod| pod.ordinal == *o)).count() as u32;
            (p.name.as_str(), down + missing)
        })
        .collect();
    // Members of the ensemble down, counting restarts earlier in the plan: those not serving in
    // sync or being deleted, and those of the configuration with no pod at all.
    let mut members_down: u32 = state.ensemble.as_ref().map_or(0, |e| {
        // A leaving member still votes in the configuration the others ran before.
        let down = e.members.iter().filter(|m| !m.up()).count() as u32;
        let missing = (1..=e.configured_members).filter(|id| !e.members.iter().any(|m| m.id == *id)).count() as u32;
        down + missing
    });
    let instance_of_pod = |id: &str| pod_instance(state, id);
    let departed = |id: &str| departed_instance(state, id);
    let instance = |id: &str| find_instance(state, id);
    let instance_exists = |id: &str| instance(id).is_some();
    // Each instance's tags as the plan leaves them so far (a pool may be set for a tag an
    // earlier `update-tags` of the plan gives).
    let mut tags_now: HashMap<&str, &[String]> = HashMap::new();
    // An instance a scale-in takes out: its pod's ordinal is at or above what the pool keeps,
    // or its pod is gone already.
    let leaving = |id: &str| {
        departed(id).is_some()
            || state.pools.iter().any(|p| {
                p.pods
                    .iter()
                    .any(|pod| pod.ordinal >= p.desired_replicas && pod.instance.as_ref().is_some_and(|i| i.id == id))
            })
    };
    plan.iter()
        .map(|action| match action {
            Action::RestartPod(name) => {
                let member = state.ensemble.as_ref().and_then(|e| e.members.iter().find(|m| &m.pod == name).map(|m| (e, m)));
                if let Some((ensemble, member)) = member {
                    if member.terminating {
                        return Some(format!("ZooKeeper member {name} is already being deleted"));
                    }
                    if member.leaving {
                        return Some(format!(
                            "ZooKeeper member {name} is leaving the ensemble (its configuration lists {} members): it is removed, not restarted",
                            ensemble.configured_members
                        ));
                    }
                    if member.up() {
                        let tolerated = ensemble.restart_tolerance();
                        if members_down + 1 > tolerated {
                            return Some(format!(
                                "the ZooKeeper ensemble of {} members has {members_down} down already and survives {tolerated} down: restarting {name} now would leave no quorum",
                                ensemble.configured_members
                            ));
                        }
                        members_down += 1;
                    }
                    return None;
                }
                let Some((pool, pod)) =
                    state.pools.iter().find_map(|p| p.pods.iter().find(|pod| &pod.name == name).map(|pod| (p, pod)))
                else {
                    return Some(format!("no pod {name} in this cluster"));
                };
                if pod.terminating {
                    return Some(format!("pod {name} is already being deleted"));
                }
                if pod.ready {
                    let count = unavailable.entry(pool.name.as_str()).or_default();
                    if *count + 1 > pool.max_unavailable.max(1) {
                        return Some(format!(
                            "pool {} already has {count} of {} allowed pods unavailable (maxUnavailable)",
                            pool.name, pool.max_unavailable
                        ));
                    }
                    *count += 1;
                }
                None
            }
            Action::SetReplicas(s) => match state.pools.iter().find(|p| p.name == s.pool) {
                None => Some(format!("no pool {}", s.pool)),
                Some(p) if s.replicas < p.min_replicas || s.replicas > p.max_replicas => Some(format!(
                    "{} replicas is outside the {}..={} the spec allows for pool {}",
                    s.replicas, p.min_replicas, p.max_replicas, p.name
                )),
                // The pods a lower count removes: a server among them must hold no segment.
                Some(p) => p
                    .pods
                    .iter()
                    .filter(|pod| pod.ordinal >= s.replicas)
                    .find_map(|pod| pod.instance.as_ref().filter(|i| i.segments > 0).map(|i| (pod, i)))
                    .map(|(pod, i)| {
                        format!(
                            "pod {} would be removed while its instance {} holds {} segments; drain it first",
                            pod.name, i.id, i.segments
                        )
                    }),
            },
            Action::DisableQueries(id) | Action::EnableQueries(id) => {
                (!instance_exists(id)).then(|| format!("no instance {id} in this cluster"))
            }
            Action::UpdateTags(t) => {
                if !instance_exists(&t.instance) {
                    Some(format!("no instance {} in this cluster", t.instance))
                } else if t.tags.iter().any(|tag| tag.is_empty() || tag.contains(',')) {
                    Some("tags must be non-empty and contain no comma".to_string())
                } else {
                    tags_now.insert(t.instance.as_str(), &t.tags);
                    None
                }
            }
            Action::SetInstancePool(p) => match instance_of_pod(&p.instance) {
                None if departed(&p.instance).is_some() => {
                    Some(format!("instance {} has no pod any more; its pools no longer matter", p.instance))
                }
                None => Some(format!("no instance {} in this cluster", p.instance)),
                Some((pool, _)) if pool.role != Role::Server => {
                    Some(format!("{} is not a server; Pinot pools place servers (replica groups) only", p.instance))
                }
                Some((_, i)) => {
                    let tags = tags_now.get(p.instance.as_str()).copied().unwrap_or(&i.tags);
                    let old = i.pools.get(&p.tag).filter(|old| **old != p.pool);
                    if !tags.contains(&p.tag) {
                        Some(format!(
                            "instance {} does not carry tag {} (it carries {}); a pool is set per tag it carries",
                            p.instance,
                            p.tag,
                            if tags.is_empty() { "none".to_string() } else { tags.join(", ") }
                        ))
                    } else {
                        old.filter(|_| i.segments > 0).map(|old| {
                            format!(
                                "instance {} holds {} segments in Pinot pool {old} of {}; renumbering it to {} \
                                 would make the next rebalance move its replicas to other servers (take it out of \
                                 the tenant and let it drain first)",
                                p.instance, i.segments, p.tag, p.pool
                            )
                        })
                    }
                }
            },
            Action::EnableInstance(id) => (!instance_exists(id)).then(|| format!("no instance {id} in this cluster")),
            Action::DisableInstance(id) => match instance(id) {
                None => Some(format!("no instance {id} in this cluster")),
                Some(_) if !leaving(id) => Some(format!(
                    "instance {id} is not being scaled in (its pod stays); only instances that leave are disabled"
                )),
                Some(_) => None,
            },
            Action::DrainInstance(id) => match instance(id) {
                None => Some(format!("no instance {id} in this cluster")),
                Some((p, _)) if p.role != Role::Minion => {
                    Some(format!("{id} is not a minion; only minions are drained"))
                }
                Some(_) if !leaving(id) => Some(format!(
                    "minion {id} is not being scaled in (its pod stays); only minions that leave are drained"
                )),
                Some(_) => None,
            },
            Action::DropInstance(id) => match (instance_of_pod(id), departed(id)) {
                (Some(_), _) => Some(format!("instance {id} still has its pod; lower the pool's replicas first")),
                (None, None) => Some(format!("no departed instance {id} in this cluster")),
                (None, Some((_, i))) if i.live => Some(format!("instance {id} is still live")),
                (None, Some((_, i))) if i.segments > 0 => {
                    Some(format!("instance {id} still holds {} segments", i.segments))
                }
                (None, Some(_)) => None,
            },
            Action::RebalanceTable(name) => {
                (!state.tables.iter().any(|t| &t.name == name)).then(|| format!("no table {name} in this cluster"))
            }
            Action::Wait(why) | Action::Block(why) => why.trim().is_empty().then(|| "a reason is required".to_string()),
        })
        .collect()
}

/// Ok when every action of the plan may be carried out.
pub fn check(state: &ClusterState, plan: &[Action]) -> Result<(), Violation> {
    match verdicts(state, plan).into_iter().enumerate().find_map(|(i, v)| v.map(|r| (i, r))) {
        Some((index, reason)) => Err(Violation { index, action: describe(&plan[index]), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Ensemble, InstancePool, InstanceTags, Member, MemberMode, Pod};

    fn ensemble(members: u32, down: &[u32]) -> ClusterState {
        let mut s = state(Instance::default(), Instance::default());
        s.ensemble = Some(Ensemble {
            desired_members: members,
            configured_members: members,
            target_revision: "z2".into(),
            image: "zookeeper:3.9.3".into(),
            order: 0,
            members: (0..members)
                .map(|o| Member {
                    pod: format!("c-zookeeper-{o}"),
                    id: o + 1,
                    revision: "z1".into(),
                    ready: !down.contains(&o),
                    terminating: false,
                    restarts: 0,
                    age_seconds: 100,
                    mode: if down.contains(&o) { MemberMode::NotServing } else { MemberMode::Follower },
                    synced: !down.contains(&o),
                    leaving: false,
                    zone: None,
                    node_ready: true,
                })
                .collect(),
        });
        s
    }

    fn restart(pods: &[&str]) -> Vec<Action> {
        pods.iter().map(|p| Action::RestartPod(p.to_string())).collect()
    }

    /// Never two members down in a three-member ensemble: a restart waits for the member down
    /// to be back in sync (the one down may be replaced); five members survive two down.
    #[test]
    fn a_zookeeper_member_restarts_only_while_the_quorum_survives_it() {
        assert_eq!(verdicts(&ensemble(3, &[]), &restart(&["c-zookeeper-2"])), vec![None]);
        let two = verdicts(&ensemble(3, &[]), &restart(&["c-zookeeper-2", "c-zookeeper-1"]));
        assert!(two[0].is_none() && two[1].as_deref().is_some_and(|v| v.contains("no quorum")), "{two:?}");
        let one_down = verdicts(&ensemble(3, &[0]), &restart(&["c-zookeeper-2"]));
        assert!(one_down[0].as_deref().is_some_and(|v| v.contains("1 down already")), "{one_down:?}");
        assert_eq!(verdicts(&ensemble(3, &[0]), &restart(&["c-zookeeper-0"])), vec![None], "the one down is replaced");
        assert_eq!(verdicts(&ensemble(5, &[0]), &restart(&["c-zookeeper-4"])), vec![None]);
        assert!(verdicts(&ensemble(5, &[0, 1]), &restart(&["c-zookeeper-4"]))[0].is_some());
        // A single member is restarted all the same: there is no other way to upgrade it.
        assert_eq!(verdicts(&ensemble(1, &[]), &restart(&["c-zookeeper-0"])), vec![None]);
        let mut leaving = ensemble(3, &[]);
        leaving.ensemble.as_mut().unwrap().members[2].leaving = true;
        assert!(verdicts(&leaving, &restart(&["c-zookeeper-2"]))[0].as_deref().is_some_and(|v| v.contains("leaving")));
    }

    fn state(instance: Instance, departed: Instance) -> ClusterState {
        let pod = Pod {
            name: "c-server-0".into(),
            ordinal: 0,
            revision: "r1".into(),
            ready: true,
            terminating: false,
            restarts: 0,
            age_seconds: 60,
            instance: Some(instance),
            zone: Some("zone-a".into()),
            node_ready: true,
        };
        let pool = Pool {
            name: "server".into(),
            role: Role::Server,
            zones: vec![],
            desired_replicas: 1,
            current_replicas: 1,
            min_replicas: 0,
            max_replicas: 3,
            ready_replicas: 1,
            updated_replicas: 1,
            current_revision: "r1".into(),
            target_revision: "r1".into(),
            image: "apachepinot/pinot:1.3.0".into(),
            max_unavailable: 1,
            pods: vec![pod],
            departed: vec![departed],
        };
        let mut s = crate::policy::runtime::empty_state();
        s.pools = vec![pool];
        s
    }

    fn instance(id: &str, enabled: bool, tags: &[&str]) -> Instance {
        Instance {
            id: id.into(),
            live: true,
            enabled,
            queries_enabled: true,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            segments: 0,
            pools: Default::default(),
        }
    }

    fn tags(instance: &str, tags: &[&str]) -> Action {
        Action::UpdateTags(InstanceTags {
            instance: instance.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        })
    }

    #[test]
    fn steps_pinot_has_already_taken_change_nothing() {
        let s = state(
            instance("Server_0", true, &["sales_OFFLINE", "sales_REALTIME"]),
            instance("Minion_3", false, &[MINION_DRAINED]),
        );
        // Tags as they are, in any order or repeated: nothing to do.
        assert!(changes_nothing(&s, &tags("Server_0", &["sales_REALTIME", "sales_OFFLINE"])));
        assert!(changes_nothing(&s, &tags("Server_0", &["sales_OFFLINE", "sales_REALTIME", "sales_OFFLINE"])));
        assert!(!changes_nothing(&s, &tags("Server_0", &["sales_OFFLINE"])));
        assert!(!changes_nothing(&s, &tags("Server_0", &[])));
        // Departed instances count too.
        assert!(changes_nothing(&s, &Action::DisableInstance("Minion_3".into())));
        assert!(changes_nothing(&s, &Action::DrainInstance("Minion_3".into())));
        assert!(!changes_nothing(&s, &Action::EnableInstance("Minion_3".into())));
        assert!(changes_nothing(&s, &Action::EnableInstance("Server_0".into())));
        assert!(!changes_nothing(&s, &Action::DisableInstance("Server_0".into())));
        assert!(!changes_nothing(&s, &Action::DrainInstance("Server_0".into())));
        // An instance the state does not have, and steps that always act, are carried out (or
        // refused by the guardrails).
        assert!(!changes_nothing(&s, &tags("Server_9", &[])));
        assert!(!changes_nothing(&s, &Action::DropInstance("Minion_3".into())));
        assert!(!changes_nothing(&s, &Action::RebalanceTable("t_OFFLINE".into())));
    }

    fn pool(instance: &str, tag: &str, pool: u32) -> Action {
        Action::SetInstancePool(InstancePool { instance: instance.into(), tag: tag.into(), pool })
    }

    #[test]
    fn pinot_pools_are_set_per_carried_tag_of_a_servers_instance_and_never_renumbered_under_segments() {
        let mut server = instance("Server_0", true, &["sales_OFFLINE"]);
        server.pools = [("sales_OFFLINE".to_string(), 1)].into();
        let s = state(server.clone(), instance("Server_3", false, &["sales_OFFLINE"]));
        // As it is: nothing to do; another tag or number: something to do.
        assert!(changes_nothing(&s, &pool("Server_0", "sales_OFFLINE", 1)));
        assert!(!changes_nothing(&s, &pool("Server_0", "sales_OFFLINE", 2)));
        assert!(!changes_nothing(&s, &pool("Server_0", "sales_REALTIME", 1)));

        // No segments yet: renumbering is fine; a tag it does not carry is not, unless the plan
        // gives it the tag first.
        assert_eq!(check(&s, &[pool("Server_0", "sales_OFFLINE", 2)]), Ok(()));
        let err = check(&s, &[pool("Server_0", "sales_REALTIME", 0)]).unwrap_err();
        assert!(err.reason.contains("does not carry tag sales_REALTIME"), "{err}");
        assert_eq!(
            check(&s, &[tags("Server_0", &["sales_OFFLINE", "sales_REALTIME"]), pool("Server_0", "sales_REALTIME", 0)]),
            Ok(())
        );
        let err = check(&s, &[tags("Server_0", &["other_OFFLINE"]), pool("Server_0", "sales_OFFLINE", 1)]).unwrap_err();
        assert!(err.reason.contains("does not carry tag sales_OFFLINE"), "{err}");
        // Departed or unknown instances.
        let err = check(&s, &[pool("Server_3", "sales_OFFLINE", 0)]).unwrap_err();
        assert!(err.reason.contains("has no pod"), "{err}");
        assert!(check(&s, &[pool("Server_9", "sales_OFFLINE", 0)]).unwrap_err().reason.contains("no instance"));

        // Holding segments: its number stays; giving it a first pool, or the same, is fine.
        server.segments = 12;
        let s = state(server, instance("Server_3", false, &[]));
        let err = check(&s, &[pool("Server_0", "sales_OFFLINE", 2)]).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.reason.contains("holds 12 segments in Pinot pool 1 of sales_OFFLINE"), "{err}");
        assert_eq!(check(&s, &[pool("Server_0", "sales_OFFLINE", 1)]), Ok(()));
        let mut unpooled = instance("Server_0", true, &["sales_OFFLINE"]);
        unpooled.segments = 12;
        let s = state(unpooled, instance("Server_3", false, &[]));
        assert_eq!(check(&s, &[pool("Server_0", "sales_OFFLINE", 2)]), Ok(()));
    }
}
