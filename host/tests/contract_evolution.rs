//! `pinot:policy` grows without breaking modules: a host of the 1.1.0 DRAFT
//! (`tests/contract/1.1.0`: 1.0.0 plus the `pod-zone` column and the `evict-pod` action) runs
//! modules built against 1.0.0 exactly as the operator does, and runs a module built against the
//! draft that uses both additions; the 1.0.0 operator refuses that module at load and says why.

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
        path: "../tests/contract/1.1.0",
        imports: { default: trappable },
    });
}

use draft::pinot::policy::{log, types, upgrade_actions};

/// What the draft host gives one decision and what it was asked for.
struct DraftHost {
    columns: Columns,
    /// `pod-zone`: text ids appended to the columns' texts.
    pod_zone: Vec<Option<u32>>,
    actions: Vec<Action>,
    evicted: Vec<String>,
}

impl DraftHost {
    fn new(state: &ClusterState, zone_of: impl Fn(&Pod) -> Option<String>) -> Self {
        let mut columns = Columns::new(state);
        let pod_zone =
            state.pools.iter().flat_map(|p| &p.pods).map(|pod| zone_of(pod).map(|z| columns.texts.add(&z))).collect();
        DraftHost { columns, pod_zone, actions: vec![], evicted: vec![] }
    }

    fn columns(&self) -> wasmtime::Result<&Columns> {
        Ok(&self.columns)
    }
}

// The operator's implementation of the 1.0.0 state functions, and the one 1.1.0 adds.
pinot_operator::impl_policy_state_v1!(
    draft::pinot::policy::state,
    draft::pinot::policy::types,
    DraftHost,
    fn pod_zone(&mut self) -> wasmtime::Result<Vec<Option<u32>>> {
        Ok(self.pod_zone.clone())
    }
);

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
    /// New in 1.1.0.
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

/// A host of the 1.1.0 draft: one engine and linker, a store per decision.
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
                instance: Some(Instance {
                    id: format!("Server_c-{name}-{o}_8098"),
                    live: true,
                    enabled: true,
                    queries_enabled: true,
                    tags: vec!["DefaultTenant_OFFLINE".into()],
                    segments: 4,
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
    }
}

fn zone_of(pod: &Pod) -> Option<String> {
    Some(if pod.name.contains("server-a") { "zone-a" } else { "zone-b" }.into())
}

#[test]
fn modules_built_against_1_0_decide_on_a_1_1_host_as_on_the_operator() {
    let operator = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let draft = Draft::new();
    let state = upgrading();

    // The bundled default upgrade policy (built against 1.0.0 with the SDK).
    let expected = operator
        .decide(&operator.load(PolicyKind::Upgrade, "upgrade-default", bundled::UPGRADE_DEFAULT).unwrap(), &state);
    assert_eq!(expected, Ok(vec![Action::RestartPod("c-server-a-1".into())]));
    let (result, host) = draft.decide(bundled::UPGRADE_DEFAULT, DraftHost::new(&state, zone_of)).unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(Ok(host.actions), expected);
    assert!(host.evicted.is_empty());

    // A module that reads every 1.0.0 field reads the same on both.
    let echo = module("pinot_test_echo_state.wasm");
    let Err(DecisionError::Refused(seen)) =
        operator.decide(&operator.load(PolicyKind::Upgrade, "echo", &echo).unwrap(), &state)
    else {
        panic!("the echo refuses with what it read")
    };
    let (result, _) = draft.decide(&echo, DraftHost::new(&state, zone_of)).unwrap();
    assert_eq!(result, Err(seen));
}

#[test]
fn a_module_built_against_1_1_runs_on_a_1_1_host_and_the_1_0_operator_refuses_it_saying_why() {
    let newer = module("pinot_test_newer_contract.wasm");
    let state = upgrading();

    // On the draft host it reads the new column and asks for the new action.
    let (result, host) = Draft::new().decide(&newer, DraftHost::new(&state, zone_of)).unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(host.evicted, ["c-server-b-0"]);

    // The operator (1.0.0) refuses it at load, naming the contract and the function it lacks.
    let operator = PolicyEngine::new(PolicyLimits::default()).unwrap();
    let err = operator.load(PolicyKind::Upgrade, "newer", &newer).unwrap_err();
    let LoadError::Imports { message, .. } = &err else { panic!("{err}") };
    assert!(message.contains("built against pinot:policy@1.1.0"), "{err}");
    assert!(message.contains("pod-zone") || message.contains("evict-pod"), "{err}");
}
