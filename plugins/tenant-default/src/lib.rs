//! The default tenant policy: a tenant's instances are spread evenly over zones. Instances
//! already carrying the tenant are kept; then untagged instances are taken, then instances of
//! the default tenant (`DefaultTenant`, where Pinot puts new instances when tenant isolation is
//! on) that serve no segments. An instance that still serves segments of another tenant is
//! never moved, and instances of other named tenants are never taken.

use std::collections::BTreeMap;

use pinot_policy_sdk::tenant::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info, Instance, InstanceTags, Role},
};

struct DefaultTenants;

/// Pinot's default tenant.
const DEFAULT_TENANT: &str = "DefaultTenant";

/// How freely an instance may join a tenant: lower is taken first; `None` never.
fn preference(tags: &[String], role: Role, mine: bool, segments: u32) -> Option<u8> {
    if mine {
        return Some(0);
    }
    if tags.iter().all(|t| t == untagged_tag(role)) {
        return Some(1);
    }
    let default_tenant = tags.iter().all(|t| t.strip_prefix(DEFAULT_TENANT).is_some_and(|rest| rest.starts_with('_')));
    (default_tenant && segments == 0).then_some(2)
}

fn untagged_tag(role: Role) -> &'static str {
    match role {
        Role::Broker => "broker_untagged",
        Role::Minion => "minion_untagged",
        _ => "server_untagged",
    }
}

impl Guest for DefaultTenants {
    fn info() -> Info {
        Info {
            name: "tenant-default".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: pinot_policy_sdk::API_VERSION.into(),
        }
    }

    fn plan_tenants(state: ClusterState) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        // Instances already promised to a tenant in this plan.
        let mut taken: Vec<String> = Vec::new();
        for tenant in &state.tenants {
            let tags: Vec<(String, u32)> = match tenant.role {
                Role::Server => vec![
                    (format!("{}_OFFLINE", tenant.name), tenant.offline_instances),
                    (format!("{}_REALTIME", tenant.name), tenant.realtime_instances),
                ],
                Role::Broker => vec![(format!("{}_BROKER", tenant.name), tenant.instances)],
                Role::Minion => vec![(format!("{}_MINION", tenant.name), tenant.instances)],
                Role::Controller => return Err(format!("tenant {}: controllers have no tenants", tenant.name)),
            };
            let wanted = tags.iter().map(|(_, n)| *n).max().unwrap_or(0) as usize;
            // Candidates per zone: instances of the role, with their zone.
            let mut by_zone: BTreeMap<String, Vec<(&Instance, u8)>> = BTreeMap::new();
            for pool in state.pools.iter().filter(|p| p.role == tenant.role) {
                let zone = pool.zones.first().cloned().unwrap_or_default();
                for pod in &pool.pods {
                    if let Some(i) = &pod.instance {
                        let mine = tags.iter().any(|(t, _)| i.tags.contains(t));
                        if let Some(rank) = preference(&i.tags, tenant.role, mine, i.segments)
                            && !taken.contains(&i.id)
                        {
                            by_zone.entry(zone.clone()).or_default().push((i, rank));
                        }
                    }
                }
            }
            // Per zone the most suitable first, then round-robin over zones.
            for list in by_zone.values_mut() {
                list.sort_by_key(|(i, rank)| (*rank, i.id.clone()));
            }
            let mut chosen: Vec<&Instance> = Vec::new();
            let mut round = 0;
            while chosen.len() < wanted {
                let before = chosen.len();
                for list in by_zone.values() {
                    if let Some((i, _)) = list.get(round)
                        && chosen.len() < wanted
                    {
                        chosen.push(i);
                    }
                }
                if chosen.len() == before {
                    return Ok(vec![Action::Block(format!(
                        "tenant {} needs {wanted} {:?} instances but only {} are free or already its own; add instances",
                        tenant.name,
                        tenant.role,
                        chosen.len()
                    ))]);
                }
                round += 1;
            }
            for (idx, instance) in chosen.iter().enumerate() {
                // The tenant's tags replace the untagged and default-tenant tags it had.
                let mut new_tags: Vec<String> = instance
                    .tags
                    .iter()
                    .filter(|t| {
                        *t != untagged_tag(tenant.role)
                            && !t.starts_with(&format!("{DEFAULT_TENANT}_"))
                            && !tags.iter().any(|(w, _)| w == *t)
                    })
                    .cloned()
                    .collect();
                for (k, (tag, count)) in tags.iter().enumerate() {
                    let take = if k == 0 { idx < *count as usize } else { idx >= wanted - *count as usize };
                    if take {
                        new_tags.push(tag.clone());
                    }
                }
                let mut current = instance.tags.clone();
                current.sort();
                let mut sorted = new_tags.clone();
                sorted.sort();
                if current != sorted {
                    actions.push(Action::UpdateTags(InstanceTags { instance: instance.id.clone(), tags: new_tags }));
                }
                taken.push(instance.id.clone());
            }
        }
        Ok(actions)
    }
}

tenant::export!(DefaultTenants with_types_in pinot_policy_sdk::tenant);
