//! `pinot:policy` grows without breaking modules: a host of the 1.3.0 DRAFT
//! (`tests/contract/1.3.0`: 1.2.0 plus the `evict-pod` action) runs modules built against 1.0.0
//! and 1.1.0 (kept as built in `plugins/testing/contract-1.0.0` and `contract-1.1.0`) and 1.2.0
//! (today's) exactly as the operator does, and runs a module built against the draft that uses
//! 1.1.0's `pod-zone` and the draft's `evict-pod`; the 1.2.0 operator refuses that module at load
//! and says why. A module older than 1.2.0 decides on a cluster with a managed ensemble as it
//! always did, seeing none of it.

use std::path::Path;

use pinot_operator::policy::{
    Action, ClusterState, DecisionError, LoadError, PolicyEngine, PolicyKind, PolicyLimits, bundled,
    model::{Columns, Instance, Pod, Pool, Role},
};
use wasmtime::{
    Config, Engine, Store,
    component::{Component, HasSelf, Linker},
};

mod draft {
    wasmtime::component::bindgen!({
        world: "upgrade-policy",
        path: "../tests/contract/1.3.0",
        imports: { default: trappable },
    });
}

use draft::pinot::policy::{log, types, upgrade_actions};

/// What the draft host gives one decision and what it was asked for.
struct DraftHost {
    columns: Columns,
    actions: Vec<Action>,
    evicted: Vec<String>,
}

impl DraftHost {
    fn new(state: &ClusterState) -> Self {
        DraftHost { columns: Columns::new(state), actions: vec![], evicted: vec![] }
    }

    fn columns(&self) -> wasmtime::Result<&Columns> {
        Ok(&self.columns)
    }
}

// The operator's implementation of the state functions (the draft adds none).
pinot_operator::impl_policy_state_v1!(draft::pinot::policy::state, draft::pinot::policy::types, DraftHost);

impl upgrade_actions::Host for DraftHost {
    fn restart_pod(&mut self, pod: String) -> wasmtime::Result<()> {
        self.actions.push(Action::RestartPod(pod));
        Ok(())
    }
    fn disable_queries(&mut self, instance: String) -> wasmtime::Result<()> {
        self.actions.push(Action::DisableQueries(instance));
        Ok(())
    }
    fn enable_queries(&mut self, instance: String) -> wasmtime::Result<()> {
        self.actions.push(Action::EnableQueries(instance));
        Ok(())
    }
    fn wait(&mut self, reason: String) -> wasmtime::Result<()> {
        self.actions.push(Action::Wait(reason));
        Ok(())
    }
    fn block(&mut self, reason: String) -> wasmtime::Result<()> {
        self.actions.push(Action::Block(reason));
        Ok(())
    }
    /// New in 1.3.0.
    fn evict_pod(&mut self, pod: String) -> wasmtime::Result<()> {
        self.evicted.push(pod);
        Ok(())
    }
}

impl log::Host for DraftHost {
    fn log(&mut self, _level: types::Level, _message: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl types::Host for DraftHost {}

/// A host of the 1.3.0 draft: one engine and linker, a store per decision.
struct Draft {
    engine: Engine,
    linker: Linker<DraftHost>,
}

impl Draft {
    fn new() -> Self {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let mut linker = Linker::new(&engine);
        draft::UpgradePolicy::add_to_linker::<DraftHost, HasSelf<DraftHost>>(&mut linker, |h| h).unwrap();
        Draft { engine, linker }
    }

    /// Loads `bytes` and decides on `host`: the plan's result, the actions and the evictions.
    fn decide(&self, bytes: &[u8], host: DraftHost) -> wasmtime::Result<(Result<(), String>, DraftHost)> {
        let component = Component::new(&self.engine, bytes)?;
        let pre = draft::UpgradePolicyPre::new(self.linker.instantiate_pre(&component)?)?;
        let mut store = Store::new(&self.engine, host);
        let policy = pre.instantiate(&mut store)?;
        let result = policy.pinot_policy_upgrade().call_plan(&mut store)?;
        Ok((result, store.into_data()))
    }
}

/// A module built against an earlier contract (`1.0.0`, `1.1.0`), kept as built.
fn frozen(version: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/testing/contract-{version}")).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn module(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(bundled::WASM_DIR).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Two server pools in two zones, the first mid-upgrade.
fn upgrading() -> ClusterState {
    let pool = |name: &str, zone: &str, target: &str| {
        let pods = (0..2u32)
            .map(|o| Pod {
                name: format!("c-{name}-{o}"),
                ordinal: o,
                revision: "r1".into(),
                ready: true,
                terminating: false,
                restarts: 0,
                age_seconds: 100,
                zone: Some(zone.into()),
                node_ready: true,
                instance: Some(Instance {
                    id: format!("Server_c-{name}-{o}_8098"),
                    live: true,
                    enabled: true,
                    queries_enabled: true,
                    tags: vec!["DefaultTenant_OFFLINE".into()],
                    segments: 4,
                    pools: [("DefaultTenant_OFFLINE".to_string(), if zone == "zone-a" { 0 } else { 1 })].into(),
                }),
            })
            .collect();
        Pool {
            name: name.into(),
            role: Role::Server,
            zones: vec![zone.into()],
            desired_replicas: 2,
            current_replicas: 2,
            min_replicas: 0,
            max_replicas: 10,
            ready_replicas: 2,
            updated_replicas: if target == "r1" { 2 } else { 0 },
            current_revision: "r1".into(),
            target_revision: target.into(),
            image: "apachepinot/pinot:1.2.0".into(),
            max_unavailable: 1,
            pods,
            departed: vec![],
        }
    };
    ClusterState {
        name: "c".into(),
        namespace: "ns".into(),
        generation: 3,
        deployment_order: vec![Role::Controller, Role::Broker, Role::Server, Role::Minion],
        pools: vec![pool("server-a", "zone-a", "r2"), pool("server-b", "zone-b", "r1")],
        conditions: vec![],
        tables: vec![],
        tenants: vec![],
        now_unix_seconds: 1_767_225_600,
        config: vec![("zone".into(), "zone-b".into())],
        ensemble: None,
    }
}

#[test]
fn modules_built_against_1_0_1_1_and_1_2_decide_on_a_1_3_host_as_on_the_operator() {
    let operator = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let draft = Draft::new();
    let state = upgrading();

    // The default upgrade policy as built against 1.0.0 and 1.1.0 (kept as built) and as the
    // SDK builds it today (1.2.0).
    let (upgrade_1_0, upgrade_1_1) = (frozen("1.0.0", "upgrade_default.wasm"), frozen("1.1.0", "upgrade_default.wasm"));
    for (version, bytes) in
        [("1.0.0", &upgrade_1_0[..]), ("1.1.0", &upgrade_1_1[..]), ("1.2.0", bundled::UPGRADE_DEFAULT)]
    {
        let loaded = operator.load(PolicyKind::Upgrade, "upgrade-default", bytes).unwrap();
        assert_eq!(loaded.api_version(), format!("pinot:policy@{version}"));
        let expected = operator.decide(&loaded, &state);
        assert_eq!(expected, Ok(vec![Action::RestartPod("c-server-a-1".into())]), "{version}");
        let (result, host) = draft.decide(bytes, DraftHost::new(&state)).unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(Ok(host.actions), expected, "{version}");
        assert!(host.evicted.is_empty());
    }

    // A module that reads every field reads the same on both (1.0.0's fields, 1.1.0's, 1.2.0's).
    for echo in
        [frozen("1.0.0", "echo_state.wasm"), frozen("1.1.0", "echo_state.wasm"), module("pinot_test_echo_state.wasm")]
    {
        let Err(DecisionError::Refused(seen)) =
            operator.decide(&operator.load(PolicyKind::Upgrade, "echo", &echo).unwrap(), &state)
        else {
            panic!("the echo refuses with what it read")
        };
        let (result, _) = draft.decide(&echo, DraftHost::new(&state)).unwrap();
        assert_eq!(result, Err(seen));
    }
}

#[test]
fn a_module_built_against_1_3_runs_on_a_1_3_host_and_the_1_2_operator_refuses_it_saying_why() {
    let newer = module("pinot_test_newer_contract.wasm");
    let state = upgrading();

    // On the draft host it reads 1.1.0's column and asks for the draft's new action.
    let (result, host) = Draft::new().decide(&newer, DraftHost::new(&state)).unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(host.evicted, ["c-server-b-0"]);

    // The operator (1.2.0) refuses it at load, naming the contract and the function it lacks.
    let operator = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let err = operator.load(PolicyKind::Upgrade, "newer", &newer).unwrap_err();
    let LoadError::Imports { message, .. } = &err else { panic!("{err}") };
    assert!(message.contains("built against pinot:policy@1.3.0"), "{err}");
    assert!(message.contains("evict-pod"), "{err}");
}
