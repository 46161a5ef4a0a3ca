//! The four Pinot roles and what each needs: ports, health paths, start command, the Pinot
//! configuration the operator writes, the keys a pool may not override, and JVM options.
//!
//! Every Pinot fact here was read from Apache Pinot's source at `release-1.2.0` and master
//! (see the README section "What the operator writes into Pinot's configuration"). `CC` is
//! `pinot-spi/.../utils/CommonConstants.java`; `BSS`, `BBS`, `BCS` and `BMS` are
//! `BaseServerStarter`, `BaseBrokerStarter`, `BaseControllerStarter` and `BaseMinionStarter`.

use std::{collections::BTreeMap, fmt, str::FromStr};

/// A Pinot role. The order of the variants is the default deployment order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Controller,
    Broker,
    Server,
    Minion,
}

/// The multi-stage query engine's server port on servers (`pinot.query.server.port`). Pinot's
/// default is 0, a random free port at every start (`BSS.init`); the official Helm chart fixes
/// 7321 so the port is known to Services and network policies.
pub const QUERY_SERVER_PORT: i32 = 7321;
/// The multi-stage mailbox port on servers and brokers (`pinot.query.runner.port`), fixed like
/// [`QUERY_SERVER_PORT`] (chart: 7732).
pub const QUERY_RUNNER_PORT: i32 = 7732;

/// `pinot.server.startup.timeoutMs` when the pool does not set it (`CC.Server`, all releases).
pub const DEFAULT_SERVER_STARTUP_TIMEOUT_MS: u64 = 600_000;
/// `pinot.server.shutdown.timeoutMs` when the pool does not set it (`CC.Server`, all releases).
pub const DEFAULT_SERVER_SHUTDOWN_TIMEOUT_MS: u64 = 600_000;
/// `pinot.broker.delayShutdownTimeMs` when the pool does not set it (`CC.Broker`, all releases).
pub const DEFAULT_BROKER_DELAY_SHUTDOWN_MS: u64 = 10_000;

pub const SERVER_STARTUP_TIMEOUT_KEY: &str = "pinot.server.startup.timeoutMs";
pub const SERVER_SHUTDOWN_TIMEOUT_KEY: &str = "pinot.server.shutdown.timeoutMs";
pub const BROKER_DELAY_SHUTDOWN_KEY: &str = "pinot.broker.delayShutdownTimeMs";
/// The controller's data directory: a deep-store URI or a local path (`ControllerConf`).
pub const CONTROLLER_DATA_DIR_KEY: &str = "controller.data.dir";
/// The minion's (unprefixed) data directory, emptied when the minion stops (`BMS.stop`).
pub const MINION_DATA_DIR_KEY: &str = "dataDir";

/// Why a pool may not set a key: which spec field or operator decision owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnedBy {
    /// `spec.clusterName`.
    ClusterName,
    /// `spec.zookeeper.connectString`.
    Zookeeper,
    /// A port the operator's Services, container ports and probes use.
    Port,
    /// A host or instance-id key: Pinot's instance id must stay
    /// `<Role>_<pod>.<cluster>-<pool>-headless.<ns>.svc.<domain>_<port>`.
    InstanceId,
    /// A data directory on the pool's volume.
    DataDir,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Controller, Role::Broker, Role::Server, Role::Minion];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Broker => "broker",
            Role::Server => "server",
            Role::Minion => "minion",
        }
    }

    /// The port Pinot serves this role's API (and `/health`) on.
    pub fn main_port(self) -> i32 {
        match self {
            Role::Controller => 9000,
            Role::Broker => 8099,
            Role::Server => 8097,
            Role::Minion => 9514,
        }
    }

    /// Every container port of the role, as (name, port).
    pub fn ports(self) -> &'static [(&'static str, i32)] {
        match self {
            Role::Controller => &[("http", 9000)],
            Role::Broker => &[("http", 8099), ("query-runner", QUERY_RUNNER_PORT)],
            Role::Server => &[
                ("netty", 8098),
                ("admin", 8097),
                ("query-server", QUERY_SERVER_PORT),
                ("query-runner", QUERY_RUNNER_PORT),
            ],
            Role::Minion => &[("http", 9514)],
        }
    }

    /// The path the readiness probe asks.
    pub fn readiness_path(self) -> &'static str {
        match self {
            Role::Server => "/health/readiness",
            _ => "/health",
        }
    }

    /// The path the liveness and startup probes ask. A server's answers 200 as soon as its
    /// admin API runs; the other roles have only `/health`, which is 503 until the role is GOOD
    /// (a broker: until its routing has converged, without a time limit).
    pub fn liveness_path(self) -> &'static str {
        match self {
            Role::Server => "/health/liveness",
            _ => "/health",
        }
    }

    /// The port Pinot puts in this role's instance id (`Server_<host>_8098`).
    pub fn instance_port(self) -> i32 {
        match self {
            Role::Server => 8098,
            other => other.main_port(),
        }
    }

    /// The prefix of the role's Pinot instance ids.
    pub fn instance_prefix(self) -> &'static str {
        match self {
            Role::Controller => "Controller",
            Role::Broker => "Broker",
            Role::Server => "Server",
            Role::Minion => "Minion",
        }
    }

    /// `pinot-admin.sh` sub-command that starts the role.
    pub fn start_command(self) -> &'static str {
        match self {
            Role::Controller => "StartController",
            Role::Broker => "StartBroker",
            Role::Server => "StartServer",
            Role::Minion => "StartMinion",
        }
    }

    /// Where the role keeps its data (and where the pool's volume is mounted).
    pub fn data_dir(self) -> String {
        format!("/var/pinot/{}/data", self.as_str())
    }

    /// Where the pool's ConfigMap is mounted.
    pub fn config_dir(self) -> String {
        format!("/var/pinot/{}/config", self.as_str())
    }

    /// The configuration file name inside the ConfigMap.
    pub fn config_file(self) -> String {
        format!("pinot-{}.conf", self.as_str())
    }

    pub fn default_jvm_opts(self) -> &'static str {
        match self {
            Role::Controller => "-XX:+UseG1GC -XX:MaxGCPauseMillis=200 -Xms256M -Xmx1G",
            Role::Broker => "-XX:+UseG1GC -XX:MaxGCPauseMillis=200 -Xms256M -Xmx1G",
            Role::Server => "-XX:+UseG1GC -XX:MaxGCPauseMillis=200 -Xms512M -Xmx1G",
            Role::Minion => "-XX:+UseG1GC -XX:MaxGCPauseMillis=200 -Xms256M -Xmx1G",
        }
    }

    /// JVM system properties added to `JAVA_OPTS` after the pool's options (unless they set the
    /// property themselves). The image's launcher (`bin/pinot-admin.sh`) uses its built-in
    /// `-Dlog4j2.configurationFile` only when `JAVA_OPTS` is empty, and `JAVA_OPTS` is always
    /// set: without the first property Log4j falls back to the jar's `log4j2.xml`, which logs
    /// only errors to the console. The values are the official Helm chart's
    /// (`helm/pinot/templates/*/statefulset.yaml`; `jute.maxbuffer` in `values.yaml` from
    /// 1.4.0, the ZooKeeper client's limit on a znode, default 1 MiB).
    pub fn system_properties(self) -> [(&'static str, String); 3] {
        [
            ("log4j2.configurationFile", format!("/opt/pinot/etc/conf/pinot-{}-log4j2.xml", self.as_str())),
            ("plugins.dir", "/opt/pinot/plugins".to_string()),
            ("jute.maxbuffer", "4000000".to_string()),
        ]
    }

    /// Pinot configuration the role needs, before the pool's own properties are merged over
    /// it. `cluster` is the Helix cluster name and `zookeeper` the connect string.
    ///
    /// No host key is written: Pinot names each instance after the pod's canonical host name
    /// (`pinot.set.instance.id.to.hostname=true`, as the official chart does), which for a
    /// StatefulSet pod is `<pod>.<headless Service>.<ns>.svc.<cluster domain>` from the
    /// `/etc/hosts` the kubelet writes. Templating a host key from an environment variable
    /// (`dynamic.env.config`) would not hold on 1.2.0: the controller (`BCS.init`) and the
    /// minion (`BMS.init`) build their configuration a second time from the first one's map,
    /// the templating runs again on the already replaced value, and 1.2.0 sets a key whose
    /// variable is missing to null (`PinotConfiguration.applyDynamicEnvConfig`; 1.3.0 added a
    /// `templated` marker against this).
    pub fn default_config(self, cluster: &str, zookeeper: &str) -> Vec<(String, String)> {
        let data = self.data_dir();
        let mut props: Vec<(&str, String)> = vec![
            // Authoritative for every role: it wins over `controller.helix.cluster.name` and
            // over the `-clusterName` argument (`ControllerConf.getHelixClusterName`,
            // `Start{Server,Broker,Minion}Command.get*Conf`).
            ("pinot.cluster.name", cluster.into()),
            ("pinot.zk.server", zookeeper.into()),
            // Instance ids are built from the pod's stable DNS name, so a restarted pod keeps
            // its identity (and its segments) in Helix; Pinot's default (false) uses the pod IP.
            ("pinot.set.instance.id.to.hostname", "true".into()),
        ];
        match self {
            Role::Controller => props.extend([
                // Read when `pinot.cluster.name` is absent, and required by the config file
                // check of `StartController` (`PinotConfigUtils.validateControllerConfig`).
                ("controller.helix.cluster.name", cluster.into()),
                ("controller.zk.str", zookeeper.into()),
                ("controller.port", "9000".into()),
                (CONTROLLER_DATA_DIR_KEY, format!("{data}/deepstore")),
                // Required when `controller.data.dir` is a deep-store URI.
                ("controller.local.temp.dir", format!("{data}/temp")),
                // No `controller.vip.*`: each controller is its own VIP (the chart's default).
                // With a local data dir, the download URL written into each segment's metadata
                // must name the controller that holds the file, not a load-balanced Service.
                ("controller.enable.batch.message.mode", "false".into()),
                // Minion task generation never runs without it (default false).
                ("controller.task.scheduler.enabled", "true".into()),
            ]),
            Role::Broker => props.extend([
                ("pinot.broker.client.queryPort", "8099".into()),
                ("pinot.broker.routing.table.builder.class", "random".into()),
                ("pinot.query.runner.port", QUERY_RUNNER_PORT.to_string()),
            ]),
            Role::Server => props.extend([
                ("pinot.server.netty.port", "8098".into()),
                ("pinot.server.adminapi.port", "8097".into()),
                ("pinot.server.instance.dataDir", format!("{data}/index")),
                ("pinot.server.instance.segmentTarDir", format!("{data}/segment")),
                ("pinot.server.instance.realtime.alloc.offheap", "true".into()),
                ("pinot.query.server.port", QUERY_SERVER_PORT.to_string()),
                ("pinot.query.runner.port", QUERY_RUNNER_PORT.to_string()),
            ]),
            Role::Minion => {
                props.extend([("pinot.minion.port", "9514".into()), (MINION_DATA_DIR_KEY, format!("{data}/minion"))])
            }
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Keys a pool's `config` may not set, in any spelling Pinot reads as the same key, and
    /// what owns each. `controller.data.dir` and the minion's `dataDir` are not listed: a pool
    /// may set them to a place the operator allows (see `validate`).
    pub fn owned_keys(self) -> Vec<(&'static str, OwnedBy)> {
        let mut keys = vec![
            ("pinot.cluster.name", OwnedBy::ClusterName),
            ("controller.helix.cluster.name", OwnedBy::ClusterName),
            ("pinot.zk.server", OwnedBy::Zookeeper),
            ("controller.zk.str", OwnedBy::Zookeeper),
            ("pinot.set.instance.id.to.hostname", OwnedBy::InstanceId),
        ];
        keys.extend(match self {
            Role::Controller => vec![
                ("controller.port", OwnedBy::Port),
                ("controller.host", OwnedBy::InstanceId),
                ("pinot.controller.instance.id", OwnedBy::InstanceId),
            ],
            Role::Broker => vec![
                ("pinot.broker.client.queryPort", OwnedBy::Port),
                ("pinot.query.runner.port", OwnedBy::Port),
                ("pinot.broker.hostname", OwnedBy::InstanceId),
                ("pinot.query.runner.hostname", OwnedBy::InstanceId),
                ("pinot.broker.instance.id", OwnedBy::InstanceId),
                ("instanceId", OwnedBy::InstanceId),
            ],
            Role::Server => vec![
                ("pinot.server.netty.port", OwnedBy::Port),
                ("pinot.server.adminapi.port", OwnedBy::Port),
                ("pinot.query.server.port", OwnedBy::Port),
                ("pinot.query.runner.port", OwnedBy::Port),
                ("pinot.server.netty.host", OwnedBy::InstanceId),
                ("pinot.query.runner.hostname", OwnedBy::InstanceId),
                ("pinot.server.instance.id", OwnedBy::InstanceId),
                ("pinot.server.instance.dataDir", OwnedBy::DataDir),
                ("pinot.server.instance.segmentTarDir", OwnedBy::DataDir),
            ],
            Role::Minion => vec![
                ("pinot.minion.port", OwnedBy::Port),
                ("pinot.minion.host", OwnedBy::InstanceId),
                ("pinot.minion.instance.id", OwnedBy::InstanceId),
                ("instanceId", OwnedBy::InstanceId),
            ],
        });
        keys
    }

    /// Seconds the startup probe gives the role before the liveness probe takes over. A
    /// server's liveness path answers once its admin API runs, early in its start; it is
    /// given its whole `pinot.server.startup.timeoutMs` (the time Pinot itself allows for the
    /// start) and a minute more all the same. A broker's `/health` stays 503 until the routing
    /// of all its tables has converged, with no time limit in Pinot: ten minutes. Controllers
    /// and minions: five.
    pub fn startup_budget_seconds(self, config: &BTreeMap<String, String>) -> u64 {
        match self {
            Role::Server => {
                ms_to_seconds(
                    config_millis(config, SERVER_STARTUP_TIMEOUT_KEY).unwrap_or(DEFAULT_SERVER_STARTUP_TIMEOUT_MS),
                ) + 60
            }
            Role::Broker => 600,
            Role::Controller | Role::Minion => 300,
        }
    }

    /// `terminationGracePeriodSeconds`: Pinot stops inside a JVM shutdown hook on SIGTERM, and
    /// Kubernetes kills the process when the grace period ends. A server's stop waits for
    /// queries to end, bounded by `pinot.server.shutdown.timeoutMs` (default 600 s), then
    /// leaves Helix, unloads its segments and closes its file systems: that timeout plus 30 s.
    /// A broker answers queries for `pinot.broker.delayShutdownTimeMs` (default 10 s) after it
    /// left the routing, then closes its handlers: that delay plus 20 s. Controllers and minions
    /// have no drain step: 30 s, the chart's default.
    pub fn termination_grace_seconds(self, config: &BTreeMap<String, String>) -> i64 {
        let seconds = match self {
            Role::Server => {
                ms_to_seconds(
                    config_millis(config, SERVER_SHUTDOWN_TIMEOUT_KEY).unwrap_or(DEFAULT_SERVER_SHUTDOWN_TIMEOUT_MS),
                ) + 30
            }
            Role::Broker => {
                ms_to_seconds(
                    config_millis(config, BROKER_DELAY_SHUTDOWN_KEY).unwrap_or(DEFAULT_BROKER_DELAY_SHUTDOWN_MS),
                ) + 20
            }
            Role::Controller | Role::Minion => 30,
        };
        i64::try_from(seconds).unwrap_or(i64::MAX)
    }

    /// Keys whose value the operator sizes probes or grace periods from: they must be
    /// whole milliseconds.
    pub fn timing_keys(self) -> &'static [&'static str] {
        match self {
            Role::Server => &[SERVER_STARTUP_TIMEOUT_KEY, SERVER_SHUTDOWN_TIMEOUT_KEY],
            Role::Broker => &[BROKER_DELAY_SHUTDOWN_KEY],
            Role::Controller | Role::Minion => &[],
        }
    }

    /// Container requests when the pool sets no `resources`, so Pinot pods are not
    /// BestEffort (the first evicted under node pressure): memory from the JVM's maximum heap
    /// (`-Xmx` of `jvm_opts`, the role's default heap if there is none), a quarter more for
    /// metaspace, threads and buffers (the chart's 1.25Gi for its 1G heaps); a server twice its
    /// heap, since its consuming segments and query buffers live off the heap. CPU: a core for
    /// a server and half of one for a broker, which run the queries; a quarter for a controller
    /// or a minion, mostly idle between periodic and minion tasks. No limits: a memory limit
    /// below what the JVM and its memory-mapped segments use gets the pod killed, and a CPU
    /// limit throttles queries.
    pub fn default_requests(self, jvm_opts: &str) -> (String, String) {
        let heap_mib = max_heap_mib(jvm_opts)
            .or_else(|| max_heap_mib(self.default_jvm_opts()))
            .expect("every role's default JVM options set -Xmx");
        let with_overhead = heap_mib.saturating_add(heap_mib / 4);
        let (cpu, memory_mib) = match self {
            Role::Server => ("1", heap_mib.saturating_mul(2)),
            Role::Broker => ("500m", with_overhead),
            Role::Controller | Role::Minion => ("250m", with_overhead),
        };
        (cpu.to_string(), format!("{memory_mib}Mi"))
    }
}

fn ms_to_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The value of `key` in a pool's config as whole milliseconds; `None` when absent or not a
/// number (validation reports the latter).
pub fn config_millis(config: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    config_value(config, key).and_then(|(_, v)| v.trim().parse().ok())
}

/// A key as Pinot compares keys: without '-' and '_', lower case
/// (`PinotConfiguration.relaxPropertyName`, 1.2.0 and master). `pinot.broker.client.query-port`
/// and `Pinot.Broker.Client.QueryPort` are both `pinot.broker.client.queryport`. Two keys of one
/// file that relax to the same key make Pinot's start fail (its `Collectors.toMap` has no merge
/// function).
pub fn relaxed_key(key: &str) -> String {
    key.replace(['-', '_'], "").to_lowercase()
}

/// Whether Pinot reads `key` as one under any of `prefixes` (each relaxed like the key).
pub fn under_any(key: &str, prefixes: &[&str]) -> bool {
    let relaxed = relaxed_key(key);
    prefixes.iter().any(|p| relaxed.starts_with(&relaxed_key(p)))
}

/// The entry of `config` Pinot reads for `key`, in whatever spelling it was written.
pub fn config_value<'a>(config: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a str, &'a str)> {
    let relaxed = relaxed_key(key);
    config.iter().find(|(k, _)| relaxed_key(k) == relaxed).map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Whether JVM options set the system property `name` (`-Dname=...` or `-Dname`).
pub fn sets_system_property(jvm_opts: &str, name: &str) -> bool {
    jvm_opts.split_whitespace().any(|o| {
        o.strip_prefix("-D")
            .and_then(|o| o.strip_prefix(name))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
}

/// The maximum heap `-Xmx<size>` of JVM options in MiB (the last one wins, as in the JVM).
pub fn max_heap_mib(jvm_opts: &str) -> Option<u64> {
    let size = jvm_opts.split_whitespace().filter_map(|o| o.strip_prefix("-Xmx")).next_back()?;
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = digits.parse().ok()?;
    let bytes = match unit {
        "" => n,
        "k" | "K" => n.checked_mul(1 << 10)?,
        "m" | "M" => n.checked_mul(1 << 20)?,
        "g" | "G" => n.checked_mul(1 << 30)?,
        "t" | "T" => n.checked_mul(1 << 40)?,
        _ => return None,
    };
    Some((bytes >> 20).max(1))
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the four role names.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(UnknownRole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relaxed_as_pinot_relaxes_them() {
        for same in
            ["pinot.broker.client.queryPort", "pinot.broker.client.query-port", "PINOT.BROKER.CLIENT.QUERY_PORT"]
        {
            assert_eq!(relaxed_key(same), "pinot.broker.client.queryport", "{same}");
        }
        assert_ne!(relaxed_key("pinot.broker.client.queryport"), relaxed_key("pinot.broker.client.query.port"));
        let config = BTreeMap::from([("pinot.server.shutdown.timeout-ms".to_string(), "20000".to_string())]);
        assert_eq!(
            config_value(&config, SERVER_SHUTDOWN_TIMEOUT_KEY),
            Some(("pinot.server.shutdown.timeout-ms", "20000"))
        );
        assert_eq!(config_millis(&config, SERVER_SHUTDOWN_TIMEOUT_KEY), Some(20_000));
        assert_eq!(config_millis(&config, SERVER_STARTUP_TIMEOUT_KEY), None);
    }

    #[test]
    fn heaps_are_read_from_jvm_options() {
        assert_eq!(max_heap_mib("-Xms1G -Xmx4G"), Some(4096));
        assert_eq!(max_heap_mib("-Xmx512m -XX:+UseG1GC -Xmx768M"), Some(768));
        assert_eq!(max_heap_mib("-Xmx2147483648"), Some(2048));
        assert_eq!(max_heap_mib("-XX:MaxRAMPercentage=75"), None);
        assert_eq!(max_heap_mib("-Xmx4Q"), None);
        assert_eq!(Role::Broker.default_requests(""), ("500m".into(), "1280Mi".into()));
        assert_eq!(Role::Server.default_requests("-Xmx4G"), ("1".into(), "8192Mi".into()));
        assert_eq!(Role::Controller.default_requests("-XX:MaxRAMPercentage=75"), ("250m".into(), "1280Mi".into()));
    }

    #[test]
    fn system_properties_are_found_in_jvm_options() {
        assert!(sets_system_property("-Xmx1G -Dlog4j2.configurationFile=/x.xml", "log4j2.configurationFile"));
        assert!(sets_system_property("-Djute.maxbuffer", "jute.maxbuffer"));
        assert!(!sets_system_property("-Djute.maxbuffer.other=1", "jute.maxbuffer"));
        assert!(!sets_system_property("-Xmx1G", "plugins.dir"));
    }

    #[test]
    fn grace_periods_and_startup_budgets_follow_pinots_timeouts() {
        let none = BTreeMap::new();
        assert_eq!(Role::Server.termination_grace_seconds(&none), 630);
        assert_eq!(Role::Broker.termination_grace_seconds(&none), 30);
        assert_eq!(Role::Controller.termination_grace_seconds(&none), 30);
        assert_eq!(Role::Server.startup_budget_seconds(&none), 660);
        let quick = BTreeMap::from([
            (SERVER_SHUTDOWN_TIMEOUT_KEY.to_string(), "45500".to_string()),
            (SERVER_STARTUP_TIMEOUT_KEY.to_string(), "120000".to_string()),
            (BROKER_DELAY_SHUTDOWN_KEY.to_string(), "60000".to_string()),
        ]);
        assert_eq!(Role::Server.termination_grace_seconds(&quick), 46 + 30);
        assert_eq!(Role::Server.startup_budget_seconds(&quick), 180);
        assert_eq!(Role::Broker.termination_grace_seconds(&quick), 80);
    }
}
