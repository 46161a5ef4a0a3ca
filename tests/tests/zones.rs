//! End to end, on the local control plane (`make kube-up`): multi-AZ that survives losing a
//! zone. Servers in three zones become three Pinot pools, the tables get one replica group per
//! zone, and the two drills of the zone-outage scenario (`pinot_testbed::drill`) hold:
//! - losing zone-b: every segment keeps its replicas in the other zones, the operator moves
//!   nothing, restarts nothing and rewrites no instance while the zone is out, the cluster says
//!   it is Degraded by zone-b, and it recovers on its own when the zone returns, with no
//!   segment moved;
//! - an upgrade started while zone-a is out waits, saying why, and finishes once it returns.

use std::time::Duration;

use pinot_testbed::{
    drill::{self, CLUSTER},
    harness::{OperatorHandle, TestNamespace, condition, kubectl, test_client, wait_for},
};

#[tokio::test]
async fn losing_a_zone_loses_no_segment_and_moves_nothing() {
    let _one_outage_at_a_time = drill::zone_lock().await;
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zones-outage").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    drill::install(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    drill::check_layout(&ns.name).await;
    for table in ["events", "clicks"] {
        let (status, message) = drill::zone_spread(table, &ns.name).await.expect("a ZoneSpread condition");
        assert_eq!(status, "True", "{table}: {message}");
    }

    let outage = drill::lose_zone(&client, &ns.name, "zone-b", Duration::from_secs(20)).await;
    eprintln!("zone-b outage: {outage:?}");
    assert!(outage.unavailable_tables.is_empty(), "every segment kept a live replica: {outage:?}");
    for (table, lowest) in &outage.lowest_live_replicas {
        let replication = drill::TABLES.iter().find(|(t, _)| table.starts_with(t)).unwrap().1 as u64;
        assert!(*lowest >= replication - 1, "{table}: at most one replica out: {outage:?}");
    }
    assert_eq!(outage.writes_during, Vec::<String>::new(), "no rebalance, no instance rewritten while zone-b is out");
    assert_eq!(outage.restarts_during, 0, "no pod restarted while zone-b is out");
    assert_eq!(outage.moves, 0, "no segment moved");
    drill::check_layout(&ns.name).await;

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn an_upgrade_waits_for_a_lost_zone_and_finishes_once_it_returns() {
    let _one_outage_at_a_time = drill::zone_lock().await;
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "zones-upgrade").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    drill::install(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    drill::reset_audit(&ns.name).await;

    drill::set_zone_lost("zone-a", true).await;
    drill::wait_reported(&client, &ns.name, "zone-a").await;
    let patch = r#"{"spec":{"image":"apachepinot/pinot:1.3.1"}}"#;
    kubectl(&["-n", &ns.name, "patch", &format!("pinotcluster/{CLUSTER}"), "--type=merge", "-p", patch]).await;
    // The upgrade says it waits for zone-a, and restarts nothing meanwhile.
    wait_for("Progressing to name zone-a", Duration::from_secs(60), || async {
        let c = drill::cluster(&client, &ns.name).await;
        condition(&c, "Progressing").filter(|(s, m)| s == "True" && m.contains("zone zone-a")).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(drill::restarts(&client, &ns.name).await, Vec::<String>::new(), "nothing restarts while zone-a is out");
    let (_, progressing) = condition(&drill::cluster(&client, &ns.name).await, "Progressing").unwrap();
    assert!(progressing.contains("zone zone-a"), "{progressing}");

    drill::set_zone_lost("zone-a", false).await;
    drill::wait_upgraded(&client, &ns.name, "apachepinot/pinot:1.3.1", Duration::from_secs(300)).await;
    let restarted = drill::restarts(&client, &ns.name).await;
    assert_eq!(restarted.len(), drill::PODS, "every pod restarted once: {restarted:?}");
    // One zone at a time: the servers of a zone restart one after the other, zone by zone.
    let servers: Vec<String> = restarted
        .iter()
        .filter(|p| p.contains("-server-"))
        .map(|p| p.trim_start_matches(&format!("{CLUSTER}-server-")).split('-').next().unwrap().to_string())
        .collect();
    let mut zones_in_order = servers.clone();
    zones_in_order.dedup();
    assert_eq!(zones_in_order.len(), 3, "zone by zone: {restarted:?}");
    let audit = drill::audit(&ns.name).await;
    assert_eq!(audit["routingGaps"], serde_json::json!([]), "{audit}");
    for (table, lowest) in audit["lowestRoutableReplicas"].as_object().unwrap() {
        assert!(lowest.as_u64().unwrap() >= 1, "{table} always had a routable replica: {audit}");
    }

    operator.stop().await;
    ns.cleanup().await;
}
