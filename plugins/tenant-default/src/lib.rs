//! The default tenant policy: a tenant's instances are spread evenly over zones. Instances
//! already carrying the tenant are kept; then untagged instances are taken, then instances of
//! the default tenant (`DefaultTenant`, where Pinot puts new instances when tenant isolation is
//! on) that serve no segments. An instance that still serves segments of another tenant is
//! never moved, and instances of other named tenants are never taken.

use std::collections::BTreeMap;

use pinot_policy_sdk::{Instance, Role, State, TenantAction as Action, TenantPolicy};

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
            // Candidates per zone: instances of the role, with their zone.
            let mut by_zone: BTreeMap<&str, Vec<(Instance, u8)>> = BTreeMap::new();
            for (pool, _, i) in state.instances().filter(|(pool, _, _)| pool.role() == role) {
                let mine = tags.iter().any(|(t, _)| i.has_tag(t));
                if let Some(rank) = preference(&i, role, mine)
                    && !taken.contains(&i.id())
                {
                    by_zone.entry(pool.first_zone()).or_default().push((i, rank));
                }
            }
            // Per zone the most suitable first, then round-robin over zones.
            for list in by_zone.values_mut() {
                list.sort_by_key(|(i, rank)| (*rank, i.id()));
            }
            let mut chosen: Vec<Instance> = Vec::new();
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
            for (idx, instance) in chosen.iter().enumerate() {
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
                    actions.push(Action::UpdateTags { instance: instance.id().into(), tags: new_tags });
                }
                taken.push(instance.id());
            }
        }
        Ok(actions)
    }
}

pinot_policy_sdk::export_tenant_policy!(DefaultTenants);
