//! Convergence time of many PinotTables.
//!
//! `make kube-up`, then `make bench-tables` (which checks the cluster before building; or `cargo
//! bench -p pinot-testbed --bench tables`). Creates `PINOT_BENCH_TABLES` (default 500)
//! PinotSchemas and PinotTables for an external PinotCluster over a simulated Pinot controller and
//! prints the time from the first create until every one is Ready, and the Pinot writes seen
//! during a quiet period afterwards.

use std::time::{Duration, Instant};

use pinot_testbed::{
    harness::{OperatorHandle, TEST_DRIFT_INTERVAL, TestNamespace, test_client},
    workload,
};

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("PINOT_BENCH_TABLES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "bench-tables").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let admin = workload::external_pinot(&client, &ns.name, "bench").await;
    let start = Instant::now();
    workload::create_tables(&client, &ns.name, "bench", n).await;
    let created = start.elapsed();
    workload::wait_all_ready(&client, &ns.name, n, Duration::from_secs(600)).await;
    let converged = start.elapsed();
    workload::clear_log(&admin).await;
    tokio::time::sleep(TEST_DRIFT_INTERVAL * 5).await;
    let writes = workload::pinot_writes(&admin).await.len();
    println!(
        "{n} schemas + {n} tables: created in {:.2} s, all Ready after {:.2} s; Pinot writes in the next {:?} (drift checks every {:?}): {writes}",
        created.as_secs_f64(),
        converged.as_secs_f64(),
        TEST_DRIFT_INTERVAL * 5,
        TEST_DRIFT_INTERVAL
    );
    operator.stop().await;
    ns.cleanup().await;
}
