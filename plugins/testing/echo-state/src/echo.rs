//! The echo policy: it refuses with the text it renders from what it read through the SDK's
//! views (an empty plan for the smoke test).
use std::fmt::Write;

use pinot_policy_sdk::{Instance, Role, State, UpgradeAction, UpgradePolicy};

pub struct Echo;

impl UpgradePolicy for Echo {
    const NAME: &'static str = "echo-state";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        Err(render(state))
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Controller => "controller",
        Role::Broker => "broker",
        Role::Server => "server",
        Role::Minion => "minion",
    }
}

fn instance(out: &mut String, prefix: &str, i: Instance) {
    let tags: Vec<&str> = i.tags().collect();
    let _ = writeln!(
        out,
        "{prefix} {} live={} enabled={} queries={} tags={} segments={}",
        i.id(),
        i.live(),
        i.enabled(),
        i.queries_enabled(),
        tags.join(","),
        i.segments()
    );
}

fn render(s: &State) -> String {
    let mut out = String::new();
    let order: Vec<&str> = s.deployment_order().iter().map(|r| role(*r)).collect();
    let _ = writeln!(
        out,
        "cluster {} {} gen={} now={} order={}",
        s.name(),
        s.namespace(),
        s.generation(),
        s.now_unix_seconds(),
        order.join(",")
    );
    for p in s.pools() {
        let zones: Vec<&str> = p.zones().collect();
        let _ = writeln!(
            out,
            "pool {} {} zones={} desired={} current={} min={} max={} ready={} updated={} revisions={}>{} image={} maxUnavailable={}",
            p.name(),
            role(p.role()),
            zones.join(","),
            p.desired_replicas(),
            p.current_replicas(),
            p.min_replicas(),
            p.max_replicas(),
            p.ready_replicas(),
            p.updated_replicas(),
            p.current_revision(),
            p.target_revision(),
            p.image(),
            p.max_unavailable()
        );
        for pod in p.pods() {
            let _ = writeln!(
                out,
                " pod {} #{} {} ready={} terminating={} restarts={} age={}",
                pod.name(),
                pod.ordinal(),
                pod.revision(),
                pod.ready(),
                pod.terminating(),
                pod.restarts(),
                pod.age_seconds()
            );
            if let Some(i) = pod.instance() {
                instance(&mut out, "  instance", i);
            }
        }
        for i in p.departed() {
            instance(&mut out, " departed", i);
        }
    }
    for c in s.conditions() {
        let _ = writeln!(out, "condition {} {} {} {}", c.kind(), c.status(), c.reason(), c.message());
    }
    for t in s.tables() {
        let _ = writeln!(
            out,
            "table {} {} {} {} segments={} servers={} rebalancing={}",
            t.name(),
            t.replication(),
            t.server_tag(),
            t.broker_tag(),
            t.segments(),
            t.servers_with_segments(),
            t.rebalancing()
        );
    }
    for t in s.tenants() {
        let _ = writeln!(
            out,
            "tenant {} {} {} {} {}",
            t.name(),
            role(t.role()),
            t.instances(),
            t.offline_instances(),
            t.realtime_instances()
        );
    }
    for (k, v) in s.config_entries() {
        let _ = writeln!(out, "config {k}={v}");
    }
    // What 1.1.0 adds, after everything 1.0.0 has (so the text of a 1.0.0 build is a prefix).
    for p in s.pools() {
        for pod in p.pods() {
            let _ =
                writeln!(out, "pod-zone {} {} nodeReady={}", pod.name(), pod.zone().unwrap_or("-"), pod.node_ready());
        }
        let instances = p.pods().filter_map(|pod| pod.instance()).chain(p.departed());
        for i in instances {
            let pools: Vec<String> = i.pinot_pools().map(|(tag, n)| format!("{tag}={n}")).collect();
            let _ = writeln!(out, "pinot-pools {} {}", i.id(), pools.join(","));
        }
    }
    // What 1.2.0 adds: the managed ZooKeeper ensemble.
    if let Some(e) = s.ensemble() {
        let _ = writeln!(
            out,
            "ensemble desired={} configured={} target={} image={} order={}",
            e.desired_members(),
            e.configured_members(),
            e.target_revision(),
            e.image(),
            e.order()
        );
        for m in e.members() {
            let _ = writeln!(
                out,
                " member {} id={} {} {:?} synced={} ready={} terminating={} leaving={} restarts={} age={} zone={} nodeReady={}",
                m.pod(),
                m.id(),
                m.revision(),
                m.mode(),
                m.synced(),
                m.ready(),
                m.terminating(),
                m.leaving(),
                m.restarts(),
                m.age_seconds(),
                m.zone().unwrap_or("-"),
                m.node_ready()
            );
        }
    }
    out
}
