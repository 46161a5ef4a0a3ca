//! The simulated kubelet: pods bound to a simulated node become Running and Ready after a
//! delay; deleted pods are finalized after a short shutdown, as a kubelet does once the
//! containers have stopped (without it they would stay Terminating for ever).
//!
//! A Pinot pod of a PinotCluster also drives its simulated Pinot process: it starts when the pod
//! becomes Ready (`SimState::pod_ready`, with the pod's image, which says the Pinot release),
//! gets SIGTERM when the pod gets its deletionTimestamp (`SimState::pod_terminating`) and is gone
//! when the kubelet finalizes the pod, or when the pod disappears otherwise
//! (`SimState::pod_finalized`).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;

use super::{DataPlaneConfig, Error, NodeFleet};
use crate::pinot_sim::{
    ClusterKey, InstanceRole, SimPod, SimState,
    zookeeper::{EnsembleKey, MemberSpec},
};

/// Pod annotation: milliseconds this pod takes to become Ready, instead of the default.
pub const ANNOTATION_READY_AFTER_MS: &str = "sim.pinot.controlplane.dev/ready-after-ms";
/// Pod annotation: milliseconds this pod takes to shut down once deleted, instead of the default.
pub const ANNOTATION_SHUTDOWN_AFTER_MS: &str = "sim.pinot.controlplane.dev/shutdown-after-ms";
/// Pod annotation `"true"`: the pod runs but never becomes Ready (a broken build).
pub const ANNOTATION_BROKEN: &str = "sim.pinot.controlplane.dev/broken";
/// Pod annotation: the restart count the pod's containers report.
pub const ANNOTATION_RESTARTS: &str = "sim.pinot.controlplane.dev/restarts";
/// Pod annotation: milliseconds this Pinot server takes to load its segments once started,
/// instead of its simulated cluster's `segmentsLoadMs`.
pub const ANNOTATION_SEGMENTS_LOAD_MS: &str = "sim.pinot.controlplane.dev/segments-load-ms";

/// Whether an image is one the simulation treats as broken: its tag is `broken` or ends in
/// `-broken` (e.g. `apachepinot/pinot:1.3.0-broken`).
pub fn image_is_broken(image: &str) -> bool {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
    tag == "broken" || tag.ends_with("-broken")
}

fn pod_is_broken(pod: &Pod) -> bool {
    pod.annotations().get(ANNOTATION_BROKEN).is_some_and(|v| v == "true")
        || pod
            .spec
            .as_ref()
            .is_some_and(|s| s.containers.iter().any(|c| c.image.as_deref().is_some_and(image_is_broken)))
}

/// The stable host name of a pod with a subdomain: `<pod>.<subdomain>.<ns>.svc.<domain>`.
pub fn pod_host_name(pod: &str, subdomain: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{pod}.{subdomain}.{namespace}.svc.{cluster_domain}")
}

/// The ensemble of a managed ZooKeeper member's pod: (namespace, StatefulSet name).
fn zookeeper_identity(pod: &Pod) -> Option<EnsembleKey> {
    if pod.labels().get("pinot.controlplane.dev/role").map(String::as_str) != Some("zookeeper") {
        return None;
    }
    let cluster = pod.labels().get("pinot.controlplane.dev/cluster")?;
    Some((pod.namespace()?, format!("{cluster}-zookeeper")))
}

/// What the member's process reads from its pod: the `zookeeper` container's environment.
fn member_spec(pod: &Pod, zone: Option<String>) -> Option<MemberSpec> {
    let spec = pod.spec.as_ref()?;
    let container = spec.containers.iter().find(|c| c.name == "zookeeper")?;
    let env = |name: &str| {
        container.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone()).unwrap_or_default()
    };
    Some(MemberSpec {
        pod: pod.name_any(),
        uid: pod.uid()?,
        ordinal: pod.name_any().rsplit_once('-')?.1.parse().ok()?,
        servers: env("ZOO_SERVERS"),
        whitelist: env("ZOO_4LW_COMMANDS_WHITELIST"),
        zone,
        image: container.image.clone().unwrap_or_default(),
    })
}

/// The Pinot cluster, role and stable host name of a pod the operator created, if it is one.
fn pinot_identity(pod: &Pod, cluster_domain: &str) -> Option<(ClusterKey, InstanceRole, String)> {
    let cluster = pod.labels().get("pinot.controlplane.dev/cluster")?.clone();
    let role = InstanceRole::parse(pod.labels().get("pinot.controlplane.dev/role")?)?;
    let ns = pod.namespace()?;
    let subdomain = pod.spec.as_ref()?.subdomain.clone()?;
    let host = pod_host_name(&pod.name_any(), &subdomain, &ns, cluster_domain);
    Some(((ns, cluster), role, host))
}

/// What the simulated Pinot process learns of its pod: name, uid, the image of its `pinot`
/// container (else its first container), the segment load time annotation and its node's zone.
fn sim_pod(pod: &Pod, zone: Option<String>) -> SimPod {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let image = containers
        .iter()
        .find(|c| c.name == "pinot")
        .or(containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    SimPod {
        basic_auth: None,
        https_only: false,
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        image,
        segments_load: annotated_delay(pod, ANNOTATION_SEGMENTS_LOAD_MS),
        zone,
    }
}

#[derive(Clone)]
pub struct Kubelet {
    client: Client,
    fleet: NodeFleet,
    readiness_delay: Duration,
    shutdown_delay: Duration,
    /// The cluster DNS domain of pods' host names (`cluster.local`).
    cluster_domain: String,
    /// Pod uids with a start or a shutdown under way, so watch events do not repeat them.
    in_flight: Arc<Mutex<HashSet<(String, &'static str)>>>,
    next_ip: Arc<AtomicU32>,
    /// The simulated Pinot controllers: a Ready Pinot pod is a live instance.
    pinot: Arc<SimState>,
}

impl Kubelet {
    pub fn new(client: Client, fleet: NodeFleet, config: &DataPlaneConfig, pinot: Arc<SimState>) -> Self {
        Self {
            client,
            fleet,
            readiness_delay: config.readiness_delay,
            shutdown_delay: config.shutdown_delay,
            cluster_domain: config.cluster_domain.clone(),
            in_flight: Arc::default(),
            next_ip: Arc::new(AtomicU32::new(1)),
            pinot,
        }
    }

    pub async fn run(&self) -> Result<(), Error> {
        let api: Api<Pod> = Api::all(self.client.clone());
        // A zone that comes back: its kubelet looks at its pods again (no watch event says so).
        let mut zones = self.pinot.zone_changes();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match zones.recv().await {
                    Ok((zone, false)) => this.zone_back(&zone).await,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => self.handle(pod),
                // Gone without the kubelet finalizing it (e.g. deleted with grace 0): so is its
                // process.
                Ok(watcher::Event::Delete(pod)) => self.process_gone(&pod),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(e) => tracing::warn!(error = %e, "pod watch error; retrying"),
            }
        }
        Ok(())
    }

    /// The Pinot process of a pod is gone (the kubelet finalized the pod, or it vanished).
    fn process_gone(&self, pod: &Pod) {
        if let (Some((key, _, _)), Some(uid)) = (pinot_identity(pod, &self.cluster_domain), pod.uid()) {
            self.pinot.pod_finalized(&key, &uid);
        }
        if let (Some(key), Some(uid)) = (zookeeper_identity(pod), pod.uid()) {
            self.pinot.zookeeper.stop_member(&key, &uid);
        }
    }

    /// A ZooKeeper member's pod runs: its process listens on the pod's IP (unless its image is
    /// broken: the JVM exits), and the pod is Ready while the member serves, as its readiness
    /// probe (`srvr` shows a mode) says.
    async fn run_member(&self, pod: &Pod, key: EnsembleKey, ip: String, zone: Option<String>) {
        let Some(uid) = pod.uid() else { return };
        if !pod_is_broken(pod)
            && let Some(spec) = member_spec(pod, zone)
        {
            self.pinot.zookeeper.start_member(key.clone(), &ip, spec).await;
        }
        if !self.claim(&uid, "probe") {
            return;
        }
        let this = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(this.client.clone(), &key.0);
            let mut ready: Option<bool> = None;
            loop {
                // The pod is gone, or deleted (its process stopped): the probe ends.
                match api.get_opt(&pod.name_any()).await {
                    Ok(Some(p)) if p.uid() == Some(uid.clone()) && p.metadata.deletion_timestamp.is_none() => {}
                    Ok(_) => break,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
                let serving = !pod_is_broken(&pod) && this.pinot.zookeeper.serving(&key, &pod.name_any());
                if ready != Some(serving) {
                    let now = Timestamp::now().to_string();
                    let status = if serving { "True" } else { "False" };
                    let patch = json!({"status": {
                        "conditions": [
                            {"type": "Ready", "status": status, "lastTransitionTime": now},
                            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
                        ],
                        "containerStatuses": pod.spec.as_ref().map(|s| s.containers.iter().map(|c| {
                            let image = c.image.clone().unwrap_or_default();
                            json!({"name": c.name, "image": image, "imageID": format!("sim://{image}"),
                                "containerID": format!("sim://{uid}/{}", c.name), "ready": serving, "started": true,
                                "restartCount": 0, "state": {"running": {"startedAt": now}}})
                        }).collect::<Vec<_>>()),
                    }});
                    if api
                        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(&patch))
                        .await
                        .is_ok()
                    {
                        ready = Some(serving);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            this.release(&uid, "probe");
        });
    }

    /// The ZooKeeper a Pinot pod connects to, when it is a simulated ensemble: (ensemble,
    /// chroot). Controllers read `pinot.zk.server` (else `controller.zk.str`) from their file,
    /// the other roles `-zkAddress`.
    async fn pinot_zookeeper(&self, pod: &Pod, role: InstanceRole) -> Option<(EnsembleKey, String)> {
        let ns = pod.namespace()?;
        let connect = match role {
            InstanceRole::Controller => {
                let props = self.controller_properties(pod).await?;
                props.get("pinot.zk.server").or_else(|| props.get("controller.zk.str"))?.clone()
            }
            _ => {
                let args = pod.spec.as_ref()?.containers.iter().find(|c| c.name == "pinot")?.args.clone()?;
                let at = args.iter().position(|a| a == "-zkAddress")?;
                args.get(at + 1)?.clone()
            }
        };
        let (hosts, chroot) = match connect.find('/') {
            Some(i) => (&connect[..i], connect[i..].to_string()),
            None => (connect.as_str(), String::new()),
        };
        let host = hosts.split(',').next()?.split(':').next()?;
        // Only the cluster's managed ensemble (its client Service `<cluster>-zookeeper`) is
        // modelled; any other connect string is an ensemble that always serves.
        let cluster = pod.labels().get("pinot.controlplane.dev/cluster")?;
        (host == format!("{cluster}-zookeeper")).then(|| ((ns, host.to_string()), chroot))
    }

    /// The zone's nodes report again: every pod on them is handled as on a kubelet's start (a
    /// pod that was Ready starts its process again and is made Ready again, a deleted one is
    /// finalized).
    async fn zone_back(&self, zone: &str) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let pods = match api.list(&Default::default()).await {
            Ok(pods) => pods.items,
            Err(e) => {
                tracing::warn!(zone, error = %e, "listing pods after the zone came back failed");
                return;
            }
        };
        for pod in pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            if node.and_then(|n| self.fleet.get(&n)).is_some_and(|n| n.zone == zone) {
                let mut pod = pod;
                // The process is not running: it starts again, and the pod is Ready once it does.
                if pod.metadata.deletion_timestamp.is_none()
                    && let Some(status) = pod.status.as_mut()
                {
                    status.conditions = None;
                }
                self.handle(pod);
            }
        }
    }

    fn handle(&self, pod: Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { return };
        let Some(zone) = self.fleet.get(&node).map(|n| n.zone.clone()) else { return };
        // A lost zone's kubelet does nothing: its pods stay as they are, deleted ones Terminating.
        if self.pinot.zone_lost(&zone) {
            return;
        }
        let Some(uid) = pod.uid() else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            // SIGTERM: the Pinot process starts its shutdown (a server drains, still live).
            if let Some((key, _, _)) = pinot_identity(&pod, &self.cluster_domain) {
                self.pinot.pod_terminating(&key, &uid);
            }
            // ZooKeeper stops at once on SIGTERM.
            if let Some(key) = zookeeper_identity(&pod) {
                self.pinot.zookeeper.stop_member(&key, &uid);
            }
            if self.claim(&uid, "stop") {
                let delay = annotated_delay(&pod, ANNOTATION_SHUTDOWN_AFTER_MS).unwrap_or(self.shutdown_delay);
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // Its zone was lost meanwhile: the pod stays Terminating until it is back.
                    if !this.pinot.zone_lost(&zone) {
                        // The containers have stopped: the process is gone before the pod is.
                        this.process_gone(&pod);
                        this.finalize(&pod, &uid).await;
                    }
                    this.release(&uid, "stop");
                });
            }
        } else if is_running_and_ready(&pod) {
            // Also after a restart of the data plane: the simulated cluster learns its live
            // instances again from the pods (a process that already runs is left alone).
            if let Some((key, role, host)) = pinot_identity(&pod, &self.cluster_domain) {
                self.pinot.pod_ready(key, role, &host, &sim_pod(&pod, Some(zone)));
            }
        } else if is_running(&pod)
            && let Some(key) = zookeeper_identity(&pod)
        {
            // Also after a restart of the data plane: the member runs again on its IP.
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            let this = self.clone();
            tokio::spawn(async move { this.run_member(&pod, key, ip, Some(zone)).await });
        } else if is_running(&pod) && pod_is_broken(&pod) {
            // Running, and never Ready: nothing to do until it is deleted.
        } else if self.claim(&uid, "start") {
            let delay = annotated_delay(&pod, ANNOTATION_READY_AFTER_MS).unwrap_or(self.readiness_delay);
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                this.start(&pod, &node).await;
                this.release(&uid, "start");
            });
        }
    }

    /// The basic auth a controller pod's Pinot would run with, read as Pinot reads it: its
    /// properties file (the ConfigMap of its `config` volume), `${env:NAME}` values from the
    /// container's environment (a value, or a Secret's key). `None` unless the file names
    /// `BasicAuthAccessControlFactory`; principals whose password cannot be resolved are left out.
    /// The controller pod's properties as Pinot reads them (keys lower-cased: Pinot matches
    /// them relaxed), from the ConfigMap of its `config` volume.
    async fn controller_properties(&self, pod: &Pod) -> Option<std::collections::BTreeMap<String, String>> {
        let ns = pod.namespace()?;
        let spec = pod.spec.as_ref()?;
        let configmap = spec.volumes.iter().flatten().find(|v| v.name == "config")?.config_map.as_ref()?.name.clone();
        let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(self.client.clone(), &ns)
            .get(&configmap)
            .await
            .ok()?;
        let text = cm.data?.get("pinot-controller.conf")?.clone();
        Some(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect(),
        )
    }

    async fn controller_basic_auth(
        &self,
        pod: &Pod,
        props: &std::collections::BTreeMap<String, String>,
    ) -> Option<Vec<crate::pinot_sim::state::Principal>> {
        use base64::Engine as _;
        let ns = pod.namespace()?;
        let spec = pod.spec.as_ref()?;
        let prefix = "controller.admin.access.control";
        if props.get(&format!("{prefix}.factory.class")).map(String::as_str)
            != Some("org.apache.pinot.controller.api.access.BasicAuthAccessControlFactory")
        {
            return None;
        }
        let container = spec.containers.iter().find(|c| c.name == "pinot")?;
        let mut principals = Vec::new();
        for name in props.get(&format!("{prefix}.principals"))?.split(',').map(str::trim) {
            let key = |k: &str| format!("{prefix}.principals.{name}.{k}").to_ascii_lowercase();
            let Some(raw) = props.get(&key("password")) else { continue };
            let password = match raw.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
                Some(var) => self.env_value(&ns, container, var).await,
                None => Some(raw.clone()),
            };
            let Some(password) = password else { continue };
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}")).replace('=', "");
            let list = |k: &str| -> Vec<String> {
                props
                    .get(&key(k))
                    .map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty() && x != "*").collect())
                    .unwrap_or_default()
            };
            principals.push(crate::pinot_sim::state::Principal {
                name: name.to_string(),
                token: format!("Basic {token}"),
                permissions: list("permissions").into_iter().map(|p| p.to_ascii_uppercase()).collect(),
                tables: list("tables"),
            });
        }
        Some(principals)
    }

    /// The value an environment variable of `container` has: its value, or the Secret key it
    /// names.
    async fn env_value(
        &self,
        ns: &str,
        container: &k8s_openapi::api::core::v1::Container,
        var: &str,
    ) -> Option<String> {
        let e = container.env.iter().flatten().find(|e| e.name == var)?;
        if let Some(v) = &e.value {
            return Some(v.clone());
        }
        let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
        let secret =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client.clone(), ns).get(&r.name).await.ok()?;
        let bytes = secret.data?.get(&r.key)?.0.clone();
        String::from_utf8(bytes).ok()
    }

    fn claim(&self, uid: &str, what: &'static str) -> bool {
        self.in_flight.lock().expect("in-flight set poisoned").insert((uid.to_string(), what))
    }

    fn release(&self, uid: &str, what: &'static str) {
        self.in_flight.lock().expect("in-flight set poisoned").remove(&(uid.to_string(), what));
    }

    /// Writes the status a kubelet writes once every container runs and passes its probes.
    async fn start(&self, pod: &Pod, node: &str) {
        let Some(ns) = pod.namespace() else { return };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let host_ip = self.fleet.get(node).map(|n| n.ip.clone()).unwrap_or_default();
        let zookeeper = zookeeper_identity(pod);
        let pod_ip = match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            Some(ip) => ip,
            None => {
                let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
                // A ZooKeeper member listens on its pod IP, which the operator connects to:
                // a loopback address here.
                let net = if zookeeper.is_some() { "127.77" } else { "10.244" };
                format!("{net}.{}.{}", (n / 250) % 250, n % 250 + 2)
            }
        };
        let now = Timestamp::now().to_string();
        let uid = pod.uid().unwrap_or_default();
        // A broken pod runs but never passes its readiness probe; a ZooKeeper member is ready
        // while it serves (`run_member`).
        let ready = !pod_is_broken(pod) && zookeeper.is_none();
        // Pinot does not start without its ZooKeeper serving its chroot (Helix reads the
        // cluster under it): the container exits and is restarted until it does.
        if let Some((key, role, _)) = pinot_identity(pod, &self.cluster_domain)
            && let Some((ensemble, chroot)) = self.pinot_zookeeper(pod, role).await
        {
            let _ = key;
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            while !self.pinot.zookeeper.serves_chroot(&ensemble, &chroot) {
                match api.get_opt(&pod.name_any()).await {
                    Ok(Some(p)) if p.uid() == pod.uid() && p.metadata.deletion_timestamp.is_none() => {}
                    Ok(_) => return,
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let restarts: i32 = pod.annotations().get(ANNOTATION_RESTARTS).and_then(|v| v.parse().ok()).unwrap_or(0);
        // Pinot joins its cluster before its readiness probe passes (and a server may be Ready
        // before it has loaded its segments and is routable).
        if ready && let Some((key, role, host)) = pinot_identity(pod, &self.cluster_domain) {
            let zone = self.fleet.get(node).map(|n| n.zone.clone());
            let mut sim = sim_pod(pod, zone);
            if role == InstanceRole::Controller
                && let Some(props) = self.controller_properties(pod).await
            {
                sim.basic_auth = self.controller_basic_auth(pod, &props).await;
                // `controller.access.protocols` lists the listeners (ControllerConf, ListenerConfigUtil).
                let protocols = props.get("controller.access.protocols").map(String::as_str).unwrap_or("http");
                sim.https_only = protocols.split(',').map(str::trim).all(|p| p == "https");
            }
            self.pinot.pod_ready(key, role, &host, &sim);
        }
        let containers: Vec<_> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                json!({
                    "name": c.name,
                    "image": image,
                    "imageID": format!("sim://{image}"),
                    "containerID": format!("sim://{uid}/{}", c.name),
                    "ready": ready,
                    "started": true,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
        let patch = json!({"status": {
            "phase": "Running",
            "hostIP": host_ip,
            "podIP": pod_ip,
            "startTime": now,
            "conditions": [condition("Initialized", true), condition("Ready", ready), condition("ContainersReady", ready), condition("PodScheduled", true)],
            "containerStatuses": containers,
        }});
        for attempt in 0..5 {
            match api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    if let Some(key) = zookeeper {
                        let zone = self.fleet.get(node).map(|n| n.zone.clone());
                        self.run_member(pod, key, pod_ip, zone).await;
                    }
                    return;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), attempt, error = %e, "marking pod ready failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    /// The kubelet's final delete once containers have stopped: grace 0, guarded by the uid.
    async fn finalize(&self, pod: &Pod, uid: &str) {
        let Some(ns) = pod.namespace() else { return };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "finalizing pod failed"),
        }
    }
}

fn annotated_delay(pod: &Pod, annotation: &str) -> Option<Duration> {
    pod.annotations().get(annotation).and_then(|v| v.parse().ok()).map(Duration::from_millis)
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else { return false };
    status.phase.as_deref() == Some("Running")
        && status.conditions.as_ref().is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_use_the_cluster_domain() {
        assert_eq!(
            pod_host_name("p-server-0", "p-server-headless", "ns", "cluster.local"),
            "p-server-0.p-server-headless.ns.svc.cluster.local"
        );
        assert_eq!(pod_host_name("p-0", "h", "ns", "corp.example"), "p-0.h.ns.svc.corp.example");
    }

    #[test]
    fn the_pinot_container_names_the_image() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p-0", "uid": "u1", "annotations": {ANNOTATION_SEGMENTS_LOAD_MS: "250"}},
            "spec": {"containers": [
                {"name": "sidecar", "image": "busybox:1"},
                {"name": "pinot", "image": "apachepinot/pinot:1.3.0"},
            ]},
        }))
        .unwrap();
        let p = sim_pod(&pod, Some("zone-a".into()));
        assert_eq!((p.name.as_str(), p.uid.as_str(), p.image.as_str()), ("p-0", "u1", "apachepinot/pinot:1.3.0"));
        assert_eq!(p.segments_load, Some(Duration::from_millis(250)));
        assert_eq!(p.zone.as_deref(), Some("zone-a"));
    }
}
