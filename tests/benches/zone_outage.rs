//! The zone-outage drill as a benchmark: what losing a zone costs a cluster whose zones are
//! Pinot pools, and how soon it is whole again.
//!
//! `make kube-up`, then `make bench-zone-outage` (or `cargo bench -p pinot-testbed --bench
//! zone_outage`). The scenario is the drill's (`pinot_testbed::drill`): two servers in each of
//! three zones, two hybrid tables (replication 3 and 2) with segments on every server. Zone-b
//! and zone-a are lost in turn, `PINOT_BENCH_OUTAGES` times in all (default 4), each for
//! `PINOT_BENCH_OUTAGE_S` seconds (default 10); then zone-a is lost once more while the image
//! changes, and brought back. Printed: per outage the time until the cluster reported the zone,
//! the fewest live replicas any segment had, the segments with none (goal 0), the writes and
//! restarts the operator made while the zone was out (goal none), the time from the zone's
//! return until every replica served again and the cluster was healthy, and the replicas that
//! moved (goal 0); then the upgrade's wall time from the zone's return.

use std::time::{Duration, Instant};

use pinot_testbed::{
    drill::{self, CLUSTER},
    harness::{OperatorHandle, TestNamespace, kubectl, test_client},
};

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let outages: usize = std::env::var("PINOT_BENCH_OUTAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let hold_s: u64 = std::env::var("PINOT_BENCH_OUTAGE_S").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "bench-zones").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let installed = Instant::now();
    drill::install(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    drill::check_layout(&ns.name).await;
    println!("installed and placed by zone in {:.1} s", installed.elapsed().as_secs_f64());

    let mut reported = Vec::new();
    let mut recovered = Vec::new();
    let (mut unavailable, mut moves, mut writes, mut restarts) = (0, 0, 0, 0);
    for n in 0..outages {
        let zone = if n % 2 == 0 { "zone-b" } else { "zone-a" };
        let o = drill::lose_zone(&client, &ns.name, zone, Duration::from_secs(hold_s)).await;
        println!(
            "outage {n} ({zone}, {hold_s} s): reported after {:.2} s; fewest live replicas {:?}; segments unavailable {}; \
             writes while out {}; restarts while out {}; serving again {:.2} s after its return; replicas moved {}",
            o.to_reported.as_secs_f64(),
            o.lowest_live_replicas,
            o.unavailable_tables.len(),
            o.writes_during.len(),
            o.restarts_during,
            o.to_recovered.as_secs_f64(),
            o.moves
        );
        reported.push(o.to_reported);
        recovered.push(o.to_recovered);
        unavailable += o.unavailable_tables.len();
        moves += o.moves;
        writes += o.writes_during.len();
        restarts += o.restarts_during;
    }
    println!(
        "over {outages} outages: reported p50 {:.2} s (max {:.2} s); zone return -> serving and healthy p50 {:.2} s \
         (max {:.2} s); tables with a segment unavailable {unavailable}; replicas moved {moves}; writes while out \
         {writes}; restarts while out {restarts}",
        percentile(reported.clone(), 0.5).as_secs_f64(),
        percentile(reported, 1.0).as_secs_f64(),
        percentile(recovered.clone(), 0.5).as_secs_f64(),
        percentile(recovered, 1.0).as_secs_f64(),
    );

    // An upgrade asked for while zone-a is out waits, then runs once it is back.
    drill::set_zone_lost("zone-a", true).await;
    drill::wait_reported(&client, &ns.name, "zone-a").await;
    let patch = r#"{"spec":{"image":"apachepinot/pinot:1.3.1"}}"#;
    kubectl(&["-n", &ns.name, "patch", &format!("pinotcluster/{CLUSTER}"), "--type=merge", "-p", patch]).await;
    tokio::time::sleep(Duration::from_secs(hold_s)).await;
    let held = drill::restarts(&client, &ns.name).await.len();
    let back = Instant::now();
    drill::set_zone_lost("zone-a", false).await;
    drill::wait_upgraded(&client, &ns.name, "apachepinot/pinot:1.3.1", Duration::from_secs(600)).await;
    println!(
        "upgrade while zone-a was out: {held} pods restarted during the outage; {} pods upgraded {:.1} s after the \
         zone's return",
        drill::PODS,
        back.elapsed().as_secs_f64()
    );
    operator.stop().await;
    ns.cleanup().await;
}
