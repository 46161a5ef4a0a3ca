//! The managed ZooKeeper ensemble's size in a pass: one member at a time towards the spec,
//! each step rolled out before the next (see `sizing`).

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::{
    children::pod_ordinal,
    cluster::{
        ensemble::{EnsembleObservation, EnsembleShape, servers_of, statefulset_servers},
        observe::ObservedCluster,
        validate::{ValidEnsemble, zookeeper::ENSEMBLE_POOL},
    },
};

/// Where the ensemble's size is in this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizing {
    pub shape: EnsembleShape,
    /// Why the size the spec asks for is not reached in this pass (a resize under way, or held).
    pub progress: Option<String>,
    /// A member that is leaving: it runs the old configuration and is not restarted; its pod
    /// goes when the others run without it.
    pub leaving: Option<String>,
    /// The leader's pod, restarted (on the revision it runs) before it is the member to leave:
    /// members restarted without it in their configuration could not follow it (fast leader
    /// election takes no vote from a server outside the configuration), so the leadership moves
    /// to a member that stays first.
    pub move_leader: Option<String>,
}

/// The ensemble's size for this pass: what exists stays until every member runs the
/// StatefulSet's revision and the quorum is whole, then one step towards the spec:
/// - grow k → k+1: a member k+1 is added with a configuration of k+1 (it joins the leader as a
///   non-voting follower), then the upgrade policy restarts the others onto it;
/// - shrink k → k-1: the leadership is moved off the highest member first, the others are
///   restarted onto a configuration without it (it keeps running the old one until then), then
///   it is removed (its PersistentVolumeClaim stays, as a StatefulSet leaves it).
///
/// Ways back: a StatefulSet scaled below its configuration by hand is scaled back; a grow whose
/// new member never joined, asked back before any other member moved onto it, returns to the
/// old size at once; a leaving member that leads again (an election during the shrink) is
/// removed at once, so that the members that stay elect among themselves.
///
/// A first install starts the whole ensemble at once: empty members have nothing to lose.
pub fn sizing(ensemble: &ValidEnsemble, observed: &ObservedCluster, members: &EnsembleObservation) -> Sizing {
    let target = ensemble.replicas;
    let pods: &[Pod] = observed.pods.get(ENSEMBLE_POOL).map(Vec::as_slice).unwrap_or_default();
    let Some(sts) = observed.statefulsets.get(ENSEMBLE_POOL) else {
        // Pods without a StatefulSet (deleted by hand, or by an earlier pass): the same size
        // again, so that no member restarts into another configuration.
        let highest = pods.iter().map(|p| pod_ordinal(p) + 1).max().unwrap_or(0);
        if highest > 0 {
            let servers = pods.iter().filter_map(|p| servers_of(&p.metadata)).max().unwrap_or(highest);
            let shape = EnsembleShape { replicas: highest, servers };
            return Sizing {
                shape,
                progress: Some("the ensemble's StatefulSet is created again".into()),
                leaving: None,
                move_leader: None,
            };
        }
        let shape = EnsembleShape { replicas: target, servers: target };
        return Sizing { shape, progress: None, leaving: None, move_leader: None };
    };
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let servers = statefulset_servers(sts).unwrap_or(replicas);
    let current = EnsembleShape { replicas, servers };
    let leaving = (servers < replicas).then(|| format!("{}-{}", sts.name_any(), replicas - 1));
    if replicas == target && servers == target {
        return Sizing { shape: current, progress: None, leaving: None, move_leader: None };
    }
    // Scaled below its configuration by someone else: every member of it is wanted back.
    if replicas < servers {
        return Sizing {
            shape: EnsembleShape { replicas: servers, servers },
            progress: Some(format!(
                "the ensemble's StatefulSet was scaled to {replicas}, below the {servers} members of its configuration: scaled back"
            )),
            leaving: None,
            move_leader: None,
        };
    }
    let top = format!("{}-{}", sts.name_any(), replicas - 1);
    // A leaving member that leads (an election while the others moved): removed now, the others
    // elect among themselves (those already restarted ignore it).
    if servers < replicas && members.leader() == Some(top.as_str()) {
        return Sizing {
            shape: EnsembleShape { replicas: servers, servers },
            progress: Some(format!(
                "ZooKeeper {replicas} → {target} members: {top} leads while it leaves; removed now"
            )),
            leaving: None,
            move_leader: None,
        };
    }
    // Settled: the StatefulSet has seen its spec, every member that stays runs its revision
    // and the quorum of the current configuration is whole.
    let status = sts.status.as_ref();
    let observed_spec = status.and_then(|s| s.observed_generation) == sts.metadata.generation;
    let update_revision = status.and_then(|s| s.update_revision.as_deref());
    let staying: Vec<&Pod> = pods.iter().filter(|p| pod_ordinal(p) < servers).collect();
    let on_revision = staying.len() as i32 == servers.min(replicas)
        && staying.iter().all(|p| {
            p.metadata.deletion_timestamp.is_none()
                && update_revision.is_some()
                && p.labels().get("controller-revision-hash").map(String::as_str) == update_revision
        });
    let voters: Vec<String> = staying.iter().map(|p| p.name_any()).collect();
    let healthy = members.whole(&voters, servers as u32);
    // A grow called off while its new member never joined and no other member moved onto its
    // configuration: back to the old size at once (the others' template is the old one again).
    let top_synced = members.members.get(&top).is_some_and(|m| m.mode.serving() && m.synced);
    let others_moved = pods.iter().any(|p| {
        pod_ordinal(p) < replicas - 1
            && update_revision.is_some()
            && p.labels().get("controller-revision-hash").map(String::as_str) == update_revision
    });
    if target < replicas && servers == replicas && !top_synced && !others_moved && replicas > 1 {
        return Sizing {
            shape: EnsembleShape { replicas: replicas - 1, servers: replicas - 1 },
            progress: Some(format!(
                "ZooKeeper member {top} never joined; the ensemble goes back to {} members",
                replicas - 1
            )),
            leaving: None,
            move_leader: None,
        };
    }
    let step =
        |why: String| Sizing { shape: current, progress: Some(why), leaving: leaving.clone(), move_leader: None };
    if !observed_spec || !on_revision {
        return step(format!(
            "ZooKeeper {replicas} → {target} members: waiting for every member to run the configuration of {servers}"
        ));
    }
    if !healthy {
        return step(format!(
            "ZooKeeper {replicas} → {target} members: waiting for the quorum of {servers} to be whole and in sync before the next member"
        ));
    }
    if target < replicas && servers == replicas && members.leader() == Some(top.as_str()) {
        return Sizing {
            shape: current,
            progress: Some(format!(
                "ZooKeeper {replicas} → {target} members: moving the leadership off {top}, which leaves next"
            )),
            leaving: None,
            move_leader: Some(top),
        };
    }
    let next = if servers < replicas {
        // The others run without the leaving member: it goes.
        EnsembleShape { replicas: servers, servers }
    } else if target > replicas {
        EnsembleShape { replicas: replicas + 1, servers: replicas + 1 }
    } else {
        EnsembleShape { replicas, servers: replicas - 1 }
    };
    let leaving = (next.servers < next.replicas).then(|| format!("{}-{}", sts.name_any(), next.replicas - 1));
    let progress = (next.replicas != target || next.servers != target).then(|| {
        format!("ZooKeeper {replicas} → {target} members, one at a time: now {} of {}", next.servers, next.replicas)
    });
    Sizing { shape: next, progress, leaving, move_leader: None }
}
