//! The operator's `/metrics`, `/healthz` and `/readyz`, scraped while it runs a cluster on the
//! local control plane.

use std::time::Duration;

use pinot_testbed::harness::{OperatorHandle, TestNamespace, kubectl, test_client, wait_for};

const CLUSTER: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: m
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  pools:
    - name: controller
      role: controller
      storage: {ephemeral: true}
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: server
      role: server
      storage: {ephemeral: true}
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_reconciles_decisions_and_pinot_calls_and_health_answers() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "metrics").await;
    let addr = pinot_operator::metrics::serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}-m.yaml", ns.name));
    std::fs::write(&file, CLUSTER).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/m", "--timeout=120s"]).await;

    let get = |path: &'static str| async move {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/healthz").await.0, 200);
    let ready = wait_for("/readyz 200", Duration::from_secs(30), || async {
        let (status, _) = get("/readyz").await;
        (status == 200).then_some(())
    });
    ready.await;
    let text = wait_for("the cluster counted as Available", Duration::from_secs(30), || async {
        let (_, text) = get("/metrics").await;
        (sample(&text, "pinot_operator_clusters{phase=\"Available\"}") == Some(1.0)).then_some(text)
    })
    .await;
    assert!(text.contains("# TYPE pinot_operator_reconcile_duration_seconds histogram"), "{text}");
    let ok = sample(&text, "pinot_operator_reconciles_total{kind=\"PinotCluster\",result=\"ok\"}").unwrap_or(0.0);
    assert!(ok >= 1.0, "{text}");
    assert!(
        sample(&text, "pinot_operator_reconcile_duration_seconds_count{kind=\"PinotCluster\"}").unwrap_or(0.0) >= ok
    );
    // The bundled policies decided, and the Pinot controller was asked, by endpoint template.
    for policy in ["upgrade-default", "scaling-default"] {
        let series = format!("pinot_operator_policy_decision_duration_seconds_count{{policy=\"{policy}\"}}");
        assert!(sample(&text, &series).unwrap_or(0.0) >= 1.0, "{series} in {text}");
    }
    let calls = "pinot_operator_pinot_requests_total{method=\"GET\",endpoint=\"/instances/{}\",status=\"200\"}";
    assert!(sample(&text, calls).unwrap_or(0.0) >= 1.0, "{calls} in {text}");
    operator.stop().await;
    ns.cleanup().await;
}
