//! Step 3 of the pipeline: decides what to change this time. This is where the cluster's
//! policy plugins decide (install order, upgrades, scaling); until they do, the plan applies
//! every pool of the spec as it is, except a pool whose change Kubernetes cannot make.

use k8s_openapi::api::apps::v1::StatefulSet;

use super::{
    observe::ObservedCluster,
    validate::{FieldError, ValidCluster, ValidPool, ValidStorage},
};

/// What this reconcile will change.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a> {
    /// Pools whose objects are applied as the spec says.
    pub pools: Vec<&'a ValidPool>,
    /// Pools left as they are, and why: the spec asks for a change the apiserver would refuse.
    pub blocked: Vec<FieldError>,
}

pub fn plan<'a>(cluster: &'a ValidCluster, observed: &ObservedCluster) -> Plan<'a> {
    let mut plan = Plan { pools: Vec::new(), blocked: Vec::new() };
    for (i, pool) in cluster.pools.iter().enumerate() {
        match observed.statefulsets.get(&pool.name).and_then(|sts| storage_change(i, pool, sts)) {
            Some(blocked) => plan.blocked.push(blocked),
            None => plan.pools.push(pool),
        }
    }
    plan
}

/// A StatefulSet's volume claim templates cannot change once it exists; say so in terms of
/// the pool's spec instead of letting the apiserver refuse the whole StatefulSet.
fn storage_change(index: usize, pool: &ValidPool, sts: &StatefulSet) -> Option<FieldError> {
    let existing = sts.spec.as_ref()?.volume_claim_templates.as_ref().and_then(|claims| {
        let claim = claims.iter().find(|c| c.metadata.name.as_deref() == Some("data"))?;
        let spec = claim.spec.as_ref()?;
        let size = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?.0.clone();
        Some(ValidStorage { size, storage_class_name: spec.storage_class_name.clone() })
    });
    if existing == pool.storage {
        return None;
    }
    let describe = |s: &Option<ValidStorage>| match s {
        None => "no storage (emptyDir)".to_string(),
        Some(s) => format!("size {} class {}", s.size, s.storage_class_name.as_deref().unwrap_or("<cluster default>")),
    };
    Some(FieldError {
        field: format!("spec.pools[{index}].storage"),
        message: format!(
            "cannot change from {} to {} on an existing pool (StatefulSet volume claim templates are immutable); \
             set it back, or add a new pool with the new storage and then remove this one",
            describe(&existing),
            describe(&pool.storage)
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::{fixtures, validate::validate};

    fn sts_with_storage(size: Option<&str>) -> StatefulSet {
        let claims = size.map(|s| {
            json!([{"metadata": {"name": "data"}, "spec": {"storageClassName": "standard", "resources": {"requests": {"storage": s}}}}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "serviceName": "x", "template": {}, "volumeClaimTemplates": claims},
        }))
        .unwrap()
    }

    #[test]
    fn unchanged_pools_are_applied() {
        let cluster = validate(&fixtures::example()).unwrap();
        let mut observed = ObservedCluster::default();
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("50Gi")));
        observed.statefulsets.insert("broker-a".into(), sts_with_storage(None));
        let plan = plan(&cluster, &observed);
        assert_eq!(plan.pools.len(), 6);
        assert!(plan.blocked.is_empty());
    }

    #[test]
    fn a_storage_change_blocks_only_that_pool_and_names_the_field() {
        let cluster = validate(&fixtures::example()).unwrap();
        let mut observed = ObservedCluster::default();
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("20Gi")));
        let plan = plan(&cluster, &observed);
        assert_eq!(plan.pools.len(), 5);
        assert!(!plan.pools.iter().any(|p| p.name == "server-offline"));
        assert_eq!(plan.blocked[0].field, "spec.pools[3].storage");
        assert!(
            plan.blocked[0].message.contains("from size 20Gi class standard to size 50Gi class standard"),
            "{}",
            plan.blocked[0]
        );
    }
}
