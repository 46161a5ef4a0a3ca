//! The default tenant policy: a tenant's instances are spread evenly over zones. Instances
//! already carrying the tenant are kept; then untagged instances are taken, then instances of
//! the default tenant (`DefaultTenant`, where Pinot puts new instances when tenant isolation is
//! on) that serve no segments. An instance that still serves segments of another tenant is
//! never moved, and instances of other named tenants are never taken.
//!
//! Zones become Pinot pools: for a server tenant whose servers run in more than one zone, each
//! server gets, for each of the tenant's tags it carries, the Pinot pool of its zone (so that
//! pool-based replica-group assignment puts each replica of a segment in another zone). A zone
//! keeps its number for good: numbers come from what the tenant's servers carry already, and a
//! new zone gets the lowest number no instance with the tenant's tags has ever carried (a lost
//! zone's servers keep theirs, and their number is not given away). A server holding segments
//! is never renumbered. A tenant in one zone gets no pools.

use std::collections::{BTreeMap, BTreeSet};

use pinot_policy_sdk::{Instance, Level, Pod, Pool, Role, State, TenantAction as Action, TenantPolicy};

struct DefaultTenants;

/// Pinot's default tenant.
const DEFAULT_TENANT: &str = "DefaultTenant";

/// How freely an instance may join a tenant: lower is taken first; `None` never.
fn preference(instance: &Instance, role: Role, mine: bool) -> Option<u8> {
    if mine {
        return Some(0);
    }
    if instance.tags().all(|t| t == untagged_tag(role)) {
        return Some(1);
    }
    let default_tenant =
        instance.tags().all(|t| t.strip_prefix(DEFAULT_TENANT).is_some_and(|rest| rest.starts_with('_')));
    (default_tenant && instance.segments() == 0).then_some(2)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Controller => "controller",
        Role::Broker => "broker",
        Role::Server => "server",
        Role::Minion => "minion",
    }
}

fn untagged_tag(role: Role) -> &'static str {
    match role {
        Role::Broker => "broker_untagged",
        Role::Minion => "minion_untagged",
        _ => "server_untagged",
    }
}

/// Where an instance runs: its node's zone as observed, else its pool's zone when the pool is
/// pinned to exactly one.
fn zone_of<'a>(pool: Pool<'a>, pod: Pod<'a>) -> Option<&'a str> {
    pod.zone().or_else(|| {
        let mut zones = pool.zones();
        match (zones.next(), zones.next()) {
            (Some(zone), None) => Some(zone),
            _ => None,
        }
    })
}

/// Each zone's Pinot pool for a tenant whose tags are `tags`, given the instances carrying them
/// after this plan (`holders`, with their zones): the number a zone's servers already carry
/// (most of them; a number two zones claim stays with the zone holding segments with it, else
/// the first by name), and for a new zone the lowest number no instance with the tags carries.
fn zone_pools<'a>(state: &'a State, tags: &[String], holders: &[(Instance<'a>, &'a str)]) -> BTreeMap<&'a str, u32> {
    let carried = |i: &Instance<'a>| -> Vec<u32> {
        i.pinot_pools().filter(|(t, _)| tags.iter().any(|w| w == t)).map(|(_, n)| n).collect()
    };
    // Per zone: how many of its servers carry each number, and whether those hold segments.
    let mut seen: BTreeMap<&str, BTreeMap<u32, (usize, bool)>> = BTreeMap::new();
    for (i, zone) in holders {
        let zone_seen = seen.entry(zone).or_default();
        for n in carried(i) {
            let entry = zone_seen.entry(n).or_default();
            entry.0 += 1;
            entry.1 |= i.segments() > 0;
        }
    }
    // A number ever carried by an instance with the tags (departed or not live included).
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for pool in state.pools() {
        let instances = pool.pods().filter_map(|p| p.instance()).chain(pool.departed());
        for i in instances.filter(|i| i.tags().any(|t| tags.iter().any(|w| w == t))) {
            used.extend(carried(&i));
        }
    }
    // Each zone's candidate: the number most of its servers carry (ties: the lowest).
    let mut claims: Vec<(&str, u32, bool)> = seen
        .iter()
        .filter_map(|(zone, counts)| {
            let (n, (_, segments)) = counts.iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))?;
            Some((*zone, *n, *segments))
        })
        .collect();
    // A number two zones claim: the zone holding segments with it keeps it, else the first.
    claims.sort_by_key(|(zone, n, segments)| (*n, !*segments, *zone));
    let mut pools: BTreeMap<&str, u32> = BTreeMap::new();
    let mut given: BTreeSet<u32> = BTreeSet::new();
    for (zone, n, _) in claims {
        if given.insert(n) {
            pools.insert(zone, n);
        }
    }
    for (_, zone) in holders {
        if !pools.contains_key(zone) {
            let n = (0..).find(|n| !used.contains(n) && !given.contains(n)).expect("a free number");
            given.insert(n);
            pools.insert(zone, n);
        }
    }
    pools
}

/// The Pinot pools a server tenant's instances should have: per instance carrying its tags
/// after this plan (`new_tags`), the pool of its zone for each of the tenant's tags it
/// carries; nothing when they run in fewer than two zones or a zone is unknown.
fn pool_actions(
    state: &State,
    tenant: &str,
    tags: &[String],
    chosen: &[(Pool<'_>, Pod<'_>, Instance<'_>, Vec<String>)],
) -> Vec<Action> {
    let holders: Vec<(Instance, &str, &Vec<String>)> = chosen
        .iter()
        .filter(|(_, _, _, new)| new.iter().any(|t| tags.contains(t)))
        .filter_map(|(pool, pod, i, new)| Some((*i, zone_of(*pool, *pod)?, new)))
        .collect();
    let zones: BTreeSet<&str> = holders.iter().map(|(_, z, _)| *z).collect();
    if zones.len() < 2 {
        return vec![];
    }
    let zoned: Vec<(Instance, &str)> = holders.iter().map(|(i, z, _)| (*i, *z)).collect();
    let pools = zone_pools(state, tags, &zoned);
    let mut actions = Vec::new();
    for (i, zone, new_tags) in &holders {
        let n = pools[zone];
        for tag in new_tags.iter().filter(|t| tags.contains(t)) {
            match i.pinot_pool(tag) {
                Some(old) if old == n => {}
                Some(old) if i.segments() > 0 => pinot_policy_sdk::log(
                    Level::Warn,
                    &format!(
                        "tenant {tenant}: {} (zone {zone}, Pinot pool {n}) holds segments in pool {old} of {tag}; \
                         it keeps pool {old}",
                        i.id()
                    ),
                ),
                _ => actions.push(Action::SetInstancePool { instance: i.id().into(), tag: tag.clone(), pool: n }),
            }
        }
    }
    actions
}

/// A candidate instance, with its pool and pod.
type Member<'a> = (Pool<'a>, Pod<'a>, Instance<'a>);

impl TenantPolicy for DefaultTenants {
    const NAME: &'static str = "tenant-default";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn plan(state: &State) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        // Instances already promised to a tenant in this plan.
        let mut taken: Vec<&str> = Vec::new();
        for tenant in state.tenants() {
            let role = tenant.role();
            let tags: Vec<(String, u32)> = match role {
                Role::Server => vec![
                    (format!("{}_OFFLINE", tenant.name()), tenant.offline_instances()),
                    (format!("{}_REALTIME", tenant.name()), tenant.realtime_instances()),
                ],
                Role::Broker => vec![(format!("{}_BROKER", tenant.name()), tenant.instances())],
                Role::Minion => vec![(format!("{}_MINION", tenant.name()), tenant.instances())],
                Role::Controller => return Err(format!("tenant {}: controllers have no tenants", tenant.name())),
            };
            let wanted = tags.iter().map(|(_, n)| *n).max().unwrap_or(0) as usize;
            // Candidates per zone: instances of the role, with their zone ("" when unknown).
            let mut by_zone: BTreeMap<&str, Vec<(Member, u8)>> = BTreeMap::new();
            for (pool, pod, i) in state.instances().filter(|(pool, _, _)| pool.role() == role) {
                let mine = tags.iter().any(|(t, _)| i.has_tag(t));
                if let Some(rank) = preference(&i, role, mine)
                    && !taken.contains(&i.id())
                {
                    by_zone.entry(zone_of(pool, pod).unwrap_or("")).or_default().push(((pool, pod, i), rank));
                }
            }
            // Per zone the most suitable first, then round-robin over zones.
            for list in by_zone.values_mut() {
                list.sort_by_key(|((_, _, i), rank)| (*rank, i.id()));
            }
            let mut chosen: Vec<Member> = Vec::new();
            let mut round = 0;
            while chosen.len() < wanted {
                let before = chosen.len();
                for list in by_zone.values() {
                    if let Some((i, _)) = list.get(round)
                        && chosen.len() < wanted
                    {
                        chosen.push(*i);
                    }
                }
                if chosen.len() == before {
                    return Ok(vec![Action::Block(format!(
                        "tenant {} needs {wanted} {} instances but only {} are free or already its own; add instances",
                        tenant.name(),
                        role_name(role),
                        chosen.len()
                    ))]);
                }
                round += 1;
            }
            let mut placed = Vec::new();
            for (idx, (pool, pod, instance)) in chosen.iter().enumerate() {
                // The tenant's tags replace the untagged and default-tenant tags it had.
                let mut new_tags: Vec<String> = instance
                    .tags()
                    .filter(|t| {
                        *t != untagged_tag(role)
                            && !t.strip_prefix(DEFAULT_TENANT).is_some_and(|rest| rest.starts_with('_'))
                            && !tags.iter().any(|(w, _)| w == t)
                    })
                    .map(String::from)
                    .collect();
                for (k, (tag, count)) in tags.iter().enumerate() {
                    let take = if k == 0 { idx < *count as usize } else { idx >= wanted - *count as usize };
                    if take {
                        new_tags.push(tag.clone());
                    }
                }
                let mut current: Vec<&str> = instance.tags().collect();
                current.sort();
                let mut sorted: Vec<&str> = new_tags.iter().map(String::as_str).collect();
                sorted.sort();
                if current != sorted {
                    actions.push(Action::UpdateTags { instance: instance.id().into(), tags: new_tags.clone() });
                }
                taken.push(instance.id());
                placed.push((*pool, *pod, *instance, new_tags));
            }
            if role == Role::Server {
                let tags: Vec<String> = tags.into_iter().map(|(t, _)| t).collect();
                actions.extend(pool_actions(state, tenant.name(), &tags, &placed));
            }
        }
        Ok(actions)
    }
}

pinot_policy_sdk::export_tenant_policy!(DefaultTenants);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pinot_policy_sdk::{Role, StateBuilder, TenantAction, TenantPolicy, model::Tenant};

    use super::DefaultTenants;

    const TAGS: [&str; 2] = ["sales_OFFLINE", "sales_REALTIME"];

    fn sales(servers: u32) -> Tenant {
        Tenant {
            name: "sales".into(),
            role: Role::Server,
            instances: servers,
            offline_instances: servers,
            realtime_instances: servers,
        }
    }

    /// One server pool per zone, `servers` servers each.
    fn zoned(zones: &[&str], servers: u32) -> StateBuilder {
        zones.iter().fold(StateBuilder::new("c"), |b, z| {
            let pool = format!("server-{}", z.trim_start_matches("zone-"));
            b.pool(&pool, Role::Server, servers).zones(&pool, &[z])
        })
    }

    /// Gives a pod's instance the tenant's tags and `pool` for both.
    fn member(b: StateBuilder, pod: &str, pool: u32, segments: u32) -> StateBuilder {
        let b = b.pod(pod, |p| {
            let i = p.instance.as_mut().unwrap();
            i.tags = TAGS.map(String::from).to_vec();
            i.segments = segments;
        });
        TAGS.iter().fold(b, |b, tag| b.pinot_pool(pod, tag, pool))
    }

    /// The pools asked for, per pod name: each tag's number, which must be the same for both tags.
    fn pools_asked(actions: &[TenantAction]) -> BTreeMap<String, u32> {
        let mut by_instance: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for a in actions {
            if let TenantAction::SetInstancePool { instance, tag, pool } = a {
                by_instance.entry(instance.clone()).or_default().insert(tag.clone(), *pool);
            }
        }
        by_instance
            .into_iter()
            .map(|(id, tags)| {
                let numbers: Vec<u32> = tags.values().copied().collect();
                assert_eq!(tags.keys().map(String::as_str).collect::<Vec<_>>(), TAGS, "{id}: both tags");
                assert_eq!(numbers[0], numbers[1], "{id}: one number per zone over the tenant's tags");
                let pod = id.trim_start_matches("Server_").split('.').next().unwrap().to_string();
                (pod, numbers[0])
            })
            .collect()
    }

    fn asked(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn each_zone_becomes_a_pinot_pool_of_the_tenants_tags() {
        let state = zoned(&["zone-a", "zone-b", "zone-c"], 1).tenant(sales(3)).build();
        let plan = DefaultTenants::plan(&state).unwrap();
        let tagged = plan.iter().filter(|a| matches!(a, TenantAction::UpdateTags { .. })).count();
        assert_eq!(tagged, 3, "{plan:?}");
        // Tags first, then pools (the guardrails accept a pool for a tag this plan gives).
        let first_pool = plan.iter().position(|a| matches!(a, TenantAction::SetInstancePool { .. })).unwrap();
        assert_eq!(first_pool, 3, "{plan:?}");
        assert_eq!(pools_asked(&plan), asked(&[("c-server-a-0", 0), ("c-server-b-0", 1), ("c-server-c-0", 2)]));
    }

    #[test]
    fn a_zone_keeps_its_number_and_a_new_zone_gets_a_number_never_used() {
        // Zones a, b, c pooled 0, 1, 2, a second server in each and a new zone d: the new
        // zone-a server gets 0, zone-d gets 3.
        let b = zoned(&["zone-a", "zone-b", "zone-c", "zone-d"], 2);
        let b = member(member(b, "c-server-a-0", 0, 10), "c-server-b-0", 1, 10);
        let b = member(b, "c-server-c-0", 2, 10);
        let state = b.tenant(sales(5)).build();
        let plan = DefaultTenants::plan(&state).unwrap();
        // Five servers over four zones: one more in zone-a (round-robin from the first zone).
        assert_eq!(pools_asked(&plan), asked(&[("c-server-a-1", 0), ("c-server-d-0", 3)]), "{plan:?}");

        // Renumbered by someone to 7 in zone-b: numbers used anywhere are never given to a new zone.
        let b = zoned(&["zone-a", "zone-b", "zone-c"], 1);
        let b = member(member(b, "c-server-a-0", 0, 10), "c-server-b-0", 7, 10);
        let state = member(b, "c-server-c-0", 2, 10).tenant(sales(3)).build();
        assert_eq!(DefaultTenants::plan(&state), Ok(vec![]), "settled: each zone has its own number");
    }

    #[test]
    fn a_lost_zone_keeps_its_number_and_nothing_is_renumbered() {
        // Zone-b is lost: its server is not live, its pod not ready, its node not Ready.
        let b = zoned(&["zone-a", "zone-b", "zone-c"], 1);
        let b = member(member(b, "c-server-a-0", 0, 10), "c-server-b-0", 1, 10);
        let b = member(b, "c-server-c-0", 2, 10).pod("c-server-b-0", |p| {
            p.ready = false;
            p.node_ready = false;
            p.instance.as_mut().unwrap().live = false;
        });
        assert_eq!(DefaultTenants::plan(&b.clone().tenant(sales(3)).build()), Ok(vec![]));
        // A fourth zone added meanwhile gets 3, not zone-b's 1.
        let b = b.pool("server-d", Role::Server, 1).zones("server-d", &["zone-d"]);
        let plan = DefaultTenants::plan(&b.tenant(sales(4)).build()).unwrap();
        assert_eq!(pools_asked(&plan), asked(&[("c-server-d-0", 3)]), "{plan:?}");
    }

    #[test]
    fn a_server_holding_segments_is_never_renumbered_and_a_claimed_number_stays_with_its_segments() {
        // Two zones claim 1 (someone set it by hand): zone-b holds segments with it and keeps
        // it; zone-a's servers hold none and get the lowest free number.
        let b = zoned(&["zone-a", "zone-b"], 1);
        let b = member(member(b, "c-server-a-0", 1, 0), "c-server-b-0", 1, 10);
        let plan = DefaultTenants::plan(&b.tenant(sales(2)).build()).unwrap();
        assert_eq!(pools_asked(&plan), asked(&[("c-server-a-0", 0)]), "{plan:?}");
        // Both hold segments: zone-a's server keeps its number (the guardrails would refuse
        // the change); the policy asks for nothing.
        let b = zoned(&["zone-a", "zone-b"], 1);
        let b = member(member(b, "c-server-a-0", 1, 4), "c-server-b-0", 1, 10);
        assert_eq!(DefaultTenants::plan(&b.tenant(sales(2)).build()), Ok(vec![]));
    }

    #[test]
    fn a_tenant_in_one_zone_gets_no_pools_and_a_spread_pool_is_placed_by_observed_zone() {
        let state = zoned(&["zone-a"], 3).tenant(sales(3)).build();
        let plan = DefaultTenants::plan(&state).unwrap();
        assert!(plan.iter().all(|a| matches!(a, TenantAction::UpdateTags { .. })), "{plan:?}");
        assert_eq!(plan.len(), 3);

        // One pool spread over three zones: its pods run in a, b, c, a, b, c; the tenant takes
        // one per zone and each gets its zone's number.
        let state = StateBuilder::new("c")
            .pool("server", Role::Server, 6)
            .zones("server", &["zone-a", "zone-b", "zone-c"])
            .tenant(sales(3))
            .build();
        let plan = DefaultTenants::plan(&state).unwrap();
        assert_eq!(pools_asked(&plan), asked(&[("c-server-0", 0), ("c-server-1", 1), ("c-server-2", 2)]), "{plan:?}");
        // Not scheduled yet (no observed zone) in a pool of several zones: no pool for it.
        let state = StateBuilder::new("c")
            .pool("server", Role::Server, 3)
            .zones("server", &["zone-a", "zone-b", "zone-c"])
            .pod("c-server-2", |p| p.zone = None)
            .tenant(sales(3))
            .build();
        let plan = DefaultTenants::plan(&state).unwrap();
        assert_eq!(pools_asked(&plan), asked(&[("c-server-0", 0), ("c-server-1", 1)]), "{plan:?}");
    }
}
