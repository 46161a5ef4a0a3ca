//! The managed ZooKeeper ensemble's objects: a StatefulSet of the official `zookeeper` image,
//! its headless Service (the members' names in each other's configuration), a client Service
//! (Pinot's connect string) and a PodDisruptionBudget of one member. What the image reads and
//! why each value is what it is: `pinot-facts/zookeeper.md`.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, Probe, ResourceRequirements, Service,
            ServiceSpec, Volume, VolumeMount,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{BuildContext, PodSet, cluster_labels, data_volume, metadata, operator_statefulset, service_ports};
use crate::{
    children::{LABEL_POOL, pool_selector},
    cluster::{
        ensemble::{ANNOTATION_SERVERS, ANNOTATION_ZONES},
        validate::{
            Placement, ValidCluster, ValidEnsemble,
            zookeeper::{
                CLIENT_PORT, ELECTION_PORT, ENSEMBLE_POOL, QUORUM_PORT, client_service_name, headless_service_name,
                statefulset_name,
            },
        },
    },
    role::max_heap_mib,
};

/// The member's container.
pub const ZOOKEEPER_CONTAINER: &str = "zookeeper";
/// The value of the role label on the ensemble's objects.
pub const ZOOKEEPER_ROLE_LABEL: &str = "zookeeper";
/// The four-letter words the operator and the probes use (`srvr` is always allowed).
pub const FOUR_LETTER_WORDS: &str = "srvr,mntr,ruok";
const DATA_DIR: &str = "/data";
const DATA_LOG_DIR: &str = "/datalog";
const LOG_DIR: &str = "/logs";
/// ZooKeeper's timing, as Pinot's chart sets it: 2 s ticks, 20 s for a member to sync with the
/// leader (`initLimit`), dropped after 10 s behind (`syncLimit`).
const TICK_MS: u32 = 2000;
const INIT_LIMIT: u32 = 10;
const SYNC_LIMIT: u32 = 5;

pub fn labels(cluster: &ValidCluster) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(cluster, ZOOKEEPER_ROLE_LABEL);
    labels.insert(LABEL_POOL.to_string(), ENSEMBLE_POOL.to_string());
    labels
}

/// `ZOO_SERVERS` for an ensemble of `members`: `server.<ordinal + 1>=<pod>.<headless>.<ns>.svc:
/// 2888:3888;2181`, space-separated, as the image's entrypoint reads it.
pub fn servers(cluster: &ValidCluster, members: i32) -> String {
    let sts = statefulset_name(&cluster.name);
    let headless = headless_service_name(&cluster.name);
    (0..members.max(1))
        .map(|i| {
            format!(
                "server.{}={sts}-{i}.{headless}.{}.svc:{QUORUM_PORT}:{ELECTION_PORT};{CLIENT_PORT}",
                i + 1,
                cluster.namespace
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn build_headless_service(cluster: &ValidCluster, ctx: &BuildContext) -> Service {
    Service {
        metadata: metadata(headless_service_name(&cluster.name), cluster, labels(cluster), ctx),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Members find each other before any has a quorum (and so is ready).
            publish_not_ready_addresses: Some(true),
            selector: Some(pool_selector(&cluster.name, ENSEMBLE_POOL)),
            ports: Some(service_ports(&[
                ("client", CLIENT_PORT),
                ("quorum", QUORUM_PORT),
                ("election", ELECTION_PORT),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service in Pinot's connect string: the members that serve (ready).
pub fn build_client_service(cluster: &ValidCluster, ctx: &BuildContext) -> Service {
    Service {
        metadata: metadata(client_service_name(&cluster.name), cluster, labels(cluster), ctx),
        spec: Some(ServiceSpec {
            selector: Some(pool_selector(&cluster.name, ENSEMBLE_POOL)),
            ports: Some(service_ports(&[("client", CLIENT_PORT)])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One member may be down at a time, whatever the size: the operator's own restarts wait for
/// the last one to be back in sync, and a node drain waits for the same.
pub fn build_pdb(cluster: &ValidCluster, ctx: &BuildContext) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(statefulset_name(&cluster.name), cluster, labels(cluster), ctx),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(pool_selector(&cluster.name, ENSEMBLE_POOL)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn shell_probe(script: &str, period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(vec!["bash".into(), "-c".into(), script.into()]) }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The ensemble's StatefulSet with `replicas` members whose configuration lists `servers`
/// members (they differ while the operator adds or removes a member).
pub fn build_statefulset(
    cluster: &ValidCluster,
    ensemble: &ValidEnsemble,
    replicas: i32,
    servers_in_config: i32,
    ctx: &BuildContext,
) -> StatefulSet {
    let selector = pool_selector(&cluster.name, ENSEMBLE_POOL);
    let mut pod_labels = ensemble.overrides.labels.clone();
    pod_labels.extend(labels(cluster));
    let env_var = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), ..Default::default() };
    let mut env = vec![
        env_var("ZOO_SERVERS", servers(cluster, servers_in_config)),
        env_var("ZOO_TICK_TIME", TICK_MS.to_string()),
        env_var("ZOO_INIT_LIMIT", INIT_LIMIT.to_string()),
        env_var("ZOO_SYNC_LIMIT", SYNC_LIMIT.to_string()),
        // Spelled as the image's entrypoint reads them (Pinot's own chart misspells them).
        env_var("ZOO_AUTOPURGE_PURGEINTERVAL", "1".into()),
        env_var("ZOO_AUTOPURGE_SNAPRETAINCOUNT", "5".into()),
        env_var("ZOO_4LW_COMMANDS_WHITELIST", FOUR_LETTER_WORDS.into()),
        // A quorum even of one member: every member reports leader or follower.
        env_var("ZOO_STANDALONE_ENABLED", "false".into()),
        env_var("ZOO_ADMINSERVER_ENABLED", "false".into()),
        env_var("ZOO_CFG_EXTRA", "quorumListenOnAllIPs=true".into()),
        env_var("JVMFLAGS", format!("{} -Djute.maxbuffer={}", ensemble.jvm_opts.trim(), ensemble.jute_max_buffer)),
    ];
    for e in &ensemble.overrides.env {
        env.retain(|x| x.name != e.name);
        env.push(e.clone());
    }
    // The id is the ordinal + 1, as `server.<id>` above; the image writes it to /data/myid on a
    // member's first start only.
    let command = vec![
        "bash".into(),
        "-c".into(),
        "export ZOO_MY_ID=$((${HOSTNAME##*-} + 1)) && exec /docker-entrypoint.sh zkServer.sh start-foreground".into(),
    ];
    let ruok = format!("echo ruok | nc -w 2 localhost {CLIENT_PORT} | grep -q imok");
    // Serving: a member without a quorum answers "not currently serving requests" instead.
    let serving = format!(
        "echo srvr | nc -w 2 localhost {CLIENT_PORT} | grep -qE '^Mode: (leader|follower|observer|standalone)'"
    );
    let resources = ensemble.resources.clone().unwrap_or_else(|| {
        let heap = max_heap_mib(&ensemble.jvm_opts).unwrap_or(1024);
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("250m".into())),
                ("memory".to_string(), Quantity(format!("{}Mi", heap + 256))),
            ])),
            ..Default::default()
        }
    });
    let mut volume_mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            sub_path: Some("data".into()),
            ..Default::default()
        },
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_LOG_DIR.into(),
            sub_path: Some("datalog".into()),
            ..Default::default()
        },
        VolumeMount { name: "logs".into(), mount_path: LOG_DIR.into(), ..Default::default() },
    ];
    volume_mounts.extend(ensemble.overrides.volume_mounts.iter().cloned());
    let container = Container {
        name: ZOOKEEPER_CONTAINER.into(),
        image: Some(ensemble.image.clone()),
        command: Some(command),
        env: Some(env),
        env_from: (!ensemble.overrides.env_from.is_empty()).then(|| ensemble.overrides.env_from.clone()),
        ports: Some(
            [("client", CLIENT_PORT), ("quorum", QUORUM_PORT), ("election", ELECTION_PORT)]
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.into()),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        startup_probe: Some(shell_probe(&ruok, 5, 24)),
        liveness_probe: Some(shell_probe(&ruok, 10, 6)),
        readiness_probe: Some(shell_probe(&serving, 5, 2)),
        resources: Some(resources),
        volume_mounts: Some(volume_mounts),
        security_context: ensemble.overrides.container_security_context.clone(),
        ..Default::default()
    };
    let mut volumes =
        vec![Volume { name: "logs".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }];
    let claim_templates = data_volume(ensemble.storage.as_ref(), &selector, &mut volumes);
    let servers_annotation = (ANNOTATION_SERVERS.to_string(), servers_in_config.to_string());
    let mut pod_annotations = ensemble.overrides.annotations.clone();
    pod_annotations.insert(servers_annotation.0.clone(), servers_annotation.1.clone());
    super::restart_stamp(ctx, super::super::validate::zookeeper::ENSEMBLE_POOL, &mut pod_annotations);
    let mut sts_metadata = metadata(statefulset_name(&cluster.name), cluster, labels(cluster), ctx);
    let zones = match &ensemble.placement {
        Placement::Zones(z) => z.join(","),
        Placement::Anywhere => String::new(),
    };
    sts_metadata.annotations = Some(BTreeMap::from([servers_annotation, (ANNOTATION_ZONES.to_string(), zones)]));
    operator_statefulset(PodSet {
        metadata: sts_metadata,
        replicas,
        service_name: headless_service_name(&cluster.name),
        selector,
        pod_labels,
        pod_annotations,
        container,
        volumes,
        claim_templates,
        placement: &ensemble.placement,
        overrides: &ensemble.overrides,
        profile: ensemble.pod_security,
        grace_seconds: 60,
        // The image's user (uid and gid 1000) owns /conf, where the entrypoint writes zoo.cfg;
        // the volumes are made its group's.
        fs_group: Some(1000),
    })
}
