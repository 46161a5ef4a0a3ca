//! The default scaling policy. Scale out: raise replicas at once. Scale in of servers, one
//! pod at a time, highest ordinal first: untag the instance, rebalance the tables of its
//! tenant, wait until it holds no segment, then lower replicas; refuse when the servers left
//! could not hold a table's replication. Brokers and minions: untag, then lower replicas.

use pinot_policy_sdk::{
    Action, ClusterState, Info, InstanceTags, Pool, Role, SetReplicas, State,
    scaling::{self, Guest},
};

struct DefaultScaling;

fn set_replicas(pool: &Pool, replicas: u32) -> Vec<Action> {
    vec![Action::SetReplicas(SetReplicas { pool: pool.name().into(), replicas })]
}

fn plan_pool(state: &State, pool: Pool) -> Option<Vec<Action>> {
    let desired = pool.desired_replicas().clamp(pool.min_replicas(), pool.max_replicas());
    if pool.current_replicas() < desired {
        return Some(set_replicas(&pool, desired));
    }
    if pool.current_replicas() <= desired {
        return None;
    }
    let leaving = pool.pods().max_by_key(|p| p.ordinal())?;
    let Some(instance) = leaving.instance() else {
        return Some(set_replicas(&pool, pool.current_replicas() - 1));
    };
    if pool.role() == Role::Server {
        // Servers that keep a table's tag after this one leaves.
        for table in state.tables() {
            if !instance.has_tag(table.server_tag()) {
                continue;
            }
            let remaining =
                state.instances().filter(|(_, _, i)| i.id() != instance.id() && i.has_tag(table.server_tag())).count()
                    as u32;
            if remaining < table.replication() {
                return Some(vec![Action::Block(format!(
                    "scaling in {} would leave {remaining} servers for table {} with replication {}; add servers or lower the replication first",
                    pool.name(),
                    table.name(),
                    table.replication()
                ))]);
            }
        }
    }
    if instance.tags().len() > 0 {
        let mut actions = vec![Action::UpdateTags(InstanceTags { instance: instance.id().into(), tags: vec![] })];
        for table in state.tables().filter(|t| instance.has_tag(t.server_tag())) {
            actions.push(Action::RebalanceTable(table.name().into()));
        }
        return Some(actions);
    }
    if instance.segments() > 0 {
        return Some(vec![Action::Wait(format!(
            "scaling in {}: draining {} (segments left: {})",
            pool.name(),
            leaving.name(),
            instance.segments()
        ))]);
    }
    Some(set_replicas(&pool, pool.current_replicas() - 1))
}

impl Guest for DefaultScaling {
    fn info() -> Info {
        pinot_policy_sdk::info("scaling-default", env!("CARGO_PKG_VERSION"))
    }

    fn plan_scaling(state: ClusterState) -> Result<Vec<Action>, String> {
        let state = State::new(&state);
        Ok(state.pools().filter_map(|p| plan_pool(&state, p)).flatten().collect())
    }
}

scaling::export!(DefaultScaling with_types_in pinot_policy_sdk::scaling);
