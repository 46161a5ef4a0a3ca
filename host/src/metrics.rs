//! The operator's metrics, in the Prometheus text format, and its health endpoints:
//! `GET /metrics`, `GET /healthz` (the process serves), `GET /readyz` (the PinotCluster
//! controller has its first full view of the clusters).
//!
//! One process-wide registry: reconciles and their errors by kind and reason, reconcile
//! duration, policy decision latency and failures by policy, policy reloads, Pinot API calls by
//! endpoint and status, and clusters by phase (read from the controller's cache when scraped).
//! Label values are bounded: kinds, reasons, policy names, endpoint templates, status codes.

use std::{
    collections::BTreeMap,
    fmt::Write,
    net::SocketAddr,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};

type Labels = Vec<(&'static str, String)>;

/// Upper bounds (seconds) of the duration histograms' buckets.
const BUCKETS: [f64; 12] = [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// What each metric is, for `# HELP` and `# TYPE`.
const METRICS: [(&str, &str, &str); 8] = [
    ("pinot_operator_reconciles_total", "counter", "Reconciles, by kind and result (ok, error)."),
    ("pinot_operator_reconcile_errors_total", "counter", "Failed reconciles, by kind and reason."),
    ("pinot_operator_reconcile_duration_seconds", "histogram", "Time one reconcile took, by kind."),
    ("pinot_operator_policy_decision_duration_seconds", "histogram", "Time one policy decision took, by policy."),
    ("pinot_operator_policy_decision_failures_total", "counter", "Policy decisions that failed, by policy and reason."),
    ("pinot_operator_policy_reloads_total", "counter", "Policy modules loaded from PinotPolicies, by result."),
    ("pinot_operator_pinot_requests_total", "counter", "Calls to Pinot controllers, by method, endpoint and status."),
    ("pinot_operator_clusters", "gauge", "PinotClusters by phase (Available, Progressing, Degraded, Paused, Pending)."),
];

/// Every series name the operator exports (a histogram's `_bucket`, `_sum` and `_count`), for
/// dashboards and alerts to be checked against.
pub fn series_names() -> Vec<String> {
    METRICS
        .iter()
        .flat_map(|(name, kind, _)| match *kind {
            "histogram" => vec![format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count")],
            _ => vec![name.to_string()],
        })
        .collect()
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

type PhaseSource = Box<dyn Fn() -> BTreeMap<String, u64> + Send + Sync>;

#[derive(Default)]
struct Registry {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
    phases: Mutex<Option<PhaseSource>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Adds one to a counter.
pub fn inc(name: &'static str, pairs: &[(&'static str, &str)]) {
    let mut counters = REGISTRY.counters.lock().unwrap_or_else(|e| e.into_inner());
    *counters.entry((name, labels(pairs))).or_insert(0) += 1;
}

/// Records one duration in a histogram.
pub fn observe(name: &'static str, pairs: &[(&'static str, &str)], took: Duration) {
    let seconds = took.as_secs_f64();
    let mut histograms = REGISTRY.histograms.lock().unwrap_or_else(|e| e.into_inner());
    let h = histograms.entry((name, labels(pairs))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if seconds <= *bound {
            h.counts[i] += 1;
        }
    }
    h.count += 1;
    h.sum += seconds;
}

/// A reconcile of `kind` took `took`; `error` is its error category, if it failed.
pub fn reconciled(kind: &'static str, took: Duration, error: Option<&str>) {
    inc("pinot_operator_reconciles_total", &[("kind", kind), ("result", if error.is_some() { "error" } else { "ok" })]);
    if let Some(reason) = error {
        inc("pinot_operator_reconcile_errors_total", &[("kind", kind), ("reason", reason)]);
    }
    observe("pinot_operator_reconcile_duration_seconds", &[("kind", kind)], took);
}

/// Runs one reconcile of `kind` and counts it (duration, result, error category).
pub async fn timed<T, E>(
    kind: &'static str,
    work: impl Future<Output = Result<T, E>>,
    category: impl Fn(&E) -> &'static str,
) -> Result<T, E> {
    let start = std::time::Instant::now();
    let result = work.await;
    reconciled(kind, start.elapsed(), result.as_ref().err().map(category));
    result
}

/// Where the clusters-by-phase gauge is read from when scraped.
pub fn set_phase_source(source: impl Fn() -> BTreeMap<String, u64> + Send + Sync + 'static) {
    *REGISTRY.phases.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(source));
}

/// A Pinot API path as a bounded label: names and ids become `{}`
/// (`/instances/Server_x_8098/state` → `/instances/{}/state`).
pub fn endpoint(path: &str) -> String {
    const WORDS: [&str; 22] = [
        "health",
        "instances",
        "liveinstances",
        "state",
        "updateTags",
        "validate",
        "dropInstance",
        "tables",
        "schemas",
        "segments",
        "servers",
        "reload",
        "needReload",
        "segmentReloadStatus",
        "rebalance",
        "rebalanceStatus",
        "tenants",
        "metadata",
        "tags",
        "jobs",
        "size",
        "status",
    ];
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(if WORDS.contains(&part) { part } else { "{}" });
    }
    if out.is_empty() { "/".into() } else { out }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_labels(labels: &[(&'static str, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// Every metric in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let counters = REGISTRY.counters.lock().unwrap_or_else(|e| e.into_inner());
    let histograms = REGISTRY.histograms.lock().unwrap_or_else(|e| e.into_inner());
    let phases = REGISTRY.phases.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|f| f()).unwrap_or_default();
    let mut out = String::new();
    for (name, kind, help) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match kind {
            "counter" => {
                for ((_, l), v) in counters.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name) {
                    let _ = writeln!(out, "{name}{} {v}", render_labels(l, None));
                }
            }
            "histogram" => {
                for ((_, l), h) in histograms.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name) {
                    for (bound, count) in BUCKETS.iter().zip(h.counts) {
                        let le = bound.to_string();
                        let _ = writeln!(out, "{name}_bucket{} {count}", render_labels(l, Some(("le", &le))));
                    }
                    let _ = writeln!(out, "{name}_bucket{} {}", render_labels(l, Some(("le", "+Inf"))), h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", render_labels(l, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", render_labels(l, None), h.count);
                }
            }
            _ => {
                for (phase, n) in &phases {
                    let _ = writeln!(out, "{name}{{phase=\"{}\"}} {n}", escape(phase));
                }
            }
        }
    }
    out
}

static READY: AtomicBool = AtomicBool::new(false);

/// The PinotCluster controller has its first full view of the clusters (`/readyz`).
pub fn set_ready() {
    READY.store(true, Ordering::Relaxed);
}

pub fn is_ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// The HTTP routes: `/metrics`, `/healthz`, `/readyz`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async {
                if is_ready() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting: the PinotCluster cache is not filled yet")
                        .into_response()
                }
            }),
        )
}

/// Serves the routes on `addr` until the process ends; the address it listens on.
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_bounded_templates() {
        assert_eq!(endpoint("/instances/Server_a.b.svc_8098/state"), "/instances/{}/state");
        assert_eq!(endpoint("/tables/airlineStats/rebalance"), "/tables/{}/rebalance");
        assert_eq!(endpoint("/rebalanceStatus/abc-123"), "/rebalanceStatus/{}");
        assert_eq!(endpoint("/health"), "/health");
        assert_eq!(endpoint("/"), "/");
    }

    #[test]
    fn renders_counters_and_histograms_in_the_text_format() {
        reconciled("TestKind", Duration::from_millis(3), None);
        reconciled("TestKind", Duration::from_millis(30), Some("observe"));
        let text = render();
        assert!(text.contains("# TYPE pinot_operator_reconciles_total counter"), "{text}");
        assert!(text.contains("pinot_operator_reconciles_total{kind=\"TestKind\",result=\"ok\"} 1"), "{text}");
        assert!(
            text.contains("pinot_operator_reconcile_errors_total{kind=\"TestKind\",reason=\"observe\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinot_operator_reconcile_duration_seconds_bucket{kind=\"TestKind\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinot_operator_reconcile_duration_seconds_bucket{kind=\"TestKind\",le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(text.contains("pinot_operator_reconcile_duration_seconds_count{kind=\"TestKind\"} 2"), "{text}");
    }
}
