//! The four Pinot roles and what each needs: ports, health paths, start command, default
//! configuration and JVM options.

use std::{fmt, str::FromStr};

/// A Pinot role. The order of the variants is the default deployment order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Controller,
    Broker,
    Server,
    Minion,
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
            Role::Broker => &[("http", 8099)],
            Role::Server => &[("netty", 8098), ("admin", 8097)],
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

    /// The path the liveness probe asks.
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

    /// Pinot configuration the role needs, before the pool's own properties are merged over
    /// it. `cluster` is the Helix cluster name, `zookeeper` the connect string and
    /// `controller_host` the in-cluster DNS name of the controller Service.
    pub fn default_config(self, cluster: &str, zookeeper: &str, controller_host: &str) -> Vec<(String, String)> {
        let data = self.data_dir();
        let mut props: Vec<(&str, String)> = vec![
            ("pinot.cluster.name", cluster.into()),
            ("pinot.zk.server", zookeeper.into()),
            // Instance ids are built from the pod's stable DNS name, so a restarted pod keeps
            // its identity (and its segments) in Helix.
            ("pinot.set.instance.id.to.hostname", "true".into()),
        ];
        match self {
            Role::Controller => props.extend([
                ("controller.helix.cluster.name", cluster.into()),
                ("controller.zk.str", zookeeper.into()),
                ("controller.port", "9000".into()),
                ("controller.data.dir", format!("{data}/deepstore")),
                ("controller.local.temp.dir", format!("{data}/temp")),
                ("controller.vip.host", controller_host.into()),
                ("controller.vip.port", "9000".into()),
                ("controller.enable.batch.message.mode", "false".into()),
            ]),
            Role::Broker => props.extend([
                ("pinot.broker.client.queryPort", "8099".into()),
                ("pinot.broker.routing.table.builder.class", "random".into()),
            ]),
            Role::Server => props.extend([
                ("pinot.server.netty.port", "8098".into()),
                ("pinot.server.adminapi.port", "8097".into()),
                ("pinot.server.instance.dataDir", format!("{data}/index")),
                ("pinot.server.instance.segmentTarDir", format!("{data}/segment")),
                ("pinot.server.instance.realtime.alloc.offheap", "true".into()),
            ]),
            Role::Minion => props.extend([("pinot.minion.port", "9514".into()), ("dataDir", format!("{data}/minion"))]),
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
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
