//! The managed ZooKeeper ensemble. First, without an apiserver: the simulated members answer
//! the operator's own client (four-letter words, the chroot session) as ZooKeeper does, with a
//! leader elected among the live members. Then end to end on the local control plane
//! (`make kube-up`).

use std::{sync::Arc, time::Duration};

use pinot_operator::cluster::ensemble::{self, MemberMode, zk};
use pinot_testbed::pinot_sim::zookeeper::{MemberSpec, ZookeeperSim};

const SERVERS: &str = "server.1=z-zookeeper-0.h.ns.svc:2888:3888;2181 server.2=z-zookeeper-1.h.ns.svc:2888:3888;2181 server.3=z-zookeeper-2.h.ns.svc:2888:3888;2181";

fn member(ordinal: u32, servers: &str) -> MemberSpec {
    MemberSpec {
        pod: format!("z-zookeeper-{ordinal}"),
        uid: format!("uid-{ordinal}-{}", servers.len()),
        ordinal,
        servers: servers.into(),
        whitelist: "srvr,mntr,ruok".into(),
        zone: None,
        image: "zookeeper:3.9.3".into(),
    }
}

async fn mode(addr: &str) -> MemberMode {
    match zk::four_letter_word(addr, "srvr", Duration::from_secs(2)).await {
        Ok(answer) => ensemble::parse_srvr(&answer),
        Err(_) => MemberMode::Unreachable,
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(900)).await;
}

#[tokio::test]
async fn simulated_members_elect_a_leader_and_answer_the_operators_client_as_zookeeper_does() {
    let sim = Arc::new(ZookeeperSim::default());
    let _ticking = sim.ticking();
    let key = ("ns".to_string(), "z-zookeeper".to_string());
    let ip = |i: u32| format!("127.78.0.{}", i + 2);
    let addr = |i: u32| format!("{}:2181", ip(i));

    // One member of three: no quorum. ruok still says imok (a liveness check only).
    sim.start_member(key.clone(), &ip(0), member(0, SERVERS)).await;
    settle().await;
    assert_eq!(mode(&addr(0)).await, MemberMode::NotServing);
    assert_eq!(zk::four_letter_word(&addr(0), "ruok", Duration::from_secs(2)).await.unwrap(), "imok");
    assert!(zk::exists(&addr(0), "/pinot", Duration::from_secs(2)).await.is_err(), "no session without a quorum");

    // Two of three: the highest id leads, the other follows once synced.
    sim.start_member(key.clone(), &ip(1), member(1, SERVERS)).await;
    settle().await;
    assert_eq!(mode(&addr(1)).await, MemberMode::Leader);
    assert_eq!(mode(&addr(0)).await, MemberMode::Follower);
    sim.start_member(key.clone(), &ip(2), member(2, SERVERS)).await;
    settle().await;
    assert_eq!(mode(&addr(2)).await, MemberMode::Follower, "a member that joins later follows the leader there is");
    let mntr = zk::four_letter_word(&addr(1), "mntr", Duration::from_secs(2)).await.unwrap();
    let leader = ensemble::member_facts("Mode: leader\n", Some(&mntr));
    assert!(leader.synced, "{mntr}");
    assert_eq!((leader.quorum_size, leader.synced_followers), (Some(3), Some(2)), "{mntr}");

    // The chroot, through the operator's session client.
    assert!(!zk::exists(&addr(0), "/pinot", Duration::from_secs(2)).await.unwrap());
    assert!(zk::create(&addr(2), "/pinot", Duration::from_secs(2)).await.unwrap(), "created");
    assert!(!zk::create(&addr(0), "/pinot", Duration::from_secs(2)).await.unwrap(), "exists already");
    assert!(zk::exists(&addr(1), "/pinot", Duration::from_secs(2)).await.unwrap());
    assert!(zk::create(&addr(1), "/a/b", Duration::from_secs(2)).await.is_err(), "no parent");

    // A word outside the whitelist is refused as ZooKeeper refuses it.
    let conf = zk::four_letter_word(&addr(0), "conf", Duration::from_secs(2)).await.unwrap();
    assert_eq!(conf, "conf is not executed because it is not in the whitelist.\n");

    // The leader stops: an election among the two left, the highest id wins.
    sim.stop_member(&key, &member(1, SERVERS).uid);
    assert_eq!(mode(&addr(2)).await, MemberMode::NotServing, "every member stops serving while electing");
    settle().await;
    assert_eq!(mode(&addr(2)).await, MemberMode::Leader);
    assert_eq!(mode(&addr(0)).await, MemberMode::Follower);
    // Back, it follows: no second election.
    sim.start_member(key.clone(), &ip(1), member(1, SERVERS)).await;
    settle().await;
    assert_eq!(mode(&addr(1)).await, MemberMode::Follower);
    let report = sim.report(&key);
    assert_eq!(report.leader.as_deref(), Some("z-zookeeper-2"));
    assert_eq!(report.elections, 2);
    let stop = report.events.iter().find(|e| e.event == "stopped").unwrap();
    assert_eq!((stop.mode.as_str(), stop.others_down.len()), ("leader", 0));

    // Two members down of three: no quorum left.
    sim.stop_member(&key, &member(0, SERVERS).uid);
    sim.stop_member(&key, &member(1, SERVERS).uid);
    settle().await;
    assert_eq!(mode(&addr(2)).await, MemberMode::NotServing);
    let last = sim.report(&key).events.last().cloned().unwrap();
    assert_eq!(last.others_down, vec!["z-zookeeper-0".to_string()], "the second member stopped with one down already");
}

#[tokio::test]
async fn a_member_added_with_a_larger_configuration_joins_as_a_non_voting_follower() {
    let sim = Arc::new(ZookeeperSim::default());
    let _ticking = sim.ticking();
    let key = ("ns".to_string(), "z-zookeeper".to_string());
    let ip = |i: u32| format!("127.78.1.{}", i + 2);
    for i in 0..3 {
        sim.start_member(key.clone(), &ip(i), member(i, SERVERS)).await;
    }
    settle().await;
    let four = format!("{SERVERS} server.4=z-zookeeper-3.h.ns.svc:2888:3888;2181");
    sim.start_member(key.clone(), &ip(3), member(3, &four)).await;
    settle().await;
    let new = format!("{}:2181", ip(3));
    assert_eq!(mode(&new).await, MemberMode::Follower);
    let leader = sim.report(&key).leader.unwrap();
    let leader_ip = ip(leader.rsplit_once('-').unwrap().1.parse().unwrap());
    let mntr = zk::four_letter_word(&format!("{leader_ip}:2181"), "mntr", Duration::from_secs(2)).await.unwrap();
    let facts = ensemble::member_facts("Mode: leader\n", Some(&mntr));
    assert_eq!(
        (facts.quorum_size, facts.synced_followers, facts.synced_non_voting_followers),
        (Some(3), Some(3), Some(1))
    );
}

// ---- End to end, on the local control plane ----

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{Api, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::{
    harness::{
        OperatorHandle, TestNamespace, condition, kubectl, repo_root, simulator_admin_url, test_client, wait_for,
    },
    pinot_sim::zookeeper::EnsembleReport,
};
use serde_json::{Value, json};

const CLUSTER: &str = "analytics";
const ROLLOUT: Duration = Duration::from_secs(240);

/// The managed-zookeeper example for the test's namespace, its pods quick to start.
fn example(ns: &str) -> Value {
    let path = repo_root().join("deploy/examples/production/managed-zookeeper.yaml");
    let mut cluster: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cluster["metadata"]["namespace"] = json!(ns);
    cluster["spec"]["podOverrides"]["annotations"]["sim.pinot.controlplane.dev/ready-after-ms"] = json!("300");
    cluster
}

async fn apply(ns: &str, doc: &Value) {
    let file = std::env::temp_dir().join(format!("{ns}-zookeeper.json"));
    std::fs::write(&file, doc.to_string()).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
}

/// The simulated ensemble of the cluster, as `/_sim/zookeeper` reports it.
async fn ensemble_report(ns: &str) -> EnsembleReport {
    let base = simulator_admin_url(ns, CLUSTER);
    let url = format!("{}/zookeeper/{ns}/{CLUSTER}-zookeeper", base.split("/clusters/").next().unwrap());
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

async fn wait_available(api: &Api<PinotCluster>) -> PinotCluster {
    wait_for("the cluster Available", ROLLOUT, || async {
        let c = api.get(CLUSTER).await.ok()?;
        let current = c.status.as_ref()?.observed_generation == c.metadata.generation;
        (current && condition(&c, "Available")?.0 == "True" && condition(&c, "Progressing")?.0 == "False").then_some(c)
    })
    .await
}

/// Installed from one PinotCluster: the ensemble first (three members, one per zone, a
/// leader, Pinot's chroot created), then Pinot, which connects to it through the client Service.
#[tokio::test]
async fn a_managed_ensemble_is_installed_before_pinot_and_pinot_connects_to_its_chroot() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-install").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let api = install(&client, &ns.name, |_| {}).await;
    let cluster = api.get(CLUSTER).await.unwrap();

    let zk = cluster.status.as_ref().unwrap().zookeeper.clone().expect("status.zookeeper");
    assert_eq!(zk.connect_string, "analytics-zookeeper:2181/pinot");
    assert_eq!((zk.replicas, zk.configured, zk.chroot_exists), (3, 3, Some(true)), "{zk:?}");
    assert!(zk.leader.is_some(), "{zk:?}");
    assert_eq!(zk.members.iter().filter(|m| m.synced).count(), 3, "{zk:?}");
    let report = ensemble_report(&ns.name).await;
    assert_eq!(report.znodes, vec!["/pinot".to_string()]);
    assert_eq!(report.members.len(), 3);

    // One member per zone.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let members = pods.list(&ListParams::default().labels("pinot.controlplane.dev/pool=zookeeper")).await.unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut zones = Vec::new();
    for p in &members.items {
        let node = nodes.get(p.spec.as_ref().unwrap().node_name.as_deref().unwrap()).await.unwrap();
        zones.push(node.labels()["topology.kubernetes.io/zone"].clone());
    }
    zones.sort();
    assert_eq!(zones, vec!["zone-a", "zone-b", "zone-c"]);

    // Pinot came after: its first StatefulSet was created once every member was ready.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let controller = sets.get("analytics-controller").await.unwrap();
    let member_ready = members
        .items
        .iter()
        .filter_map(|p| {
            let ready = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
            ready.last_transition_time.clone()
        })
        .map(|t| t.0)
        .max()
        .unwrap();
    assert!(
        controller.creation_timestamp().unwrap().0
            >= member_ready.round(k8s_openapi::jiff::Unit::Second).unwrap()
                - k8s_openapi::jiff::SignedDuration::from_secs(1),
        "the controller's StatefulSet was created after the ensemble was ready"
    );
    let args = pods.get("analytics-broker-0").await.unwrap().spec.unwrap().containers[0].args.clone().unwrap();
    assert!(args.windows(2).any(|w| w == ["-zkAddress", "analytics-zookeeper:2181/pinot"]), "{args:?}");

    operator.stop().await;
    ns.cleanup().await;
}

/// Installs the example (edited), once Available.
async fn install(client: &kube::Client, ns: &str, edit: impl FnOnce(&mut Value)) -> Api<PinotCluster> {
    let mut cluster = example(ns);
    edit(&mut cluster);
    apply(ns, &cluster).await;
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_available(&api).await;
    api
}

async fn set_zookeeper_image(ns: &str, image: &str) {
    let patch = json!({"spec": {"zookeeper": {"managed": {"image": image}}}}).to_string();
    kubectl(&["-n", ns, "patch", &format!("pinotcluster/{CLUSTER}"), "--type=merge", "-p", &patch]).await;
}

/// The members stopped since `from` (index into the events), in order, with the mode each had.
fn stops(report: &EnsembleReport, from: usize) -> Vec<(String, String, Vec<String>)> {
    report.events[from..]
        .iter()
        .filter(|e| e.event == "stopped")
        .map(|e| (e.pod.clone(), e.mode.clone(), e.others_down.clone()))
        .collect()
}

/// Waits until every member runs `image`, serving in sync, and the cluster is settled.
async fn wait_ensemble_on(client: &kube::Client, ns: &str, image: &str) -> EnsembleReport {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_available(&api).await;
    wait_for(&format!("every member on {image}"), ROLLOUT, || async {
        let report = ensemble_report(ns).await;
        let on_image = report.members.iter().all(|m| {
            report
                .events
                .iter()
                .rev()
                .find(|e| e.pod == m.pod && e.event == "started")
                .is_some_and(|e| e.image == image)
        });
        (report.members.len() == 3 && on_image && report.members.iter().all(|m| m.mode != "not serving"))
            .then_some(report)
    })
    .await
}

/// An upgrade of the three members: followers first, the leader last, each member once, never
/// a second member down while one is (every stop found the other two serving).
#[tokio::test]
async fn an_ensemble_upgrade_restarts_the_leader_last_and_never_two_members_at_once() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-upgrade").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&client, &ns.name, |_| {}).await;
    let before = ensemble_report(&ns.name).await;
    let leader = before.leader.clone().expect("a leader");
    let pinot_pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pinot_before: Vec<String> = pinot_pods
        .list(&ListParams::default().labels("pinot.controlplane.dev/role!=zookeeper,pinot.controlplane.dev/cluster"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.uid())
        .collect();

    set_zookeeper_image(&ns.name, "zookeeper:3.9.4").await;
    let after = wait_ensemble_on(&client, &ns.name, "zookeeper:3.9.4").await;
    let stops = stops(&after, before.events.len());
    eprintln!("stops: {stops:?}");
    assert_eq!(stops.len(), 3, "each member restarted once: {stops:?}");
    let mut stopped: Vec<&str> = stops.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(stopped.last().copied(), Some(leader.as_str()), "the leader last: {stops:?}");
    for (pod, mode, others_down) in &stops[..2] {
        assert_eq!(mode, "follower", "{pod} was a follower when it stopped: {stops:?}");
        assert!(others_down.is_empty(), "no other member down when {pod} stopped: {stops:?}");
    }
    assert!(stops[2].2.is_empty(), "the leader stopped with both followers in sync: {stops:?}");
    stopped.sort();
    stopped.dedup();
    assert_eq!(stopped.len(), 3);
    // Pinot restarted for nothing of it.
    let pinot_after: Vec<String> = pinot_pods
        .list(&ListParams::default().labels("pinot.controlplane.dev/role!=zookeeper,pinot.controlplane.dev/cluster"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    assert_eq!(pinot_before, pinot_after, "no Pinot pod restarted for a ZooKeeper upgrade");

    operator.stop().await;
    ns.cleanup().await;
}

/// The operator dies right after it restarted the first member; a new one goes on from what it
/// observes: every member restarted exactly once, the leader last.
#[tokio::test]
async fn an_operator_killed_mid_upgrade_resumes_without_restarting_a_member_twice() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-killed").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&client, &ns.name, |_| {}).await;
    let before = ensemble_report(&ns.name).await;
    let leader = before.leader.clone().expect("a leader");

    set_zookeeper_image(&ns.name, "zookeeper:3.9.4").await;
    wait_for("the first member restarted", Duration::from_secs(60), || async {
        let report = ensemble_report(&ns.name).await;
        (!stops(&report, before.events.len()).is_empty()).then_some(())
    })
    .await;
    drop(operator);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let operator = OperatorHandle::start(&client, &ns.name);

    let after = wait_ensemble_on(&client, &ns.name, "zookeeper:3.9.4").await;
    let stops = stops(&after, before.events.len());
    eprintln!("stops: {stops:?}");
    let mut pods: Vec<&str> = stops.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(pods.last().copied(), Some(leader.as_str()), "the leader last: {stops:?}");
    assert!(stops.iter().all(|(_, _, down)| down.is_empty()), "never two members down: {stops:?}");
    pods.sort();
    pods.dedup();
    assert_eq!((stops.len(), pods.len()), (3, 3), "each member restarted exactly once: {stops:?}");

    operator.stop().await;
    ns.cleanup().await;
}

/// A broken image: the first member restarted on it never rejoins; the upgrade halts naming it,
/// with no other member restarted, and the ensemble keeps its quorum of two.
#[tokio::test]
async fn a_broken_zookeeper_image_halts_after_one_member() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-broken").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let api = install(&client, &ns.name, |c| {
        c["spec"]["zookeeper"]["managed"]["podReadyTimeoutSeconds"] = json!(15);
    })
    .await;
    let before = ensemble_report(&ns.name).await;

    set_zookeeper_image(&ns.name, "zookeeper:3.9.4-broken").await;
    let message = wait_for("Degraded naming the member", ROLLOUT, || async {
        let c = api.get(CLUSTER).await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("ZooKeeper member")).then_some(message)
    })
    .await;
    eprintln!("{message}");
    let report = ensemble_report(&ns.name).await;
    let stops = stops(&report, before.events.len());
    assert_eq!(stops.len(), 1, "one member restarted, no other: {stops:?}");
    assert!(message.contains(&stops[0].0), "the halt names {}: {message}", stops[0].0);
    assert_ne!(Some(&stops[0].0), before.leader.as_ref(), "a follower went first");
    assert!(report.leader.is_some(), "the two others keep a quorum: {report:?}");
    // It stays so.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(super_stops(&ns.name, before.events.len()).await, 1);

    operator.stop().await;
    ns.cleanup().await;
}

async fn super_stops(ns: &str, from: usize) -> usize {
    stops(&ensemble_report(ns).await, from).len()
}

async fn set_members(ns: &str, replicas: i32) {
    let patch = json!({"spec": {"zookeeper": {"managed": {"replicas": replicas}}}}).to_string();
    kubectl(&["-n", ns, "patch", &format!("pinotcluster/{CLUSTER}"), "--type=merge", "-p", &patch]).await;
}

/// The ensemble of every member, settled: `members` members, each serving with a configuration
/// of `members`.
async fn wait_members(client: &kube::Client, ns: &str, members: usize) -> EnsembleReport {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("{members} members in one configuration"), Duration::from_secs(300), || async {
        let c = api.get(CLUSTER).await.ok()?;
        let zk = c.status.as_ref()?.zookeeper.clone()?;
        let report = ensemble_report(ns).await;
        let settled = report.members.len() == members
            && report.members.iter().all(|m| m.quorum_size as usize == members && m.mode != "not serving")
            && zk.configured as usize == members
            && condition(&c, "Progressing")?.0 == "False";
        settled.then_some(report)
    })
    .await
}

/// 3 → 5 → 3 members, one member at a time: never a configuration that a quorum of the old one
/// could not overlap (3 → 4 → 5), never fewer than a quorum serving, and the removed members'
/// pods gone.
#[tokio::test]
async fn the_ensemble_grows_and_shrinks_one_member_at_a_time_keeping_its_quorum() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-resize").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&client, &ns.name, |c| {
        // Members spread over the three zones: five fit (two zones get two).
        c["spec"]["zookeeper"]["managed"]["zones"] = json!(["zone-a", "zone-b", "zone-c"]);
    })
    .await;
    let before = ensemble_report(&ns.name).await;

    set_members(&ns.name, 5).await;
    let grown = wait_members(&client, &ns.name, 5).await;
    let events = &grown.events[before.events.len()..];
    // Member 4 started with a configuration of four, member 5 only after every member ran four.
    let started: Vec<&str> = events.iter().filter(|e| e.event == "started").map(|e| e.pod.as_str()).collect();
    let fourth = started.iter().position(|p| *p == "analytics-zookeeper-3").expect("member 4 started");
    let fifth = started.iter().position(|p| *p == "analytics-zookeeper-4").expect("member 5 started");
    assert!(fourth < fifth, "{started:?}");
    for e in events.iter().filter(|e| e.event == "stopped") {
        assert!(
            e.others_down.is_empty(),
            "a member stopped only with the others of its configuration serving: {events:?}"
        );
    }

    let mid = ensemble_report(&ns.name).await.events.len();
    set_members(&ns.name, 3).await;
    let shrunk = wait_members(&client, &ns.name, 3).await;
    let events = &shrunk.events[mid..];
    let gone: Vec<&str> = events
        .iter()
        .filter(|e| {
            e.event == "stopped" && ["analytics-zookeeper-3", "analytics-zookeeper-4"].contains(&e.pod.as_str())
        })
        .map(|e| e.pod.as_str())
        .collect();
    assert!(gone.contains(&"analytics-zookeeper-4") && gone.contains(&"analytics-zookeeper-3"), "{events:?}");
    for e in events.iter().filter(|e| e.event == "stopped") {
        assert!(e.others_down.is_empty(), "shrinking, a member stopped only with the others serving: {events:?}");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the removed members' pods gone", Duration::from_secs(60), || async {
        let left = pods.list(&ListParams::default().labels("pinot.controlplane.dev/pool=zookeeper")).await.ok()?;
        (left.items.len() == 3).then_some(())
    })
    .await;
    assert!(shrunk.leader.is_some());

    operator.stop().await;
    ns.cleanup().await;
}

/// 1 → 3 in one zone: a member added to a single member cannot join it (it needs a majority of
/// its configuration of two besides itself), so the first member is restarted onto the
/// configuration of two regardless (Pinot's writes stop meanwhile), then 2 → 3 as usual.
#[tokio::test]
async fn a_single_member_grows_to_three() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zk-one").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&client, &ns.name, |c| {
        c["spec"]["zookeeper"]["managed"]["replicas"] = json!(1);
        c["spec"]["zookeeper"]["managed"]["zones"] = json!(["zone-a"]);
    })
    .await;
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let zk = api.get(CLUSTER).await.unwrap().status.unwrap().zookeeper.unwrap();
    assert!(zk.message.as_deref().is_some_and(|m| m.contains("no fault tolerance")), "{zk:?}");
    set_members(&ns.name, 3).await;
    let grown = wait_members(&client, &ns.name, 3).await;
    assert!(grown.leader.is_some(), "{grown:?}");
    operator.stop().await;
    ns.cleanup().await;
}
