//! Step 3 of the pipeline: decides what to change this time. This is where the cluster's
//! policy plugins decide (install order, upgrades, scaling); until they do, the plan applies
//! every pool of the spec as it is.

use super::{
    observe::ObservedCluster,
    validate::{ValidCluster, ValidPool},
};

/// What this reconcile will change.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a> {
    /// Pools whose objects are applied as the spec says.
    pub pools: Vec<&'a ValidPool>,
}

pub fn plan<'a>(cluster: &'a ValidCluster, _observed: &ObservedCluster) -> Plan<'a> {
    Plan { pools: cluster.pools.iter().collect() }
}
