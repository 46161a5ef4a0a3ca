//! The managed ZooKeeper ensemble as the operator sees it: each member's mode and sync state
//! from its four-letter words, whether Pinot's chroot exists, the size of its configuration
//! (annotations the caches keep), and which changes of a running ensemble are refused. Its size
//! in a pass is decided in `plan/ensemble.rs`. Facts behind it: `pinot-facts/zookeeper.md`.

pub mod zk;

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::ResourceExt;

use super::validate::{ValidEnsemble, zookeeper::CLIENT_PORT};

/// How long one four-letter word or one session may take.
const ZK_TIMEOUT: Duration = Duration::from_secs(2);
/// What `srvr` and `mntr` answer without a quorum (`AbstractFourLetterCommand.ZK_NOT_SERVING`).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

pub use crate::policy::model::MemberMode;

/// A mode as status shows it.
pub fn mode_name(mode: MemberMode) -> &'static str {
    match mode {
        MemberMode::Leader => "leader",
        MemberMode::Follower => "follower",
        MemberMode::Observer => "observer",
        MemberMode::Standalone => "standalone",
        MemberMode::NotServing => "not serving",
        MemberMode::Unreachable => "unreachable",
    }
}

/// One member as observed in this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberFacts {
    pub mode: MemberMode,
    /// In sync: `zk_peer_state` ends in `broadcast` (a follower that finished syncing, or the
    /// leader), or a standalone server.
    pub synced: bool,
    /// `zk_peer_state` as reported, e.g. `following - broadcast`.
    pub peer_state: Option<String>,
    /// Voting members in its configuration (`zk_quorum_size`).
    pub quorum_size: Option<u32>,
    /// Leader only: followers in sync with it (`zk_synced_followers`), voting or not.
    pub synced_followers: Option<u32>,
    /// Leader only: non-voting followers in sync (`zk_synced_non_voting_followers`).
    pub synced_non_voting_followers: Option<u32>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

impl MemberFacts {
    fn unreachable(error: String) -> Self {
        MemberFacts {
            mode: MemberMode::Unreachable,
            synced: false,
            peer_state: None,
            quorum_size: None,
            synced_followers: None,
            synced_non_voting_followers: None,
            error: Some(error),
        }
    }
}

/// The ensemble as observed in this pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnsembleObservation {
    /// Each member pod that runs, by pod name.
    pub members: BTreeMap<String, MemberFacts>,
    /// Whether the chroot exists, when it was asked (a serving member answered).
    pub chroot_exists: Option<bool>,
}

impl EnsembleObservation {
    /// The pod of the member that leads.
    pub fn leader(&self) -> Option<&str> {
        self.members.iter().find(|(_, m)| m.mode == MemberMode::Leader).map(|(p, _)| p.as_str())
    }

    /// The quorum is whole: a member leads, and every one of `voters` (pod names) serves, has
    /// finished syncing and runs a configuration of `size` voting members.
    pub fn whole(&self, voters: &[String], size: u32) -> bool {
        self.leader().is_some()
            && voters.iter().all(|v| {
                self.members.get(v).is_some_and(|m| {
                    m.mode.serving() && m.synced && (m.quorum_size == Some(size) || m.mode == MemberMode::Standalone)
                })
            })
    }
}

/// Parses a `srvr` answer into a mode.
pub fn parse_srvr(answer: &str) -> MemberMode {
    if answer.contains(NOT_SERVING) {
        return MemberMode::NotServing;
    }
    match answer.lines().find_map(|l| l.strip_prefix("Mode:")).map(str::trim) {
        Some("leader") => MemberMode::Leader,
        Some("follower") => MemberMode::Follower,
        Some("observer") => MemberMode::Observer,
        Some("standalone") => MemberMode::Standalone,
        // `read-only`, or an answer without a mode: serving nobody that writes.
        _ => MemberMode::NotServing,
    }
}

/// Parses a `mntr` answer: one `zk_<key>\t<value>` line per key.
pub fn parse_mntr(answer: &str) -> BTreeMap<String, String> {
    answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A member's facts from its `srvr` and `mntr` answers.
pub fn member_facts(srvr: &str, mntr: Option<&str>) -> MemberFacts {
    let mode = parse_srvr(srvr);
    let values = mntr.map(parse_mntr).unwrap_or_default();
    let number = |key: &str| values.get(key).and_then(|v| v.parse::<u32>().ok());
    let peer_state = values.get("zk_peer_state").cloned();
    let synced = match mode {
        MemberMode::Standalone => true,
        m if m.serving() => peer_state.as_deref().is_some_and(|s| s.ends_with("broadcast")),
        _ => false,
    };
    MemberFacts {
        mode,
        synced,
        peer_state,
        quorum_size: number("zk_quorum_size"),
        synced_followers: number("zk_synced_followers"),
        synced_non_voting_followers: number("zk_synced_non_voting_followers"),
        error: None,
    }
}

/// The address of a member's client port: its pod's IP (the operator runs in the cluster; the
/// pod's DNS name would need the cluster's resolver).
fn member_addr(pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.clone()?;
    Some(match ip.contains(':') {
        true => format!("[{ip}]:{CLIENT_PORT}"),
        false => format!("{ip}:{CLIENT_PORT}"),
    })
}

/// Asks every running member of the ensemble for its mode and sync state, and a serving member
/// whether `chroot` exists.
pub async fn observe(pods: &[Pod], chroot: &str) -> EnsembleObservation {
    let asks = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(|pod| {
        let addr = member_addr(pod)?;
        Some(async move {
            let facts = match zk::four_letter_word(&addr, "srvr", ZK_TIMEOUT).await {
                Err(e) => MemberFacts::unreachable(e.to_string()),
                Ok(srvr) => {
                    let mntr = match parse_srvr(&srvr).serving() {
                        true => zk::four_letter_word(&addr, "mntr", ZK_TIMEOUT).await.ok(),
                        false => None,
                    };
                    member_facts(&srvr, mntr.as_deref())
                }
            };
            (pod.name_any(), addr, facts)
        })
    });
    let answers: Vec<(String, String, MemberFacts)> = futures::future::join_all(asks).await;
    let serving = answers.iter().find(|(_, _, f)| f.mode.serving()).map(|(_, addr, _)| addr.clone());
    let chroot_exists = match serving {
        Some(addr) => zk::exists(&addr, chroot, ZK_TIMEOUT).await.ok(),
        None => None,
    };
    EnsembleObservation { members: answers.into_iter().map(|(p, _, f)| (p, f)).collect(), chroot_exists }
}

/// Creates the chroot (and its parents) through a serving member; `Ok(true)` when it was
/// created now.
pub async fn create_chroot(pods: &[Pod], observed: &EnsembleObservation, chroot: &str) -> Result<bool, zk::ZkError> {
    let serving = pods
        .iter()
        .filter(|p| observed.members.get(&p.name_any()).is_some_and(|m| m.mode.serving()))
        .find_map(member_addr);
    let Some(addr) = serving else {
        return Err(zk::ZkError::Protocol { addr: "ensemble".into(), message: "no member serves".into() });
    };
    let mut created = false;
    for (i, _) in chroot.match_indices('/').skip(1).chain(std::iter::once((chroot.len(), ""))) {
        created = zk::create(&addr, &chroot[..i], ZK_TIMEOUT).await?;
    }
    Ok(created)
}

/// The size of the managed ensemble's StatefulSet and of the server list its members start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnsembleShape {
    pub replicas: i32,
    pub servers: i32,
}

/// Annotation on the ensemble's StatefulSet and its pod template: the members its
/// configuration (`ZOO_SERVERS`) lists. Metadata, which the operator's caches keep (they drop
/// pod templates and pod specs).
pub const ANNOTATION_SERVERS: &str = "pinot.controlplane.dev/zookeeper-servers";

/// The members the configuration of a StatefulSet or a pod lists, from its annotation.
pub fn servers_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i32> {
    meta.annotations.as_ref()?.get(ANNOTATION_SERVERS)?.parse().ok()
}

/// The members the observed StatefulSet's configuration lists.
pub fn statefulset_servers(sts: &StatefulSet) -> Option<i32> {
    servers_of(&sts.metadata)
}

/// Annotation on the StatefulSets of Pinot's pools of a cluster with a managed ensemble: the
/// chroot their state is under. A pool's StatefulSet without it was created on the ensemble
/// of `connectString`.
pub const ANNOTATION_PINOT_CHROOT: &str = "pinot.controlplane.dev/zookeeper-chroot";

/// A spec that would point running Pinot pools at another ZooKeeper tree: `managed` added to a
/// cluster that runs on `connectString`'s ensemble, or its chroot changed. Pinot would start on
/// an empty tree (no tables, schemas or segment assignments), so the cluster is held.
pub fn switched_away(
    ensemble: &ValidEnsemble,
    pool_statefulsets: &[&StatefulSet],
) -> Option<super::validate::FieldError> {
    for sts in pool_statefulsets {
        match sts.annotations().get(ANNOTATION_PINOT_CHROOT) {
            None => {
                return Some(super::validate::FieldError {
                    field: "spec.zookeeper.managed".into(),
                    message: format!(
                        "is set on a cluster whose Pinot runs on the ensemble of spec.zookeeper.connectString (StatefulSet {}): a new ensemble would start Pinot on an empty tree, without its tables, schemas and segment assignments; keep connectString (copying ZooKeeper's data into a managed ensemble is not done by the operator)",
                        sts.name_any()
                    ),
                });
            }
            Some(chroot) if *chroot != ensemble.chroot => {
                return Some(super::validate::FieldError {
                    field: "spec.zookeeper.managed.chroot".into(),
                    message: format!(
                        "is {:?} but Pinot's state is under {chroot:?} (StatefulSet {}): Pinot would start on an empty tree; set it back to {chroot:?}",
                        ensemble.chroot,
                        sts.name_any()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    None
}

/// Annotation on the ensemble's StatefulSet: the zones its members are spread over.
pub const ANNOTATION_ZONES: &str = "pinot.controlplane.dev/zookeeper-zones";

/// A change of the managed ensemble that Kubernetes cannot make, or that would strand a member
/// away from its data: its volume (a StatefulSet's claim templates are immutable) or, with
/// volumes, its zones (a member's volume stays in the zone it was created in, and a member
/// restarted where its volume cannot follow never rejoins). The ensemble is then left as it runs.
pub fn refused_change(ensemble: &ValidEnsemble, sts: &StatefulSet) -> Option<super::validate::FieldError> {
    let field = |f: &str, message: String| {
        Some(super::validate::FieldError { field: format!("spec.zookeeper.managed.{f}"), message })
    };
    let claim =
        sts.spec.as_ref()?.volume_claim_templates.as_ref().and_then(|c| c.iter().find(|c| c.name_any() == "data"));
    let size =
        claim.and_then(|c| c.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")).map(|q| q.0.clone());
    let class = claim.and_then(|c| c.spec.as_ref()?.storage_class_name.clone());
    match (&ensemble.storage, &size) {
        (Some(_), None) | (None, Some(_)) => {
            return field(
                "storage",
                "switches the members between a volume and an emptyDir, which a running StatefulSet cannot change: the members keep what they run; to move, create a new cluster and copy the data".into(),
            );
        }
        (Some(s), Some(current))
            if s.size != *current
                && super::volumes::quantity_bytes(&s.size) != super::volumes::quantity_bytes(current) =>
        {
            return field(
                "storage.size",
                format!(
                    "is {} but the members' volumes were created with {current}; a member's volume is not resized by the operator: set it back to {current}",
                    s.size
                ),
            );
        }
        (Some(s), Some(_)) if s.storage_class_name.is_some() && s.storage_class_name != class => {
            return field(
                "storage.storageClassName",
                format!(
                    "the members' volumes were created with class {}; a volume's class cannot change: set it back",
                    class.as_deref().unwrap_or("(default)")
                ),
            );
        }
        _ => {}
    }
    let zones = match &ensemble.placement {
        super::validate::Placement::Zones(z) => z.join(","),
        super::validate::Placement::Anywhere => String::new(),
    };
    // Zones may be added (members stay where their volumes are); one that members may be in
    // may not go, and neither may "anywhere" become a list.
    let current = sts.annotations().get(ANNOTATION_ZONES).cloned().unwrap_or_default();
    let now: std::collections::BTreeSet<&str> = zones.split(',').filter(|z| !z.is_empty()).collect();
    let before: std::collections::BTreeSet<&str> = current.split(',').filter(|z| !z.is_empty()).collect();
    let narrowed = !now.is_empty() && (before.is_empty() || !before.is_subset(&now));
    if ensemble.storage.is_some() && narrowed {
        let said = if before.is_empty() { "any zone".to_string() } else { current.replace(',', ", ") };
        return field(
            "zones",
            format!(
                "the members were created in {said}, and each member's volume stays in its zone: a member restarted where its volume cannot follow would never rejoin; keep every zone of the members (zones may be added)"
            ),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER_SRVR: &str = "Zookeeper version: 3.9.3-c26634f34490bb0ea7a09cc51e05ede3b4e320ee, built on 2024-10-17 23:21 UTC\nLatency min/avg/max: 0/0.0/0\nReceived: 5\nSent: 4\nConnections: 1\nOutstanding: 0\nZxid: 0x100000002\nMode: leader\nNode count: 6\nProposal sizes last/min/max: 48/48/48\n";

    fn example(edit: impl FnOnce(&mut serde_json::Value)) -> super::super::validate::ValidCluster {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples/production/managed-zookeeper.yaml");
        let mut value: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        value["metadata"]["namespace"] = "analytics".into();
        edit(&mut value);
        super::super::validate::validate(&serde_json::from_value(value).unwrap()).unwrap()
    }

    /// What Kubernetes cannot change of a running ensemble, or what would strand a member away
    /// from its volume, is refused naming the field; a size written another way is no change.
    #[test]
    fn a_running_ensembles_volume_and_zones_stay_and_the_field_is_named() {
        let running = example(|_| {});
        let ctx = super::super::build::BuildContext {
            owner: Default::default(),
            pdb_version: crate::children::PdbVersion::V1,
            replicas: Default::default(),
            ensemble: None,
            restarts: Default::default(),
        };
        let sts = super::super::build::ensemble_statefulset(&running, 3, 3, &ctx);
        let refused = |edit: fn(&mut serde_json::Value)| {
            refused_change(example(edit).ensemble.as_ref().unwrap(), &sts).map(|e| e.field)
        };
        assert_eq!(refused(|_| {}), None);
        assert_eq!(refused(|c| c["spec"]["zookeeper"]["managed"]["storage"]["size"] = "8192Mi".into()), None);
        assert_eq!(refused(|c| c["spec"]["zookeeper"]["managed"]["replicas"] = 5.into()), None);
        assert_eq!(
            refused(|c| c["spec"]["zookeeper"]["managed"]["storage"]["size"] = "16Gi".into()).as_deref(),
            Some("spec.zookeeper.managed.storage.size")
        );
        assert_eq!(
            refused(|c| c["spec"]["zookeeper"]["managed"]["zones"] = serde_json::json!(["zone-a", "zone-b", "zone-d"]))
                .as_deref(),
            Some("spec.zookeeper.managed.zones")
        );
        // Reordered or widened: no member is stranded.
        let reordered = |c: &mut serde_json::Value| {
            c["spec"]["zookeeper"]["managed"]["zones"] = serde_json::json!(["zone-c", "zone-b", "zone-a"])
        };
        assert_eq!(refused(reordered), None);
        let widened = |c: &mut serde_json::Value| {
            c["spec"]["zookeeper"]["managed"]["zones"] = serde_json::json!(["zone-a", "zone-b", "zone-c", "zone-d"])
        };
        assert_eq!(refused(widened), None);
        assert_eq!(
            refused(|c| c["spec"]["zookeeper"]["managed"]["storage"] = serde_json::json!({"ephemeral": true}))
                .as_deref(),
            Some("spec.zookeeper.managed.storage")
        );
    }

    /// Pinot's pools remember the chroot they run on: a spec that would move them to an empty
    /// tree (managed added to a cluster on connectString, another chroot) is named.
    #[test]
    fn pinot_is_never_pointed_at_another_tree() {
        let managed = example(|_| {});
        let ctx = super::super::build::BuildContext {
            owner: Default::default(),
            pdb_version: crate::children::PdbVersion::V1,
            replicas: Default::default(),
            ensemble: None,
            restarts: Default::default(),
        };
        let pool = |cluster: &super::super::validate::ValidCluster| {
            super::super::build::build_pool_statefulset(cluster, cluster.pool("server").unwrap(), "digest", &ctx)
        };
        let ensemble = managed.ensemble.as_ref().unwrap();
        assert_eq!(switched_away(ensemble, &[&pool(&managed)]), None);
        let mut on_connect_string = managed.clone();
        on_connect_string.ensemble = None;
        let refused = switched_away(ensemble, &[&pool(&on_connect_string)]).unwrap();
        assert_eq!(refused.field, "spec.zookeeper.managed");
        let moved = example(|c| c["spec"]["zookeeper"]["managed"]["chroot"] = "/pinot/other".into());
        let refused = switched_away(moved.ensemble.as_ref().unwrap(), &[&pool(&managed)]).unwrap();
        assert_eq!(refused.field, "spec.zookeeper.managed.chroot");
        assert!(refused.message.contains("\"/pinot\""), "{}", refused.message);
    }

    #[test]
    fn srvr_gives_the_mode_and_no_quorum_is_not_serving() {
        assert_eq!(parse_srvr(LEADER_SRVR), MemberMode::Leader);
        assert_eq!(parse_srvr(&LEADER_SRVR.replace("leader", "follower")), MemberMode::Follower);
        assert_eq!(parse_srvr(&format!("{NOT_SERVING}\n")), MemberMode::NotServing);
    }

    #[test]
    fn a_follower_is_in_sync_only_in_broadcast() {
        let srvr = LEADER_SRVR.replace("leader", "follower");
        let syncing = member_facts(
            &srvr,
            Some("zk_version\t3.9.3\nzk_peer_state\tfollowing - synchronization - snap\nzk_quorum_size\t3\n"),
        );
        assert!(!syncing.synced);
        let synced = member_facts(&srvr, Some("zk_peer_state\tfollowing - broadcast\nzk_quorum_size\t3\n"));
        assert!(synced.synced);
        assert_eq!(synced.quorum_size, Some(3));
    }

    #[test]
    fn a_whole_quorum_has_a_leader_with_every_follower_synced() {
        let leader = member_facts(
            LEADER_SRVR,
            Some("zk_peer_state\tleading - broadcast\nzk_quorum_size\t3\nzk_synced_followers\t2\n"),
        );
        assert_eq!(leader.synced_followers, Some(2));
        let follower = member_facts(
            &LEADER_SRVR.replace("leader", "follower"),
            Some("zk_peer_state\tfollowing - broadcast\nzk_quorum_size\t3\n"),
        );
        let mut observation = EnsembleObservation::default();
        observation.members.insert("p-zookeeper-0".into(), follower.clone());
        observation.members.insert("p-zookeeper-1".into(), leader.clone());
        observation.members.insert("p-zookeeper-2".into(), follower);
        let voters: Vec<String> = (0..3).map(|i| format!("p-zookeeper-{i}")).collect();
        assert!(observation.whole(&voters, 3));
        assert_eq!(observation.leader(), Some("p-zookeeper-1"));
        assert!(!observation.whole(&voters, 5), "a configuration of another size");
        observation.members.insert("p-zookeeper-2".into(), MemberFacts::unreachable("refused".into()));
        assert!(!observation.whole(&voters, 3));
    }
}
