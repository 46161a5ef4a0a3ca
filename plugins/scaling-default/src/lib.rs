//! The default scaling policy. Scale out: raise replicas at once. Scale in of servers, one
//! pod at a time, highest ordinal first: untag the instance, rebalance the tables of its
//! tenant, wait until it holds no segment, then lower replicas; refuse when the servers left
//! could not hold a table's replication. Brokers and minions: untag, then lower replicas.

use pinot_policy_sdk::scaling::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info, InstanceTags, Pool, Role, SetReplicas},
};

struct DefaultScaling;

fn plan_pool(state: &ClusterState, pool: &Pool) -> Option<Vec<Action>> {
    let desired = pool.desired_replicas.clamp(pool.min_replicas, pool.max_replicas);
    if pool.current_replicas < desired {
        return Some(vec![Action::SetReplicas(SetReplicas { pool: pool.name.clone(), replicas: desired })]);
    }
    if pool.current_replicas <= desired {
        return None;
    }
    let leaving = pool.pods.iter().max_by_key(|p| p.ordinal)?;
    let Some(instance) = &leaving.instance else {
        return Some(vec![Action::SetReplicas(SetReplicas {
            pool: pool.name.clone(),
            replicas: pool.current_replicas - 1,
        })]);
    };
    if pool.role == Role::Server {
        // Servers that keep a table's tag after this one leaves.
        for table in &state.tables {
            if !instance.tags.contains(&table.server_tag) {
                continue;
            }
            let remaining = state
                .pools
                .iter()
                .flat_map(|p| p.pods.iter())
                .filter_map(|p| p.instance.as_ref())
                .filter(|i| i.id != instance.id && i.tags.contains(&table.server_tag))
                .count() as u32;
            if remaining < table.replication {
                return Some(vec![Action::Block(format!(
                    "scaling in {} would leave {remaining} servers for table {} with replication {}; add servers or lower the replication first",
                    pool.name, table.name, table.replication
                ))]);
            }
        }
    }
    if !instance.tags.is_empty() {
        let mut actions = vec![Action::UpdateTags(InstanceTags { instance: instance.id.clone(), tags: vec![] })];
        for table in state.tables.iter().filter(|t| instance.tags.contains(&t.server_tag)) {
            actions.push(Action::RebalanceTable(table.name.clone()));
        }
        return Some(actions);
    }
    if instance.segments > 0 {
        return Some(vec![Action::Wait(format!(
            "scaling in {}: draining {} (segments left: {})",
            pool.name, leaving.name, instance.segments
        ))]);
    }
    Some(vec![Action::SetReplicas(SetReplicas { pool: pool.name.clone(), replicas: pool.current_replicas - 1 })])
}

impl Guest for DefaultScaling {
    fn info() -> Info {
        Info {
            name: "scaling-default".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: pinot_policy_sdk::API_VERSION.into(),
        }
    }

    fn plan_scaling(state: ClusterState) -> Result<Vec<Action>, String> {
        Ok(state.pools.iter().filter_map(|p| plan_pool(&state, p)).flatten().collect())
    }
}

scaling::export!(DefaultScaling with_types_in pinot_policy_sdk::scaling);
