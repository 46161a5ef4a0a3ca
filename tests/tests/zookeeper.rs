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
