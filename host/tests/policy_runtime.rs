//! Contract tests of the policy runtime with real `.wasm` components: golden decisions of the
//! bundled defaults, and hostile modules that must each be contained with a specific error
//! while the engine keeps serving decisions.

use std::{path::Path, sync::Arc, time::Duration};

use pinot_operator::policy::{
    Action, ClusterState, DecisionError, LoadError, LoadedPolicy, PolicyEngine, PolicyKind, PolicyLimits, bundled,
    guardrails,
    model::{Instance, InstanceTags, Pod, Pool, Role, SetReplicas, Table, Tenant},
};

fn engine() -> PolicyEngine {
    PolicyEngine::new(PolicyLimits { deadline: Duration::from_millis(200), memory_bytes: 16 << 20 }).unwrap()
}

/// A module of an earlier contract, as its SDK built it (`plugins/testing/contract-<version>`).
fn frozen(version: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/testing/contract-{version}")).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn contract_0_3(name: &str) -> Vec<u8> {
    frozen("0.3.0", name)
}

fn module(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(bundled::WASM_DIR).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn instance(id: &str, tags: &[&str], segments: u32, queries: bool) -> Instance {
    Instance {
        id: id.into(),
        live: true,
        enabled: true,
        queries_enabled: queries,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        segments,
        pools: Default::default(),
    }
}

fn pod(name: &str, ordinal: u32, revision: &str, ready: bool, instance: Option<Instance>) -> Pod {
    Pod {
        name: name.into(),
        ordinal,
        revision: revision.into(),
        ready,
        terminating: false,
        restarts: 0,
        age_seconds: 30,
        instance,
        zone: None,
        node_ready: true,
    }
}

fn pool(name: &str, role: Role, zone: &str, target: &str, pods: Vec<Pod>) -> Pool {
    let n = pods.len() as u32;
    Pool {
        name: name.into(),
        role,
        zones: vec![zone.into()],
        desired_replicas: n,
        current_replicas: n,
        min_replicas: 0,
        max_replicas: 100,
        ready_replicas: pods.iter().filter(|p| p.ready).count() as u32,
        updated_replicas: pods.iter().filter(|p| p.revision == target).count() as u32,
        current_revision: "r1".into(),
        target_revision: target.into(),
        image: "apachepinot/pinot:1.3.0".into(),
        max_unavailable: 1,
        pods,
        departed: vec![],
    }
}

fn state(pools: Vec<Pool>) -> ClusterState {
    ClusterState {
        name: "c".into(),
        namespace: "ns".into(),
        generation: 2,
        deployment_order: vec![Role::Controller, Role::Broker, Role::Server, Role::Minion],
        pools,
        conditions: vec![],
        tables: vec![],
        tenants: vec![],
        now_unix_seconds: 1_700_000_000,
        config: vec![],
        ensemble: None,
    }
}

/// A cluster mid-upgrade: the controller is done, two zones of servers are not.
fn upgrading(server_1_queries: bool) -> ClusterState {
    state(vec![
        pool("controller", Role::Controller, "zone-a", "r2", vec![pod("c-controller-0", 0, "r2", true, None)]),
        pool(
            "server-b",
            Role::Server,
            "zone-b",
            "r2",
            vec![pod("c-server-b-0", 0, "r1", true, Some(instance("Server_b0", &[], 0, true)))],
        ),
        pool(
            "server-a",
            Role::Server,
            "zone-a",
            "r2",
            vec![
                pod("c-server-a-0", 0, "r1", true, Some(instance("Server_a0", &[], 0, true))),
                pod("c-server-a-1", 1, "r1", true, Some(instance("Server_a1", &[], 0, server_1_queries))),
            ],
        ),
    ])
}

#[test]
fn bundled_defaults_load_and_say_what_they_are() {
    let engine = engine();
    for (kind, name, bytes) in bundled::defaults() {
        let loaded = engine.load(kind, name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.info.name, name);
        assert_eq!(loaded.info.api_version, "pinot:policy@1.2.0");
        assert!(!loaded.uses_wasi(), "{name} is built with the SDK and imports no WASI");
        assert!(loaded.digest.starts_with("sha256:") && loaded.digest.len() == 7 + 64);
    }
    // A module of one kind does not load as another.
    let err = engine.load(PolicyKind::Scaling, "wrong", bundled::UPGRADE_DEFAULT).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { world: "scaling-policy", .. }), "{err}");
    assert!(matches!(engine.load(PolicyKind::Upgrade, "junk", b"not wasm"), Err(LoadError::Compile(_))));
}

/// The default upgrade policy as the SDK builds it today, and as the 1.0.0 SDK built it (kept
/// as built in `plugins/testing/contract-1.0.0`): both decide alike.
#[test]
fn default_upgrade_goes_zone_by_zone_highest_ordinal_first_with_queries_left_to_pinot() {
    let frozen_1_0 = frozen("1.0.0", "upgrade_default.wasm");
    for bytes in [bundled::UPGRADE_DEFAULT, &frozen_1_0[..]] {
        upgrade_goes_zone_by_zone(bytes);
    }
}

fn upgrade_goes_zone_by_zone(bytes: &[u8]) {
    let engine = engine();
    let upgrade = engine.load(PolicyKind::Upgrade, "upgrade-default", bytes).unwrap();
    // Zone a before zone b; pod 1 before pod 0; the server takes itself out of routing on
    // SIGTERM, so no queries step, whatever their state.
    assert_eq!(engine.decide(&upgrade, &upgrading(true)).unwrap(), vec![Action::RestartPod("c-server-a-1".into())]);
    assert_eq!(engine.decide(&upgrade, &upgrading(false)).unwrap(), vec![Action::RestartPod("c-server-a-1".into())]);

    // Back on the new revision and live: the next server (queries someone turned off stay off).
    let mut back = upgrading(false);
    back.pools[2].pods[1].revision = "r2".into();
    assert_eq!(engine.decide(&upgrade, &back).unwrap(), vec![Action::RestartPod("c-server-a-0".into())]);

    // A restarted pod still not ready: wait, and never touch a second pod of the pool.
    let mut restarting = upgrading(true);
    restarting.pools[2].pods[1] = pod("c-server-a-1", 1, "r2", false, None);
    let actions = engine.decide(&upgrade, &restarting).unwrap();
    assert!(matches!(&actions[..], [Action::Wait(why)] if why.contains("c-server-a-1")), "{actions:?}");

    // Deleted and not recreated yet (no pod has ordinal 1 for a moment): that pod is down
    // too, so the next server waits.
    let mut gone = upgrading(true);
    gone.pools[2].pods.remove(1);
    let actions = engine.decide(&upgrade, &gone).unwrap();
    assert!(matches!(&actions[..], [Action::Wait(why)] if why.contains("c-server-a-1")), "{actions:?}");

    // ... until its timeout: the upgrade halts, naming the pod.
    restarting.pools[2].pods[1].age_seconds = 601;
    let actions = engine.decide(&upgrade, &restarting).unwrap();
    assert!(matches!(&actions[..], [Action::Block(why)] if why.contains("c-server-a-1")), "{actions:?}");

    // Controllers come first.
    let mut controllers_first = upgrading(true);
    controllers_first.pools[0].pods[0].revision = "r1".into();
    assert_eq!(engine.decide(&upgrade, &controllers_first).unwrap(), vec![Action::RestartPod("c-controller-0".into())]);

    // Everything on the new revision: nothing to do.
    let mut done = upgrading(true);
    for pool in &mut done.pools {
        for pod in &mut pool.pods {
            pod.revision = "r2".into();
        }
    }
    assert_eq!(engine.decide(&upgrade, &done).unwrap(), vec![]);
}

#[test]
fn default_scaling_drains_a_server_before_removing_it_and_refuses_to_break_replication() {
    let engine = engine();
    let scaling = engine.load(PolicyKind::Scaling, "scaling-default", bundled::SCALING_DEFAULT).unwrap();
    let tag = "DefaultTenant_OFFLINE";
    let untagged = &["server_untagged"][..];
    // Three servers, scaling in to two: the third is the one to drain.
    let servers = |seg2: u32, tags2: &[&str], enabled2: bool, rebalancing: bool| {
        let mut s2 = instance("S2", tags2, seg2, true);
        s2.enabled = enabled2;
        let mut p = pool(
            "server",
            Role::Server,
            "zone-a",
            "r1",
            vec![
                pod("c-server-0", 0, "r1", true, Some(instance("S0", &[tag], 10, true))),
                pod("c-server-1", 1, "r1", true, Some(instance("S1", &[tag], 10, true))),
                pod("c-server-2", 2, "r1", true, Some(s2)),
            ],
        );
        p.desired_replicas = 2;
        p.min_replicas = 2;
        let mut s = state(vec![p]);
        s.tables = vec![Table {
            name: "t_OFFLINE".into(),
            replication: 2,
            server_tag: tag.into(),
            broker_tag: "DefaultTenant_BROKER".into(),
            segments: 15,
            servers_with_segments: 3,
            rebalancing,
        }];
        s
    };
    let set = |replicas| Action::SetReplicas(SetReplicas { pool: "server".into(), replicas });
    // 1. Untag it, and rebalance the tables of its tag.
    assert_eq!(
        engine.decide(&scaling, &servers(10, &[tag], true, false)).unwrap(),
        vec![
            Action::UpdateTags(InstanceTags { instance: "S2".into(), tags: vec!["server_untagged".into()] }),
            Action::RebalanceTable("t_OFFLINE".into())
        ]
    );
    // 2. Wait while Pinot moves its segments.
    let draining = engine.decide(&scaling, &servers(4, untagged, true, true)).unwrap();
    assert!(
        matches!(&draining[..], [Action::Wait(why)] if why.contains("draining c-server-2") && why.contains("segments left: 4")),
        "{draining:?}"
    );
    // 2b. Untagged but no rebalance running (the operator stopped in between): start it again.
    let resumed = engine.decide(&scaling, &servers(4, untagged, true, false)).unwrap();
    assert!(matches!(&resumed[..], [Action::RebalanceTable(t), Action::Wait(_)] if t == "t_OFFLINE"), "{resumed:?}");
    // 3. Empty: disable it. 4. Disabled: remove its pod.
    assert_eq!(
        engine.decide(&scaling, &servers(0, untagged, true, false)).unwrap(),
        vec![Action::DisableInstance("S2".into())]
    );
    assert_eq!(engine.decide(&scaling, &servers(0, untagged, false, false)).unwrap(), vec![set(2)]);
    // 5. Its pod is gone and it is no longer live: drop it from Pinot.
    let mut gone = servers(0, untagged, false, false);
    let last = gone.pools[0].pods.pop().unwrap();
    gone.pools[0].current_replicas = 2;
    let mut departed = last.instance.unwrap();
    departed.live = false;
    gone.pools[0].departed = vec![departed.clone()];
    assert_eq!(engine.decide(&scaling, &gone).unwrap(), vec![Action::DropInstance("S2".into())]);
    // ...but not while it is still live.
    gone.pools[0].departed[0].live = true;
    assert!(matches!(&engine.decide(&scaling, &gone).unwrap()[..], [Action::Wait(_)]));
    // Refused when the servers left could not hold the table's replication; nothing is done.
    let mut too_few = servers(10, &[tag], true, false);
    too_few.tables[0].replication = 3;
    let refused = engine.decide(&scaling, &too_few).unwrap();
    assert!(
        matches!(&refused[..], [Action::Block(why)] if why.contains("replication 3") && why.contains("leave 2 servers")),
        "{refused:?}"
    );
    // Scale out: at once; then, once the new server is ready and tagged, rebalance.
    let mut out = servers(10, &[tag], true, false);
    out.pools[0].desired_replicas = 5;
    out.pools[0].max_replicas = 5;
    assert_eq!(engine.decide(&scaling, &out).unwrap(), vec![set(5)]);
    let mut grown = servers(0, &[tag], true, false);
    grown.pools[0].desired_replicas = 3;
    grown.tables[0].servers_with_segments = 2;
    assert_eq!(engine.decide(&scaling, &grown).unwrap(), vec![Action::RebalanceTable("t_OFFLINE".into())]);
    // Not when the pool says no, nor while a rebalance runs.
    let mut no = grown.clone();
    no.config.push(("pool/server/rebalanceOnScale".into(), "false".into()));
    assert_eq!(engine.decide(&scaling, &no).unwrap(), vec![]);
    grown.tables[0].rebalancing = true;
    assert_eq!(engine.decide(&scaling, &grown).unwrap(), vec![]);
    // The scale-in called off after S2 was drained and disabled: it comes back like a new one.
    let mut back = servers(0, untagged, false, false);
    back.pools[0].desired_replicas = 3;
    assert_eq!(
        engine.decide(&scaling, &back).unwrap(),
        vec![
            Action::EnableInstance("S2".into()),
            Action::UpdateTags(InstanceTags {
                instance: "S2".into(),
                tags: vec!["DefaultTenant_OFFLINE".into(), "DefaultTenant_REALTIME".into()]
            }),
        ]
    );
}

#[test]
fn default_scaling_untags_brokers_and_drains_minions_before_removing_them() {
    let engine = engine();
    let scaling = engine.load(PolicyKind::Scaling, "scaling-default", bundled::SCALING_DEFAULT).unwrap();
    let two = |name: &str, role: Role, tags1: &[&str]| {
        let mut p = pool(
            name,
            role,
            "zone-a",
            "r1",
            vec![
                pod(&format!("c-{name}-0"), 0, "r1", true, Some(instance(&format!("{name}0"), &["x_BROKER"], 0, true))),
                pod(&format!("c-{name}-1"), 1, "r1", true, Some(instance(&format!("{name}1"), tags1, 0, true))),
            ],
        );
        p.desired_replicas = 1;
        p.min_replicas = 1;
        p
    };
    let s = state(vec![two("broker", Role::Broker, &["x_BROKER"])]);
    assert_eq!(
        engine.decide(&scaling, &s).unwrap(),
        vec![Action::UpdateTags(InstanceTags { instance: "broker1".into(), tags: vec!["broker_untagged".into()] })]
    );
    let s = state(vec![two("broker", Role::Broker, &["broker_untagged"])]);
    assert_eq!(
        engine.decide(&scaling, &s).unwrap(),
        vec![Action::SetReplicas(SetReplicas { pool: "broker".into(), replicas: 1 })]
    );
    let s = state(vec![two("minion", Role::Minion, &["minion_untagged"])]);
    assert_eq!(engine.decide(&scaling, &s).unwrap(), vec![Action::DrainInstance("minion1".into())]);
    let s = state(vec![two("minion", Role::Minion, &["minion_drained"])]);
    assert_eq!(
        engine.decide(&scaling, &s).unwrap(),
        vec![Action::SetReplicas(SetReplicas { pool: "minion".into(), replicas: 1 })]
    );
    // The last broker of a table's tenant stays.
    let mut s = state(vec![two("broker", Role::Broker, &["x_BROKER"])]);
    s.pools[0].pods[0].instance.as_mut().unwrap().tags = vec!["y_BROKER".into()];
    s.tables =
        vec![Table { name: "t_OFFLINE".into(), replication: 1, broker_tag: "x_BROKER".into(), ..Default::default() }];
    assert!(
        matches!(&engine.decide(&scaling, &s).unwrap()[..], [Action::Block(why)] if why.contains("without a broker"))
    );
}

#[test]
fn guardrails_never_remove_a_server_holding_segments_nor_drop_a_live_instance() {
    let tag = "DefaultTenant_OFFLINE";
    let mut p = pool(
        "server",
        Role::Server,
        "zone-a",
        "r1",
        vec![
            pod("c-server-0", 0, "r1", true, Some(instance("S0", &[tag], 10, true))),
            pod("c-server-1", 1, "r1", true, Some(instance("S1", &[tag], 3, true))),
        ],
    );
    p.min_replicas = 0;
    p.departed = vec![instance("S2", &[], 0, true), instance("S3", &[], 2, true)];
    p.departed[1].live = false;
    let s = state(vec![p]);
    let set = vec![Action::SetReplicas(SetReplicas { pool: "server".into(), replicas: 1 })];
    let v = guardrails::check(&s, &set).unwrap_err();
    assert!(v.reason.contains("c-server-1") && v.reason.contains("holds 3 segments"), "{v}");
    let v = guardrails::check(&s, &[Action::DropInstance("S2".into())]).unwrap_err();
    assert!(v.reason.contains("still live"), "{v}");
    let v = guardrails::check(&s, &[Action::DropInstance("S3".into())]).unwrap_err();
    assert!(v.reason.contains("holds 2 segments"), "{v}");
    let v = guardrails::check(&s, &[Action::DropInstance("S1".into())]).unwrap_err();
    assert!(v.reason.contains("still has its pod"), "{v}");
    let v = guardrails::check(&s, &[Action::DrainInstance("S1".into())]).unwrap_err();
    assert!(v.reason.contains("not a minion"), "{v}");
    // Only instances that leave are disabled: S1 stays while the pool keeps 2 pods.
    let v = guardrails::check(&s, &[Action::DisableInstance("S1".into())]).unwrap_err();
    assert!(v.reason.contains("not being scaled in"), "{v}");
    let mut shrinking = s.clone();
    shrinking.pools[0].desired_replicas = 1;
    assert_eq!(guardrails::check(&shrinking, &[Action::DisableInstance("S1".into())]), Ok(()));
}

#[test]
fn default_tenant_policy_spreads_a_tenant_over_zones_using_untagged_instances() {
    let engine = engine();
    let tenants = engine.load(PolicyKind::Tenant, "tenant-default", bundled::TENANT_DEFAULT).unwrap();
    let untagged = &["server_untagged"];
    let mut s = state(vec![
        pool(
            "server-a",
            Role::Server,
            "zone-a",
            "r1",
            vec![
                pod("a0", 0, "r1", true, Some(instance("A0", untagged, 0, true))),
                pod("a1", 1, "r1", true, Some(instance("A1", untagged, 0, true))),
            ],
        ),
        pool(
            "server-b",
            Role::Server,
            "zone-b",
            "r1",
            vec![
                pod("b0", 0, "r1", true, Some(instance("B0", &["other_OFFLINE"], 5, true))),
                pod("b1", 1, "r1", true, Some(instance("B1", untagged, 0, true))),
            ],
        ),
    ]);
    s.tenants = vec![Tenant {
        name: "sales".into(),
        role: Role::Server,
        instances: 2,
        offline_instances: 2,
        realtime_instances: 0,
    }];
    let actions = engine.decide(&tenants, &s).unwrap();
    let tagged: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateTags(t) => {
                assert_eq!(t.tags, vec!["sales_OFFLINE".to_string()]);
                Some(t.instance.as_str())
            }
            Action::SetInstancePool(_) => None,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tagged, vec!["A0", "B1"], "one per zone, never the instance serving another tenant");
    // Two zones: each is a Pinot pool of the tenant's tag, after the tags.
    assert_eq!(pools_set(&actions), [("A0", "sales_OFFLINE", 0), ("B1", "sales_OFFLINE", 1)]);
    assert!(matches!(actions[2], Action::SetInstancePool(_)), "{actions:?}");
    assert_eq!(guardrails::check(&s, &actions), Ok(()));
}

/// The `set-instance-pool` actions of a plan: instance, tag, pool.
fn pools_set(actions: &[Action]) -> Vec<(&str, &str, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetInstancePool(p) => Some((p.instance.as_str(), p.tag.as_str(), p.pool)),
            _ => None,
        })
        .collect()
}

#[test]
fn default_tenant_policy_takes_idle_default_tenant_servers_but_never_one_serving_segments() {
    let engine = engine();
    let tenants = engine.load(PolicyKind::Tenant, "tenant-default", bundled::TENANT_DEFAULT).unwrap();
    let default = &["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"];
    let mut s = state(vec![
        pool(
            "server-a",
            Role::Server,
            "zone-a",
            "r1",
            vec![
                pod("a0", 0, "r1", true, Some(instance("A0", default, 12, true))),
                pod("a1", 1, "r1", true, Some(instance("A1", default, 0, true))),
            ],
        ),
        pool(
            "server-b",
            Role::Server,
            "zone-b",
            "r1",
            vec![
                pod("b0", 0, "r1", true, Some(instance("B0", &["server_untagged"], 0, true))),
                pod("b1", 1, "r1", true, Some(instance("B1", &["ops_OFFLINE"], 0, true))),
            ],
        ),
    ]);
    s.tenants = vec![Tenant {
        name: "sales".into(),
        role: Role::Server,
        instances: 2,
        offline_instances: 2,
        realtime_instances: 2,
    }];
    let actions = engine.decide(&tenants, &s).unwrap();
    let tagged: Vec<(&str, Vec<String>)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateTags(t) => Some((t.instance.as_str(), t.tags.clone())),
            Action::SetInstancePool(_) => None,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let both = vec!["sales_OFFLINE".to_string(), "sales_REALTIME".to_string()];
    assert_eq!(
        tagged,
        vec![("A1", both.clone()), ("B0", both)],
        "the idle default-tenant server and the untagged one; never A0 (segments) or B1 (another tenant)"
    );
    assert_eq!(
        pools_set(&actions),
        [
            ("A1", "sales_OFFLINE", 0),
            ("A1", "sales_REALTIME", 0),
            ("B0", "sales_OFFLINE", 1),
            ("B0", "sales_REALTIME", 1)
        ]
    );
}

#[test]
fn hostile_modules_are_contained_with_specific_errors() {
    let engine = engine();
    let load = |file: &str| engine.load(PolicyKind::Upgrade, file, &module(file));
    let state = upgrading(true);

    let looping = load("pinot_test_endless_loop.wasm").unwrap();
    assert_eq!(engine.decide(&looping, &state), Err(DecisionError::Timeout(Duration::from_millis(200))));

    let bomb = load("pinot_test_memory_bomb.wasm").unwrap();
    assert_eq!(engine.decide(&bomb, &state), Err(DecisionError::OutOfMemory(16 << 20)));

    let panics = load("pinot_test_panics.wasm").unwrap();
    assert!(matches!(engine.decide(&panics, &state), Err(DecisionError::Trap(_))));

    // A plan may not grow without bound: a module asking for 20,000 actions is stopped.
    let flood = load("pinot_test_invalid_actions.wasm").unwrap();
    let mut flooding = state.clone();
    flooding.config.push(("flood".into(), "yes".into()));
    match engine.decide(&flood, &flooding) {
        Err(DecisionError::Trap(why)) => assert!(why.contains("more than 10000 actions"), "{why}"),
        other => panic!("{other:?}"),
    }

    // A scaling policy that imports the upgrade actions is refused at load, and so is a module
    // that imports an interface the host does not provide; each error names the import.
    let wrong_kind = engine.load(PolicyKind::Scaling, "wrong-kind", &module("pinot_test_wrong_kind.wasm")).unwrap_err();
    assert!(
        matches!(&wrong_kind, LoadError::Imports { message, .. } if message.contains("pinot:policy/upgrade-actions@1.0.0")),
        "{wrong_kind}"
    );
    let foreign = load("pinot_test_foreign_import.wasm").unwrap_err();
    assert!(
        matches!(&foreign, LoadError::Imports { message, .. } if message.contains("test:exfil/network")),
        "{foreign}"
    );

    // A module that imports WASI gets an empty one: no files, no directories, no environment.
    let snoop = load("pinot_test_snoop.wasm").unwrap();
    assert!(snoop.uses_wasi());
    match engine.decide(&snoop, &state) {
        Err(DecisionError::Refused(seen)) => {
            assert!(seen.contains("file: Err("), "{seen}");
            assert!(seen.contains("env vars: 0"), "{seen}");
            assert!(seen.contains("root dir: Err("), "{seen}");
        }
        other => panic!("{other:?}"),
    }

    // Invalid actions are refused whole by the guardrails.
    let invalid = load("pinot_test_invalid_actions.wasm").unwrap();
    let plan = engine.decide(&invalid, &state).unwrap();
    let violation = guardrails::check(&state, &plan).unwrap_err();
    assert_eq!(violation.index, 1);
    assert!(violation.reason.contains("no pod no-such-pod-0"), "{violation}");

    // After all that the engine still decides for everyone else.
    let upgrade = engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    assert_eq!(engine.decide(&upgrade, &state).unwrap()[0], Action::RestartPod("c-server-a-1".into()));
}

#[test]
fn a_looping_policy_does_not_hold_up_other_clusters_decisions() {
    let engine = engine();
    let looping = Arc::new(engine.load(PolicyKind::Upgrade, "loop", &module("pinot_test_endless_loop.wasm")).unwrap());
    let good = Arc::new(engine.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (engine, policy) = (engine.clone(), if i % 2 == 0 { looping.clone() } else { good.clone() });
            std::thread::spawn(move || (i, engine.decide(&policy, &upgrading(true))))
        })
        .collect();
    for t in threads {
        let (i, result) = t.join().expect("no decision panics the host");
        if i % 2 == 0 {
            assert!(matches!(result, Err(DecisionError::Timeout(_))));
        } else {
            assert_eq!(result.unwrap()[0], Action::RestartPod("c-server-a-1".into()));
        }
    }
}

#[test]
fn guardrails_keep_replicas_in_bounds_and_respect_the_disruption_budget() {
    let state = upgrading(false);
    let two_restarts = vec![Action::RestartPod("c-server-a-1".into()), Action::RestartPod("c-server-a-0".into())];
    let v = guardrails::check(&state, &two_restarts).unwrap_err();
    assert_eq!(v.index, 1);
    assert!(v.reason.contains("maxUnavailable"), "{v}");
    assert!(guardrails::check(&state, &two_restarts[..1]).is_ok());
    // A pod deleted and not yet recreated uses the budget as well.
    let mut gone = upgrading(false);
    gone.pools[2].pods.remove(0);
    let v = guardrails::check(&gone, &two_restarts[..1]).unwrap_err();
    assert!(v.reason.contains("already has 1 of 1"), "{v}");
    let too_many = vec![Action::SetReplicas(SetReplicas { pool: "server-a".into(), replicas: 101 })];
    assert!(guardrails::check(&state, &too_many).unwrap_err().reason.contains("0..=100"));
    let no_table = vec![Action::RebalanceTable("nope_OFFLINE".into())];
    assert!(guardrails::check(&state, &no_table).is_err());
    let no_instance = vec![Action::EnableQueries("Server_zz".into())];
    assert!(guardrails::check(&state, &no_instance).is_err());
}

#[test]
fn hot_reload_under_load_never_fails_a_decision() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use pinot_operator::policy::{InstallError, PolicyRegistry, runtime::digest};

    let registry = Arc::new(PolicyRegistry::new(engine()).unwrap());
    let good_a = bundled::UPGRADE_DEFAULT.to_vec();
    let good_b = module("pinot_test_invalid_actions.wasm");
    let broken = b"\0asm broken".to_vec();
    registry.install("ns", "team", PolicyKind::Upgrade, &good_a, &digest(&good_a), vec![]).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (registry, stop, done, failed) = (registry.clone(), stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                let state = upgrading(true);
                while !stop.load(Ordering::Relaxed) {
                    let result = registry
                        .resolve("ns", Some("team"), PolicyKind::Upgrade)
                        .map_err(|e| e.to_string())
                        .and_then(|active| registry.decide(&active, &state).map_err(|e| e.to_string()));
                    match result {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    for round in 0..3 {
        let next = if round % 2 == 0 { &good_b } else { &good_a };
        registry.install("ns", "team", PolicyKind::Upgrade, next, &digest(next), vec![]).unwrap();
        // A broken module, or one whose digest does not match, never replaces the good one.
        let err = registry.install("ns", "team", PolicyKind::Upgrade, &broken, &digest(&broken), vec![]).unwrap_err();
        assert_eq!(err.reason(), "DoesNotCompile");
        let err = registry.install("ns", "team", PolicyKind::Upgrade, &good_a, &digest(&good_b), vec![]).unwrap_err();
        assert!(matches!(err, InstallError::DigestMismatch { .. }));
        assert_eq!(registry.get("ns", "team").unwrap().policy.digest, digest(next));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no decision failed during the reloads");
    assert!(done.load(Ordering::Relaxed) > 0);
    // Round 2 installed good_b last.
    assert_eq!(registry.get("ns", "team").unwrap().policy.digest, digest(&good_b));
    assert_eq!(
        registry.resolve("ns", Some("team"), PolicyKind::Scaling).unwrap_err().to_string(),
        "PinotPolicy ns/team implements upgrade-policy, not scaling-policy; name a policy of the right kind"
    );
}

/// The text `pinot_test_echo_state.wasm` renders from what it reads through the SDK's views.
fn render_instance(out: &mut String, prefix: &str, i: &pinot_operator::policy::model::Instance) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "{prefix} {} live={} enabled={} queries={} tags={} segments={}",
        i.id,
        i.live,
        i.enabled,
        i.queries_enabled,
        i.tags.join(","),
        i.segments
    );
}

fn render(s: &ClusterState) -> String {
    use std::fmt::Write;
    let role = |r: Role| match r {
        Role::Controller => "controller",
        Role::Broker => "broker",
        Role::Server => "server",
        Role::Minion => "minion",
    };
    let mut out = String::new();
    let order: Vec<&str> = s.deployment_order.iter().map(|r| role(*r)).collect();
    let _ = writeln!(
        out,
        "cluster {} {} gen={} now={} order={}",
        s.name,
        s.namespace,
        s.generation,
        s.now_unix_seconds,
        order.join(",")
    );
    for p in &s.pools {
        let _ = writeln!(
            out,
            "pool {} {} zones={} desired={} current={} min={} max={} ready={} updated={} revisions={}>{} image={} maxUnavailable={}",
            p.name,
            role(p.role),
            p.zones.join(","),
            p.desired_replicas,
            p.current_replicas,
            p.min_replicas,
            p.max_replicas,
            p.ready_replicas,
            p.updated_replicas,
            p.current_revision,
            p.target_revision,
            p.image,
            p.max_unavailable
        );
        for pod in &p.pods {
            let _ = writeln!(
                out,
                " pod {} #{} {} ready={} terminating={} restarts={} age={}",
                pod.name, pod.ordinal, pod.revision, pod.ready, pod.terminating, pod.restarts, pod.age_seconds
            );
            if let Some(i) = &pod.instance {
                render_instance(&mut out, "  instance", i);
            }
        }
        for i in &p.departed {
            render_instance(&mut out, " departed", i);
        }
    }
    for c in &s.conditions {
        let _ = writeln!(out, "condition {} {} {} {}", c.kind, c.status, c.reason, c.message);
    }
    for t in &s.tables {
        let _ = writeln!(
            out,
            "table {} {} {} {} segments={} servers={} rebalancing={}",
            t.name, t.replication, t.server_tag, t.broker_tag, t.segments, t.servers_with_segments, t.rebalancing
        );
    }
    for t in &s.tenants {
        let _ = writeln!(
            out,
            "tenant {} {} {} {} {}",
            t.name,
            role(t.role),
            t.instances,
            t.offline_instances,
            t.realtime_instances
        );
    }
    for (k, v) in &s.config {
        let _ = writeln!(out, "config {k}={v}");
    }
    out
}

/// What a 1.1.0 module reads past 1.0.0's fields (`echo-state` prints it after them).
fn render_1_1(s: &ClusterState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for p in &s.pools {
        for pod in &p.pods {
            let zone = pod.zone.as_deref().unwrap_or("-");
            let _ = writeln!(out, "pod-zone {} {zone} nodeReady={}", pod.name, pod.node_ready);
        }
        for i in p.pods.iter().filter_map(|pod| pod.instance.as_ref()).chain(&p.departed) {
            let pools: Vec<String> = i.pools.iter().map(|(tag, n)| format!("{tag}={n}")).collect();
            let _ = writeln!(out, "pinot-pools {} {}", i.id, pools.join(","));
        }
    }
    out
}

/// What a 1.2.0 module reads past 1.1.0's (`echo-state` prints it last).
fn render_1_2(s: &ClusterState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(e) = &s.ensemble {
        let _ = writeln!(
            out,
            "ensemble desired={} configured={} target={} image={} order={}",
            e.desired_members, e.configured_members, e.target_revision, e.image, e.order
        );
        for m in &e.members {
            let _ = writeln!(
                out,
                " member {} id={} {} {:?} synced={} ready={} terminating={} leaving={} restarts={} age={} zone={} nodeReady={}",
                m.pod,
                m.id,
                m.revision,
                m.mode,
                m.synced,
                m.ready,
                m.terminating,
                m.leaving,
                m.restarts,
                m.age_seconds,
                m.zone.as_deref().unwrap_or("-"),
                m.node_ready
            );
        }
    }
    out
}

/// Modules a team built last release, kept as built (`plugins/testing/contract-1.0.0`): they
/// load on this operator whatever contract its SDK builds against today, and decide as the
/// golden tests say the defaults of their release decide.
#[test]
fn modules_built_against_1_0_0_keep_deciding() {
    let engine = engine();
    // The upgrade policy's decisions: `default_upgrade_goes_zone_by_zone_...` above.
    let upgrade = engine.load(PolicyKind::Upgrade, "upgrade-1.0", &frozen("1.0.0", "upgrade_default.wasm")).unwrap();
    assert_eq!(upgrade.api_version(), "pinot:policy@1.0.0");
    assert!(!upgrade.uses_wasi());

    let tenants = engine.load(PolicyKind::Tenant, "tenant-1.0", &frozen("1.0.0", "tenant_default.wasm")).unwrap();
    assert_eq!(tenants.api_version(), "pinot:policy@1.0.0");
    let untagged = &["server_untagged"];
    let mut s = state(vec![
        pool(
            "server-a",
            Role::Server,
            "zone-a",
            "r1",
            vec![pod("a0", 0, "r1", true, Some(instance("A0", untagged, 0, true)))],
        ),
        pool(
            "server-b",
            Role::Server,
            "zone-b",
            "r1",
            vec![pod("b0", 0, "r1", true, Some(instance("B0", untagged, 0, true)))],
        ),
    ]);
    s.tenants = vec![Tenant {
        name: "sales".into(),
        role: Role::Server,
        instances: 2,
        offline_instances: 2,
        realtime_instances: 0,
    }];
    let tagged: Vec<(String, Vec<String>)> = engine
        .decide(&tenants, &s)
        .unwrap()
        .into_iter()
        .map(|a| match a {
            Action::UpdateTags(t) => (t.instance, t.tags),
            other => panic!("a 1.0.0 tenant policy only tags, got {other:?}"),
        })
        .collect();
    assert_eq!(tagged, vec![("A0".into(), vec!["sales_OFFLINE".into()]), ("B0".into(), vec!["sales_OFFLINE".into()])]);
}

#[test]
fn modules_of_every_contract_read_exactly_the_state_the_host_built() {
    let engine = engine();
    let echo = engine.load(PolicyKind::Upgrade, "echo", &module("pinot_test_echo_state.wasm")).unwrap();
    assert_eq!(echo.api_version(), "pinot:policy@1.2.0");
    let echo_1_1 = engine.load(PolicyKind::Upgrade, "echo-1.1", &frozen("1.1.0", "echo_state.wasm")).unwrap();
    assert_eq!(echo_1_1.api_version(), "pinot:policy@1.1.0");
    let echo_0_3 = engine.load(PolicyKind::Upgrade, "echo-0.3", &contract_0_3("echo_state.wasm")).unwrap();
    assert_eq!(echo_0_3.api_version(), "pinot:policy@0.3.0");
    let echo_1_0 = engine.load(PolicyKind::Upgrade, "echo-1.0", &frozen("1.0.0", "echo_state.wasm")).unwrap();
    assert_eq!(echo_1_0.api_version(), "pinot:policy@1.0.0");
    // Everything the contract carries, with multi-byte text, empty strings and lists, a pod
    // without an instance, several zones and tags.
    let mut s = upgrading(false);
    s.name = "zürich-prod".into();
    s.pools[1].zones = vec!["zone-b".into(), "zone-ç".into()];
    s.pools[1].pods[0].instance.as_mut().unwrap().tags = vec!["sales_OFFLINE".into(), "sales_REALTIME".into()];
    s.pools[1].pods[0].restarts = 4;
    s.pools[2].current_revision = String::new();
    s.pools[1].departed = vec![pinot_operator::policy::model::Instance {
        id: "Server_gone-3_8098".into(),
        live: false,
        enabled: false,
        queries_enabled: true,
        tags: vec!["server_untagged".into()],
        segments: 0,
        pools: [("server_untagged".to_string(), 4)].into(),
    }];
    // 1.1.0: where pods run and Pinot pools.
    s.pools[1].pods[0].zone = Some("zone-ç".into());
    s.pools[1].pods[0].node_ready = false;
    s.pools[2].pods[0].zone = Some("zone-a".into());
    s.pools[2].pods[0].instance.as_mut().unwrap().pools =
        [("sales_OFFLINE".to_string(), 0), ("sales_REALTIME".to_string(), 2)].into();
    s.conditions = vec![pinot_operator::policy::model::Condition {
        kind: "Progressing".into(),
        status: "True".into(),
        reason: "Upgrading".into(),
        message: "upgrading pool server-a: 0/2 pods — ünïcode".into(),
    }];
    s.tables = vec![Table {
        name: "airlineStats_OFFLINE".into(),
        replication: 2,
        server_tag: "sales_OFFLINE".into(),
        broker_tag: "sales_BROKER".into(),
        segments: 7,
        servers_with_segments: 2,
        rebalancing: true,
    }];
    s.tenants = vec![Tenant {
        name: "sales".into(),
        role: Role::Server,
        instances: 0,
        offline_instances: 2,
        realtime_instances: 1,
    }];
    s.config = vec![("podReadyTimeoutSeconds".into(), "300".into()), ("empty".into(), String::new())];
    // 1.2.0: the managed ensemble, a member of each mode.
    {
        use pinot_operator::policy::model::{Ensemble, Member, MemberMode};
        let modes = [MemberMode::Follower, MemberMode::Leader, MemberMode::NotServing, MemberMode::Unreachable];
        s.ensemble = Some(Ensemble {
            desired_members: 5,
            configured_members: 3,
            target_revision: "zürich-zookeeper-2".into(),
            image: "zookeeper:3.9.3".into(),
            order: 1,
            members: modes
                .iter()
                .enumerate()
                .map(|(o, mode)| Member {
                    pod: format!("zürich-zookeeper-{o}"),
                    id: o as u32 + 1,
                    revision: if o == 0 { "zürich-zookeeper-2".into() } else { "zürich-zookeeper-1".into() },
                    ready: o < 2,
                    terminating: o == 2,
                    restarts: o as u32,
                    age_seconds: 60 * o as u64,
                    mode: *mode,
                    synced: o < 2,
                    leaving: o == 3,
                    zone: (o != 3).then(|| format!("zone-{o}")),
                    node_ready: o != 3,
                })
                .collect(),
        });
    }
    assert!(s.pools[0].pods[0].instance.is_none());
    // Each module reads the fields of the contract it was built against.
    let echoed = |echo: &LoadedPolicy, s: &ClusterState| match echo.api_version() {
        "pinot:policy@1.2.0" => render(s) + &render_1_1(s) + &render_1_2(s),
        "pinot:policy@1.1.0" => render(s) + &render_1_1(s),
        _ => render(s),
    };
    for echo in [&echo, &echo_1_1, &echo_1_0, &echo_0_3] {
        match engine.decide(echo, &s) {
            Err(DecisionError::Refused(seen)) => assert_eq!(seen, echoed(echo, &s), "{}", echo.api_version()),
            other => panic!("expected the echo of {}, got {other:?}", echo.api_version()),
        }
    }
    // An empty cluster: no pools, pods or instances, and only empty strings (laid out in the
    // columns the decision above filled and gave back: nothing of it may show through).
    let mut empty = s.clone();
    empty.name = String::new();
    empty.namespace = String::new();
    empty.pools.clear();
    empty.conditions.clear();
    empty.tables.clear();
    empty.tenants.clear();
    empty.config.clear();
    empty.deployment_order.clear();
    empty.ensemble = None;
    for echo in [&echo, &echo_1_1, &echo_1_0, &echo_0_3] {
        match engine.decide(echo, &empty) {
            Err(DecisionError::Refused(seen)) => assert_eq!(seen, echoed(echo, &empty), "{}", echo.api_version()),
            other => panic!("expected the echo, got {other:?}"),
        }
    }

    // A module of one kind never loads as another, under either version.
    let err = engine.load(PolicyKind::Tenant, "echo", &module("pinot_test_echo_state.wasm")).unwrap_err();
    assert!(
        matches!(&err, LoadError::WrongWorld { message, .. } if message.contains("pinot:policy/upgrade@1.2.0")),
        "{err}"
    );
    let err = engine.load(PolicyKind::Tenant, "echo-0.3", &contract_0_3("echo_state.wasm")).unwrap_err();
    assert!(matches!(&err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("plan-tenants"), "{err}");
}

#[test]
fn compiled_modules_are_cached_on_disk_privately_and_reused_by_the_next_engine() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = std::env::temp_dir().join(format!("pinot-policy-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let limits = PolicyLimits::default();

    let first = PolicyEngine::with_cache(limits, Some(&root)).unwrap();
    let loaded = first.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    let dir = std::fs::read_dir(&root).unwrap().next().unwrap().unwrap().path();
    assert!(dir.file_name().unwrap().to_string_lossy().starts_with("wasmtime-"), "{}", dir.display());
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let file = dir.join(format!("{}.cwasm", loaded.digest.trim_start_matches("sha256:")));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // A new engine (a restarted operator) loads it from the cache: the file is read, not
    // written again, and the module decides as before.
    let second = PolicyEngine::with_cache(limits, Some(&root)).unwrap();
    let again = second.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), meta.ino(), "a cache hit leaves the file alone");
    assert_eq!(second.decide(&again, &upgrading(true)).unwrap(), first.decide(&loaded, &upgrading(true)).unwrap());

    // A damaged file is dropped and the module compiled again.
    std::fs::write(&file, b"not a compiled module").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let third = PolicyEngine::with_cache(limits, Some(&root)).unwrap();
    assert!(third.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).is_ok());
    assert_ne!(std::fs::read(&file).unwrap(), b"not a compiled module");

    // A file others could have written is never loaded; a directory open to others is not
    // used at all. Either way the engine still works.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let fourth = PolicyEngine::with_cache(limits, Some(&root)).unwrap();
    assert!(fourth.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).is_ok());
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = PolicyEngine::with_cache(limits, Some(&root)).unwrap();
    assert!(open.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).is_ok());
    std::fs::remove_dir_all(&root).unwrap();
}
