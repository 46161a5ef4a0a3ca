//! Tenant placement, decided (pure): the cluster's PinotTenants go to its tenant policy with
//! the observed instances (zone, tags, Pinot pools, liveness); the policy answers with the tags
//! each instance should carry and the Pinot pools it should have per tag, and the guardrails
//! check them. `apply` sets both through Pinot's instance API; the cluster's status reports
//! where each tenant is, and the PinotTenant controller copies that into each PinotTenant's
//! status.

use std::collections::BTreeMap;

use kube::ResourceExt;
use pinot_crds::{PinotObjectStatus, PinotTenant, TenantZone};

use super::validate::FieldError;
pub use crate::policy::model::Tenant;
use crate::policy::{
    PolicyRegistry, guardrails,
    model::{Action, ClusterState, Role},
    registry::ActivePolicy,
};

/// A PinotTenant as the policy sees it, or what is wrong with its spec (the field and the fix).
pub fn tenant_request(t: &PinotTenant) -> Result<Tenant, FieldError> {
    let error = |field: &str, message: String| FieldError { field: format!("spec.{field}"), message };
    let name = t.spec.tenant_name.clone().unwrap_or_else(|| t.name_any());
    if name.trim().is_empty() || name.contains(['/', ',']) {
        return Err(error("tenantName", format!("{name:?} is not a tenant name: use one without '/' or ','")));
    }
    let count = |field: &str, v: Option<i32>| match v {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n as u32),
        Some(n) => Err(error(field, format!("is {n}; it must be 0 or more"))),
    };
    let (role, instances, offline, realtime) = match t.spec.tenant_role.to_ascii_uppercase().as_str() {
        "SERVER" => {
            let offline = count("offlineInstances", t.spec.offline_instances)?;
            let realtime = count("realtimeInstances", t.spec.realtime_instances)?;
            if offline == 0 && realtime == 0 {
                return Err(error(
                    "offlineInstances",
                    "and spec.realtimeInstances are both 0: a server tenant needs servers for OFFLINE or REALTIME tables".into(),
                ));
            }
            (Role::Server, offline.max(realtime), offline, realtime)
        }
        "BROKER" => {
            let n = count("numberOfInstances", t.spec.number_of_instances)?;
            if n == 0 {
                return Err(error("numberOfInstances", "must be at least 1 for a broker tenant".into()));
            }
            (Role::Broker, n, 0, 0)
        }
        other => return Err(error("tenantRole", format!("{other:?} is not SERVER or BROKER"))),
    };
    Ok(Tenant { name, role, instances, offline_instances: offline, realtime_instances: realtime })
}

/// The tags a tenant's instances carry.
pub fn tenant_tags(t: &Tenant) -> Vec<String> {
    match t.role {
        Role::Server => vec![format!("{}_OFFLINE", t.name), format!("{}_REALTIME", t.name)],
        Role::Broker => vec![format!("{}_BROKER", t.name)],
        _ => vec![format!("{}_MINION", t.name)],
    }
}

/// What the tenant policy decided.
#[derive(Clone, Debug, PartialEq)]
pub enum TenantDecision {
    /// The policy was not asked (the controller does not answer, the policy is not loaded).
    Waiting { reason: &'static str, message: String },
    /// Tags and Pinot pools to set.
    Place(Placement),
    /// Nothing to change now.
    Settled,
    /// The policy reports a problem (not enough free instances, ...).
    Blocked(String),
    /// The policy failed or its plan broke a guardrail.
    Refused(String),
}

impl TenantDecision {
    /// What the operator does with the decision, as `plan` and the status say it.
    pub fn outcome(&self) -> String {
        match self {
            TenantDecision::Waiting { reason, message } => format!("wait ({reason}): {message}"),
            TenantDecision::Place(placement) => {
                let tags: Vec<String> =
                    placement.tags.iter().map(|(instance, tags)| format!("{instance} -> {}", tags.join(","))).collect();
                format!("place: {}", tags.join("; "))
            }
            TenantDecision::Settled => "do nothing (every tenant is placed)".into(),
            TenantDecision::Blocked(why) => format!("report Blocked: {why}"),
            TenantDecision::Refused(why) => format!("refuse the whole plan: {why}"),
        }
    }
}

/// What a tenant plan changes in Pinot, in the order asked: tags first, then pools (a pool is
/// set for a tag the instance carries, perhaps from this plan).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// Tags to set, per instance.
    pub tags: Vec<(String, Vec<String>)>,
    /// Pinot pools to set per instance: (tag, pool) entries, its pools for other tags kept.
    pub pools: Vec<(String, Vec<(String, u32)>)>,
}

/// Runs the tenant policy on `state` (whose `tenants` are the requests) and checks its plan:
/// only `update-tags`, `set-instance-pool`, `wait` and `block`, each on an instance of this
/// cluster.
pub fn decide(registry: &PolicyRegistry, active: &ActivePolicy, state: &ClusterState) -> TenantDecision {
    let actions = match registry.decide(active, state) {
        Ok(a) => a,
        Err(e) => return TenantDecision::Refused(format!("tenant policy {}: {e}", active.policy.info.name)),
    };
    if let Err(v) = guardrails::check(state, &actions) {
        return TenantDecision::Refused(format!("tenant policy {}: {v}", active.policy.info.name));
    }
    let mut placement = Placement::default();
    // Tags and pools already as asked are not set again (nor looked at again soon).
    for action in actions.into_iter().filter(|a| !guardrails::changes_nothing(state, a)) {
        match action {
            Action::UpdateTags(t) => placement.tags.push((t.instance, t.tags)),
            Action::SetInstancePool(p) => match placement.pools.iter_mut().find(|(id, _)| *id == p.instance) {
                Some((_, pools)) => {
                    pools.retain(|(tag, _)| *tag != p.tag);
                    pools.push((p.tag, p.pool));
                }
                None => placement.pools.push((p.instance, vec![(p.tag, p.pool)])),
            },
            Action::Wait(_) => {}
            Action::Block(why) => return TenantDecision::Blocked(why),
            other => {
                return TenantDecision::Refused(format!(
                    "tenant policy {}: {} is not a tenant action (only update-tags, set-instance-pool, wait and \
                     block are)",
                    active.policy.info.name,
                    guardrails::describe(&other)
                ));
            }
        }
    }
    if placement == Placement::default() { TenantDecision::Settled } else { TenantDecision::Place(placement) }
}

/// Where an instance runs and its Pinot pools, as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Member {
    pub zone: Option<String>,
    pub pools: BTreeMap<String, u32>,
    pub live: bool,
}

/// A server tenant's servers by zone (from `members`, with the tags of `tags_by_instance`),
/// and how many of them still lack the Pinot pool of a tag they carry while the tenant runs in
/// more than one zone.
pub fn tenant_zones(
    request: &Tenant,
    tags_by_instance: &BTreeMap<String, Vec<String>>,
    members: &BTreeMap<String, Member>,
) -> (Vec<TenantZone>, u32) {
    if request.role != Role::Server {
        return (vec![], 0);
    }
    let tags = tenant_tags(request);
    let mut zones: BTreeMap<String, (Vec<&Member>, Vec<&[String]>)> = BTreeMap::new();
    for (id, carried) in tags_by_instance.iter().filter(|(_, ts)| ts.iter().any(|t| tags.contains(t))) {
        let Some(member) = members.get(id) else { continue };
        let zone = zones.entry(member.zone.clone().unwrap_or_default()).or_default();
        zone.0.push(member);
        zone.1.push(carried);
    }
    let known = zones.keys().filter(|z| !z.is_empty()).count();
    let mut pending = 0;
    let out = zones
        .iter()
        .map(|(zone, (servers, carried))| {
            let mut numbers = std::collections::BTreeSet::new();
            for (m, carried) in servers.iter().zip(carried) {
                let mine = carried.iter().filter(|t| tags.contains(t));
                let mut missing = false;
                for tag in mine {
                    match m.pools.get(tag) {
                        Some(n) => {
                            numbers.insert(*n);
                        }
                        None => missing = true,
                    }
                }
                if missing && known > 1 && !zone.is_empty() {
                    pending += 1;
                }
            }
            TenantZone {
                zone: zone.clone(),
                pool: (numbers.len() == 1).then(|| *numbers.first().expect("one")),
                servers: servers.len() as u32,
                live: servers.iter().filter(|m| m.live).count() as u32,
            }
        })
        .collect();
    (out, pending)
}

/// Each tenant's status after placement: its instances (those carrying any of its tags, from
/// `tags_by_instance`) and whether there are as many as it asked for.
pub fn tenant_status(
    request: &Tenant,
    tags_by_instance: &BTreeMap<String, Vec<String>>,
) -> (PinotObjectStatus, bool, String) {
    let tags = tenant_tags(request);
    let count = |tag: &str| tags_by_instance.values().filter(|ts| ts.iter().any(|t| t == tag)).count() as u32;
    let instances: Vec<String> = tags_by_instance
        .iter()
        .filter(|(_, ts)| ts.iter().any(|t| tags.contains(t)))
        .map(|(id, _)| id.clone())
        .collect();
    let (ready, message) = match request.role {
        Role::Server => {
            let (off, rt) = (count(&tags[0]), count(&tags[1]));
            (
                off == request.offline_instances && rt == request.realtime_instances,
                format!(
                    "server tenant {}: {off}/{} OFFLINE and {rt}/{} REALTIME servers",
                    request.name, request.offline_instances, request.realtime_instances
                ),
            )
        }
        _ => {
            let n = count(&tags[0]);
            (n == request.instances, format!("broker tenant {}: {n}/{} brokers", request.name, request.instances))
        }
    };
    let status = PinotObjectStatus { pinot_name: Some(request.name.clone()), instances, ..Default::default() };
    (status, ready, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(yaml: &str) -> PinotTenant {
        serde_yaml::from_str(&format!(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotTenant\nmetadata: {{name: sales, namespace: n}}\nspec: {yaml}\n"
        ))
        .unwrap()
    }

    #[test]
    fn requests_follow_pinots_tenant_body_and_mistakes_name_the_field() {
        let t = tenant_request(&tenant("{cluster: c, tenantRole: SERVER, offlineInstances: 2, realtimeInstances: 1}"))
            .unwrap();
        assert_eq!(
            (t.name.as_str(), t.role, t.instances, t.offline_instances, t.realtime_instances),
            ("sales", Role::Server, 2, 2, 1)
        );
        assert_eq!(tenant_tags(&t), ["sales_OFFLINE", "sales_REALTIME"]);
        let b = tenant_request(&tenant("{cluster: c, tenantRole: broker, tenantName: Sales, numberOfInstances: 1}"))
            .unwrap();
        assert_eq!((b.name.as_str(), b.role), ("Sales", Role::Broker));
        let e = tenant_request(&tenant("{cluster: c, tenantRole: MINION}")).unwrap_err().to_string();
        assert!(e.contains("spec.tenantRole"), "{e}");
        let e =
            tenant_request(&tenant("{cluster: c, tenantRole: SERVER, offlineInstances: -1}")).unwrap_err().to_string();
        assert!(e.contains("spec.offlineInstances"), "{e}");
    }

    #[test]
    fn status_counts_the_instances_carrying_the_tags() {
        let t = tenant_request(&tenant("{cluster: c, tenantRole: SERVER, offlineInstances: 2, realtimeInstances: 1}"))
            .unwrap();
        let tags = BTreeMap::from([
            ("s0".to_string(), vec!["sales_OFFLINE".to_string(), "sales_REALTIME".to_string()]),
            ("s1".to_string(), vec!["sales_OFFLINE".to_string()]),
            ("s2".to_string(), vec!["DefaultTenant_OFFLINE".to_string()]),
        ]);
        let (status, ready, message) = tenant_status(&t, &tags);
        assert!(ready, "{message}");
        assert_eq!(status.instances, ["s0", "s1"]);
        assert_eq!(message, "server tenant sales: 2/2 OFFLINE and 1/1 REALTIME servers");
    }

    #[test]
    fn a_server_tenant_reports_its_zones_and_the_pools_still_to_set() {
        let t = tenant_request(&tenant("{cluster: c, tenantRole: SERVER, offlineInstances: 3, realtimeInstances: 3}"))
            .unwrap();
        let both = vec!["sales_OFFLINE".to_string(), "sales_REALTIME".to_string()];
        let tags = BTreeMap::from([
            ("a0".to_string(), both.clone()),
            ("b0".to_string(), both.clone()),
            ("c0".to_string(), both.clone()),
            ("x".to_string(), vec!["other_OFFLINE".to_string()]),
        ]);
        let member = |zone: &str, pool: Option<u32>, live| Member {
            zone: Some(zone.into()),
            pools: pool.map(|n| both.iter().map(|t| (t.clone(), n)).collect()).unwrap_or_default(),
            live,
        };
        let mut members = BTreeMap::from([
            ("a0".to_string(), member("zone-a", Some(0), true)),
            ("b0".to_string(), member("zone-b", Some(1), false)),
            ("c0".to_string(), member("zone-c", None, true)),
            ("x".to_string(), member("zone-c", Some(9), true)),
        ]);
        let (zones, pending) = tenant_zones(&t, &tags, &members);
        let seen: Vec<_> = zones.iter().map(|z| (z.zone.as_str(), z.pool, z.servers, z.live)).collect();
        assert_eq!(seen, [("zone-a", Some(0), 1, 1), ("zone-b", Some(1), 1, 0), ("zone-c", None, 1, 1)]);
        assert_eq!(pending, 1, "c0 has no pool yet");
        // One zone: nothing pending (no pools are needed).
        for m in members.values_mut() {
            m.zone = Some("zone-a".into());
            m.pools.clear();
        }
        let (zones, pending) = tenant_zones(&t, &tags, &members);
        assert_eq!((zones.len(), zones[0].servers, pending), (1, 3, 0));
    }
}
