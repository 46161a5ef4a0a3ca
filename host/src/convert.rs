//! `pinot-operator convert`: manifests of the seed operator (datainfrahq's
//! `pinot-control-plane-k8s`, `datainfra.io/v1beta1` kinds `Pinot`, `PinotSchema`,
//! `PinotTable`, `PinotTenant`) as `pinot.controlplane.dev/v1alpha1` resources, with a warning
//! for everything that has no equivalent here.
//!
//! Written from that operator's published CRDs (`config/crd/bases/` and its Helm chart):
//! - `Pinot`: `spec.nodes[]` (`name`, `kind`, `nodeType`, `replicas`, `k8sConfig`,
//!   `pinotNodeConfig`) refer by name to `spec.k8sConfig[]` (image, resources, env, tolerations,
//!   nodeSelector, podMetadata, storageConfig, ...) and `spec.pinotNodeConfig[]` (`java_opts`,
//!   and `data`: the Pinot properties file); `spec.external.zookeeper.spec.zkAddress`;
//!   `spec.external.deepStorage.spec[]` (properties per node type); `spec.deploymentOrder`;
//!   `spec.auth` (basic auth secret); `spec.plugins`.
//! - `PinotSchema` / `PinotTable` / `PinotTenant`: `spec.pinotCluster` and the Pinot JSON as a
//!   string under `schema.json`, `tables.json` (with `pinotSchema`, `pinotTableType`) and
//!   `tenants.json` (with `pinotTenantType`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{
    cluster::validate::data_dir_allowed,
    role::{self, OwnedBy, Role},
};

/// The converted resources and what could not be carried over.
#[derive(Debug, Default)]
pub struct Converted {
    pub resources: Vec<Value>,
    /// `<kind>/<name>: <field>: what happened and what to do`.
    pub warnings: Vec<String>,
}

const SEED_API: &str = "datainfra.io/v1beta1";
const API: &str = "pinot.controlplane.dev/v1alpha1";

/// Converts every `datainfra.io/v1beta1` document of `docs`; other documents are skipped with a
/// warning.
pub fn convert(docs: &[Value]) -> Converted {
    let mut out = Converted::default();
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"].as_str().unwrap_or("<unnamed>").to_string();
        let mut w = Warnings { prefix: format!("{kind}/{name}"), list: &mut out.warnings };
        if doc["apiVersion"].as_str() != Some(SEED_API) {
            w.push("", format!("apiVersion {:?} is not {SEED_API}; skipped", doc["apiVersion"].as_str().unwrap_or("")));
            continue;
        }
        let converted = match kind {
            "Pinot" => cluster(doc, &mut w),
            "PinotSchema" => schema(doc, &mut w),
            "PinotTable" => table(doc, &mut w),
            "PinotTenant" => tenant(doc, &mut w),
            other => {
                w.push("kind", format!("{other:?} has no equivalent; skipped"));
                None
            }
        };
        out.resources.extend(converted);
    }
    out
}

struct Warnings<'a> {
    prefix: String,
    list: &'a mut Vec<String>,
}

impl Warnings<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        self.list.push(if field.is_empty() {
            format!("{}: {message}", self.prefix)
        } else {
            format!("{}: {field}: {message}", self.prefix)
        });
    }
}

/// The resource's metadata that carries over: name, namespace, labels, annotations.
fn metadata(doc: &Value) -> Value {
    let mut m = Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = doc["metadata"].get(key).filter(|v| !v.is_null()) {
            // kubectl's record of the last applied seed object means nothing to the new kind.
            let v = if key == "annotations" {
                let mut a = v.clone();
                if let Some(o) = a.as_object_mut() {
                    o.remove("kubectl.kubernetes.io/last-applied-configuration");
                }
                a
            } else {
                v.clone()
            };
            m.insert(key.into(), v);
        }
    }
    Value::Object(m)
}

/// A JSON document held as a string (`schema.json`, `tables.json`, `tenants.json`).
fn embedded_json(doc: &Value, key: &str, w: &mut Warnings) -> Option<Value> {
    let field = format!("spec.{key}");
    match &doc["spec"][key] {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => Some(v),
            Ok(_) => {
                w.push(&field, "is not a JSON object; the resource was not converted");
                None
            }
            Err(e) => {
                w.push(&field, format!("is not valid JSON ({e}); the resource was not converted"));
                None
            }
        },
        Value::Object(_) => Some(doc["spec"][key].clone()),
        _ => {
            w.push(&field, "is missing; the resource was not converted");
            None
        }
    }
}

/// The cluster a resource belongs to: `pinotCluster` (earlier PinotSchemas: `clusterName`).
fn cluster_of(doc: &Value, w: &mut Warnings) -> Option<Value> {
    match doc["spec"]["pinotCluster"].as_str().or_else(|| doc["spec"]["clusterName"].as_str()) {
        Some(c) => Some(json!(c)),
        None => {
            w.push("spec.pinotCluster", "is missing; the resource was not converted");
            None
        }
    }
}

fn schema(doc: &Value, w: &mut Warnings) -> Option<Value> {
    let cluster = cluster_of(doc, w)?;
    let schema = embedded_json(doc, "schema.json", w)?;
    Some(json!({
        "apiVersion": API, "kind": "PinotSchema", "metadata": metadata(doc),
        "spec": {"cluster": cluster, "schema": schema},
    }))
}

fn table(doc: &Value, w: &mut Warnings) -> Option<Value> {
    let cluster = cluster_of(doc, w)?;
    let mut config = embedded_json(doc, "tables.json", w)?;
    if doc["spec"]["segmentReload"].as_bool() == Some(true) {
        w.push(
            "spec.segmentReload",
            "not carried over: set reloadTablesOnChange on the table's PinotSchema to reload segments after a change",
        );
    }
    let declared = doc["spec"]["pinotTableType"].as_str().unwrap_or_default().to_ascii_lowercase();
    let in_config = config["tableType"].as_str().unwrap_or_default().to_ascii_lowercase();
    let kind = match (declared.as_str(), in_config.as_str()) {
        ("offline" | "realtime", "") => declared.clone(),
        (d, c) if d == c || d.is_empty() => c.to_string(),
        (d, c) => {
            w.push("spec.pinotTableType", format!("is {d:?} but tables.json says tableType {c:?}; tables.json wins"));
            c.to_string()
        }
    };
    if kind != "offline" && kind != "realtime" {
        w.push("spec.pinotTableType", "is neither offline nor realtime; the resource was not converted");
        return None;
    }
    let raw =
        config["tableName"].as_str().map(|n| n.trim_end_matches("_OFFLINE").trim_end_matches("_REALTIME").to_string());
    if let Some(o) = config.as_object_mut() {
        o.insert("tableType".into(), json!(kind.to_ascii_uppercase()));
    }
    let mut spec = json!({"cluster": cluster, kind.as_str(): config});
    if let Some(schema) = doc["spec"]["pinotSchema"].as_str() {
        spec["schemaRef"] = json!(schema);
    }
    if let Some(raw) = raw {
        spec["tableName"] = json!(raw);
    }
    Some(json!({"apiVersion": API, "kind": "PinotTable", "metadata": metadata(doc), "spec": spec}))
}

fn tenant(doc: &Value, w: &mut Warnings) -> Option<Value> {
    let cluster = cluster_of(doc, w)?;
    let body = embedded_json(doc, "tenants.json", w)?;
    let declared = doc["spec"]["pinotTenantType"].as_str().unwrap_or_default().to_ascii_uppercase();
    let role = body["tenantRole"].as_str().map(str::to_ascii_uppercase).unwrap_or(declared.clone());
    if !declared.is_empty() && role != declared {
        w.push(
            "spec.pinotTenantType",
            format!("is {declared:?} but tenants.json says tenantRole {role:?}; tenants.json wins"),
        );
    }
    if role != "SERVER" && role != "BROKER" {
        w.push(
            "spec.tenants.json",
            format!("tenantRole {role:?} is neither SERVER nor BROKER; the resource was not converted"),
        );
        return None;
    }
    let mut spec = json!({"cluster": cluster, "tenantRole": role});
    for (from, to) in [
        ("tenantName", "tenantName"),
        ("numberOfInstances", "numberOfInstances"),
        ("offlineInstances", "offlineInstances"),
        ("realtimeInstances", "realtimeInstances"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            spec[to] = v.clone();
        }
    }
    Some(json!({"apiVersion": API, "kind": "PinotTenant", "metadata": metadata(doc), "spec": spec}))
}

/// What becomes of one seed property of a pool.
enum Carry {
    /// Into the pool's `config`.
    Keep,
    /// Dropped without a word: the operator writes the same.
    Same,
    /// The Helix cluster name (`spec.clusterName`), and whether the key is `pinot.cluster.name`
    /// (which wins over `controller.helix.cluster.name`).
    ClusterName { authoritative: bool },
    /// Dropped, and why.
    Dropped(String),
}

/// Sorts a seed property with the same rules as validation (`Role::owned_keys`, the data
/// directories a pool may choose), in any spelling Pinot reads as the same key.
fn carry(role: Role, key: &str, value: &str, defaults: &BTreeMap<String, String>) -> Carry {
    let relaxed = role::relaxed_key(key);
    let default = defaults.iter().find(|(d, _)| role::relaxed_key(d) == relaxed).map(|(d, v)| (d.as_str(), v.as_str()));
    let owned = role.owned_keys().into_iter().find(|(o, _)| role::relaxed_key(o) == relaxed);
    match owned {
        Some((o, OwnedBy::ClusterName)) => {
            Carry::ClusterName { authoritative: role::relaxed_key(o) == role::relaxed_key("pinot.cluster.name") }
        }
        Some(_) if default.is_some_and(|(_, d)| d == value) => Carry::Same,
        Some((_, OwnedBy::Zookeeper)) => {
            Carry::Dropped(format!("{key}={value} differs from zkAddress; the operator uses spec.zookeeper"))
        }
        Some(_) => Carry::Dropped(match default {
            Some((d, dv)) => format!("{key}={value} not carried over: the operator sets {d}={dv}"),
            None => format!(
                "{key}={value} not carried over: the operator names each instance after its pod ({}_<pod DNS name>_{})",
                role.instance_prefix(),
                role.instance_port()
            ),
        }),
        None if default.is_some_and(|(_, d)| d == value) => Carry::Same,
        None if [role::CONTROLLER_DATA_DIR_KEY, role::MINION_DATA_DIR_KEY]
            .iter()
            .any(|k| role::relaxed_key(k) == relaxed && default.is_some())
            && !data_dir_allowed(role, value) =>
        {
            Carry::Dropped(format!(
                "{key}={value} not carried over: the operator keeps it on the pool's volume ({}={}); a deep store URI is carried over",
                default.map(|(d, _)| d).unwrap_or(key),
                default.map(|(_, v)| v).unwrap_or_default()
            ))
        }
        None => Carry::Keep,
    }
}

/// `key=value` lines of a Java properties text (comments and blank lines skipped).
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn cluster(doc: &Value, w: &mut Warnings) -> Option<Value> {
    let spec = &doc["spec"];
    let by_name = |list: &Value| -> BTreeMap<String, Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["name"].as_str()?.to_string(), c.clone())))
            .collect()
    };
    let k8s = by_name(&spec["k8sConfig"]);
    let pinot_configs = by_name(&spec["pinotNodeConfig"]);
    let zookeeper = spec["external"]["zookeeper"]["spec"]["zkAddress"].as_str().unwrap_or_default().to_string();
    if zookeeper.is_empty() {
        w.push("spec.external.zookeeper.spec.zkAddress", "is missing; set spec.zookeeper.connectString by hand");
    }
    // Deep storage properties per node type go to the pools of that role.
    let mut deep: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for d in spec["external"]["deepStorage"]["spec"].as_array().into_iter().flatten() {
        let t = d["nodeType"].as_str().unwrap_or_default().to_string();
        deep.entry(t).or_default().extend(properties(d["data"].as_str().unwrap_or_default()));
    }
    let nodes = spec["nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        w.push("spec.nodes", "is empty; the cluster has no pools");
    }
    // The image most pools use becomes spec.image; the others override it per pool.
    let mut images: BTreeMap<String, usize> = BTreeMap::new();
    for n in &nodes {
        if let Some(image) = n["k8sConfig"].as_str().and_then(|c| k8s.get(c)).and_then(|c| c["image"].as_str()) {
            *images.entry(image.to_string()).or_default() += 1;
        }
    }
    let image = images.iter().max_by_key(|(_, n)| **n).map(|(i, _)| i.clone()).unwrap_or_default();

    let mut pools = Vec::new();
    // (role, pool, Helix cluster name) of every pool whose properties name one.
    let mut cluster_names: Vec<(Role, String, String)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let at = format!("spec.nodes[{i}]");
        let name = n["name"].as_str().unwrap_or_default();
        let Some(role) = n["nodeType"].as_str().and_then(|t| t.parse::<Role>().ok()) else {
            w.push(
                &format!("{at}.nodeType"),
                format!("{:?} is not a Pinot role; the node was not converted", n["nodeType"]),
            );
            continue;
        };
        if let Some(kind) = n["kind"].as_str()
            && !kind.eq_ignore_ascii_case("StatefulSet")
        {
            w.push(
                &format!("{at}.kind"),
                format!("{kind}: every pool is a StatefulSet here (stable instance ids, ordered upgrades)"),
            );
        }
        let mut pool = json!({"name": name, "role": role.as_str(), "replicas": n["replicas"].as_i64().unwrap_or(1)});
        let mut overrides = Map::new();
        // Deep storage first, then the node's own properties over it.
        let mut seed_properties: Vec<(String, String, String)> = deep
            .get(role.as_str())
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone(), "spec.external.deepStorage".to_string()))
            .collect();
        match n["k8sConfig"].as_str().and_then(|c| k8s.get(c).map(|k| (c, k))) {
            None => w.push(&format!("{at}.k8sConfig"), format!("{:?} names no spec.k8sConfig entry", n["k8sConfig"])),
            Some((cname, k)) => {
                let kat = format!("spec.k8sConfig[{cname}]");
                if let Some(i) = k["image"].as_str().filter(|i| *i != image) {
                    pool["image"] = json!(i);
                }
                if let Some(account) = k["serviceAccountName"].as_str().filter(|a| !a.is_empty()) {
                    overrides.insert("serviceAccountName".into(), json!(account));
                }
                if k["resources"].as_object().is_some_and(|r| !r.is_empty()) {
                    pool["resources"] = k["resources"].clone();
                }
                for (from, to) in [
                    ("env", "env"),
                    ("tolerations", "tolerations"),
                    ("nodeSelector", "nodeSelector"),
                    ("volumes", "volumes"),
                    ("volumeMount", "volumeMounts"),
                ] {
                    if k[from].as_array().is_some_and(|a| !a.is_empty())
                        || k[from].as_object().is_some_and(|o| !o.is_empty())
                    {
                        overrides.insert(to.into(), k[from].clone());
                    }
                }
                for key in ["labels", "annotations"] {
                    if k["podMetadata"][key].as_object().is_some_and(|o| !o.is_empty()) {
                        overrides.insert(key.into(), k["podMetadata"][key].clone());
                    }
                }
                let storage = k["storageConfig"].as_array().cloned().unwrap_or_default();
                if let Some(first) = storage.first() {
                    let size = first["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or_default();
                    if size.is_empty() {
                        w.push(
                            &format!("{kat}.storageConfig[0].spec.resources.requests.storage"),
                            "is missing; the pool gets no volume (an emptyDir, as before)",
                        );
                    } else {
                        let mut s = json!({"size": size});
                        if let Some(class) = first["spec"]["storageClassName"].as_str() {
                            s["storageClassName"] = json!(class);
                        }
                        pool["storage"] = s;
                        w.push(
                            &format!("{kat}.storageConfig[0].mountPath"),
                            format!(
                                "{:?}: the volume is mounted at {} here, a new PVC per pod; segments are fetched again from deep store",
                                first["mountPath"].as_str().unwrap_or(""),
                                role.data_dir()
                            ),
                        );
                    }
                    if storage.len() > 1 {
                        w.push(
                            &format!("{kat}.storageConfig"),
                            format!(
                                "{} volumes: only the first is carried over (one data volume per pod here)",
                                storage.len()
                            ),
                        );
                    }
                }
                for (field, why) in [
                    (
                        "port",
                        "ports are the operator's (controller 9000, broker 8099/7732, server 8098/8097/7321/7732, minion 9514)",
                    ),
                    ("service", "the operator creates the Services itself"),
                    ("livenessProbe", "the operator sets the probes from Pinot's health endpoints"),
                    ("readinessProbe", "the operator sets the probes from Pinot's health endpoints"),
                    ("startUpProbe", "the operator sets the probes from Pinot's health endpoints"),
                    ("imagePullPolicy", "the image's default pull policy applies"),
                    (
                        "affinity",
                        "zones are set with pools[].zone / zones; other affinity goes in pools[].podOverrides.affinity by hand",
                    ),
                ] {
                    let v = &k[field];
                    let set = !v.is_null()
                        && v.as_array().is_none_or(|a| !a.is_empty())
                        && v.as_str().is_none_or(|s| !s.is_empty());
                    if set {
                        w.push(&format!("{kat}.{field}"), format!("not carried over: {why}"));
                    }
                }
            }
        }
        match n["pinotNodeConfig"].as_str().and_then(|c| pinot_configs.get(c).map(|p| (c, p))) {
            None => w.push(
                &format!("{at}.pinotNodeConfig"),
                format!("{:?} names no spec.pinotNodeConfig entry", n["pinotNodeConfig"]),
            ),
            Some((cname, p)) => {
                if let Some(opts) = p["java_opts"].as_str().filter(|o| !o.trim().is_empty()) {
                    pool["jvmOpts"] = json!(opts);
                }
                let at = format!("spec.pinotNodeConfig[{cname}].data");
                seed_properties.extend(
                    properties(p["data"].as_str().unwrap_or_default()).into_iter().map(|(k, v)| (k, v, at.clone())),
                );
            }
        }
        // The cluster name is not a pool's: it only compares the names the pools were given.
        let defaults: BTreeMap<String, String> = role.default_config("", &zookeeper).into_iter().collect();
        let mut config: BTreeMap<String, String> = BTreeMap::new();
        let mut pool_cluster_name: Option<(String, bool)> = None;
        for (k, v, from) in seed_properties {
            match carry(role, &k, &v, &defaults) {
                Carry::Keep => {
                    config.insert(k, v);
                }
                Carry::Same => {}
                Carry::ClusterName { authoritative } => {
                    if pool_cluster_name.as_ref().is_none_or(|(_, a)| authoritative || !a) {
                        pool_cluster_name = Some((v, authoritative));
                    }
                }
                Carry::Dropped(why) => w.push(&from, why),
            }
        }
        if let Some((helix, _)) = pool_cluster_name {
            cluster_names.push((role, name.to_string(), helix));
        }
        if pool.get("storage").is_none() && matches!(role, Role::Controller | Role::Server) {
            pool["storage"] = json!({"ephemeral": true});
            w.push(
                &format!("{at}.k8sConfig"),
                format!(
                    "the seed gave this {role} no volume: converted as storage.ephemeral (an emptyDir, as before); set storage.size for a PersistentVolumeClaim per pod"
                ),
            );
        }
        if !config.is_empty() {
            pool["config"] = json!(config);
        }
        if !overrides.is_empty() {
            pool["podOverrides"] = Value::Object(overrides);
        }
        pools.push(pool);
    }
    let mut out = json!({
        "apiVersion": API, "kind": "PinotCluster", "metadata": metadata(doc),
        "spec": {"image": image, "zookeeper": {"connectString": zookeeper}, "pools": pools},
    });
    // The Helix cluster name is kept, so the migrated pods join the cluster they left: the
    // controllers' name (they create the cluster), else any pool's.
    let chosen = cluster_names.iter().find(|(r, _, _)| *r == Role::Controller).or(cluster_names.first());
    match chosen {
        Some((_, from, helix)) => {
            out["spec"]["clusterName"] = json!(helix);
            for (_, other, name) in cluster_names.iter().filter(|(_, _, n)| n != helix) {
                w.push(
                    "spec.pinotNodeConfig",
                    format!("node {other} names the cluster {name:?}, node {from} {helix:?}; spec.clusterName is {helix:?} for every pool"),
                );
            }
        }
        None if !nodes.is_empty() => w.push(
            "spec.pinotNodeConfig",
            format!(
                "no node names its Helix cluster (pinot.cluster.name, controller.helix.cluster.name): spec.clusterName defaults to {:?}; if the running cluster has another name (GET /cluster/info on its controller, field clusterName), set spec.clusterName to it, or the pods join a new, empty cluster",
                doc["metadata"]["name"].as_str().unwrap_or_default()
            ),
        ),
        None => {}
    }
    let order: Vec<Value> = spec["deploymentOrder"].as_array().cloned().unwrap_or_default();
    if !order.is_empty() {
        out["spec"]["deploymentOrder"] = json!(order);
    }
    if spec["auth"]["type"].as_str().is_some_and(|t| !t.is_empty()) {
        let secret = spec["auth"]["secretRef"]["name"].as_str().unwrap_or_default();
        if spec["auth"]["type"] == "basic-auth" && !secret.is_empty() {
            out["spec"]["controllerAccess"] = json!({"basicAuthSecret": secret});
            w.push("spec.auth", format!("basic auth: Secret {secret} must hold the keys username and password"));
        } else {
            w.push(
                "spec.auth",
                format!("type {:?} has no equivalent; set spec.controllerAccess by hand", spec["auth"]["type"]),
            );
        }
    }
    if spec["plugins"].as_array().is_some_and(|p| !p.is_empty()) {
        w.push(
            "spec.plugins",
            "Pinot plugins are not carried over: put them in the image, or load them with pools[].config / env",
        );
    }
    // What the operator's own validation says about the result.
    match serde_json::from_value::<pinot_crds::PinotCluster>(out.clone()) {
        Ok(c) => {
            if let Err(invalid) = crate::cluster::validate::validate(&c) {
                w.push("", format!("the converted PinotCluster needs a fix before it is applied: {invalid}"));
            }
        }
        Err(e) => w.push("", format!("the converted PinotCluster does not parse ({e}); please report this")),
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(yaml).map(|d| Value::deserialize(d).unwrap()).collect()
    }

    const SEED: &str = include_str!("../../deploy/examples/migration/seed-pinot.yaml");

    #[test]
    fn a_seed_cluster_and_its_resources_convert_with_warnings_for_what_does_not_carry_over() {
        let out = convert(&docs(SEED));
        assert_eq!(out.resources.len(), 4, "{:#?}", out.warnings);
        let c = &out.resources[0];
        assert_eq!(c["kind"], "PinotCluster");
        assert_eq!(c["metadata"], json!({"name": "pinot-basic", "namespace": "pinot"}));
        assert_eq!(c["spec"]["image"], "apachepinot/pinot:1.1.0");
        assert_eq!(c["spec"]["zookeeper"]["connectString"], "pinot-zookeeper.pinot.svc.cluster.local:2181");
        assert_eq!(c["spec"]["deploymentOrder"], json!(["controller", "broker", "server", "minion"]));
        assert_eq!(c["spec"]["controllerAccess"], json!({"basicAuthSecret": "pinot-auth"}));
        let controller = &c["spec"]["pools"][0];
        assert_eq!(controller["storage"], json!({"size": "10Gi", "storageClassName": "gp3"}));
        assert_eq!(controller["jvmOpts"], "-Xms1G -Xmx2G");
        // The Helix cluster name is kept: the migrated pods join the same cluster.
        assert_eq!(c["spec"]["clusterName"], "pinot-quickstart");
        assert!(controller["config"].get("controller.helix.cluster.name").is_none(), "{controller}");
        // Properties that say what the operator says anyway are dropped without a word.
        assert_eq!(controller["config"].as_object().unwrap().len(), 2, "{controller}");
        // Deep storage settings of the controller role; the deep store dir overrides the default.
        assert_eq!(
            controller["config"]["pinot.controller.storage.factory.class.s3"],
            "org.apache.pinot.plugin.filesystem.S3PinotFS"
        );
        let server = &c["spec"]["pools"][1];
        assert_eq!((server["role"].as_str(), server["replicas"].as_i64()), (Some("server"), Some(3)));
        assert_eq!(server["config"], json!({"pinot.server.query.executor.timeout": "30000"}));
        // The seed gave it no volume: still none, said explicitly.
        assert_eq!(server["storage"], json!({"ephemeral": true}));
        assert_eq!(server["podOverrides"]["nodeSelector"], json!({"pool": "pinot"}));
        assert_eq!(server["podOverrides"]["annotations"], json!({"team": "data"}));
        assert_eq!(server["podOverrides"]["tolerations"][0]["key"], "dedicated");
        assert_eq!(server["podOverrides"]["serviceAccountName"], "pinot-s3");
        assert_eq!(server["podOverrides"]["volumes"][0]["secret"]["secretName"], "pinot-certs");
        assert_eq!(server["podOverrides"]["volumeMounts"][0]["mountPath"], "/etc/pinot-certs");
        // What did not carry over is said, naming the field.
        let said = out.warnings.join("\n");
        for expected in [
            "Pinot/pinot-basic: spec.nodes[1].kind: Deployment",
            // (nodes[0] says "Statefulset", as the seed's examples do: no warning)
            "spec.k8sConfig[controller].port: not carried over",
            "spec.k8sConfig[controller].service: not carried over",
            "pinot.server.netty.port=9098 not carried over",
            "pinot.server.instance.dataDir=/opt/pinot/index not carried over",
            "spec.auth: basic auth: Secret pinot-auth",
            "storageConfig[0].mountPath",
            "spec.nodes[1].k8sConfig: the seed gave this server no volume",
        ] {
            assert!(said.contains(expected), "{expected:?} in:\n{said}");
        }
        assert!(!said.contains("spec.nodes[0].kind"), "Statefulset is a StatefulSet: {said}");
        // The converted cluster is valid as it is.
        assert!(!said.contains("needs a fix"), "{said}");
        let schema = &out.resources[1];
        assert_eq!(
            schema["spec"],
            json!({"cluster": "pinot-basic", "schema": {"schemaName": "airlineStats", "dimensionFieldSpecs": [{"name": "Carrier", "dataType": "STRING"}]}})
        );
        let table = &out.resources[2];
        assert_eq!(table["spec"]["schemaRef"], "airlinestats");
        assert_eq!(table["spec"]["tableName"], "airlineStats");
        assert_eq!(table["spec"]["offline"]["segmentsConfig"]["replication"], "1");
        let tenant = &out.resources[3];
        assert_eq!(
            tenant["spec"],
            json!({"cluster": "pinot-basic", "tenantRole": "SERVER", "tenantName": "sales", "offlineInstances": 2, "realtimeInstances": 1})
        );
        // Every converted resource parses as its kind.
        serde_json::from_value::<pinot_crds::PinotCluster>(c.clone()).unwrap();
        serde_json::from_value::<pinot_crds::PinotSchema>(schema.clone()).unwrap();
        serde_json::from_value::<pinot_crds::PinotTable>(table.clone()).unwrap();
        serde_json::from_value::<pinot_crds::PinotTenant>(tenant.clone()).unwrap();
    }

    const MINIMAL_SEED: &str = "apiVersion: datainfra.io/v1beta1\nkind: Pinot\nmetadata: {name: p}\nspec:\n  external: {zookeeper: {spec: {zkAddress: zk:2181}}}\n  k8sConfig: [{name: k, image: apachepinot/pinot:1.2.0, storageConfig: [{spec: {resources: {requests: {storage: 1Gi}}}}]}]\n";

    #[test]
    fn the_cluster_name_comes_from_the_controllers_and_is_never_a_pool_property() {
        let seed = format!(
            "{MINIMAL_SEED}  pinotNodeConfig:\n    - {{name: c, data: \"controller.helix.cluster.name=old\\npinot.cluster.name=helix\\ncontroller.data.dir=/tmp/pinot\\nController.Port=9000\"}}\n    - {{name: b, data: \"pinot.cluster.name=other\\npinot.broker.client.query-port=8099\\ninstanceId=Broker_x_8099\"}}\n  nodes:\n    - {{name: broker, nodeType: broker, k8sConfig: k, pinotNodeConfig: b}}\n    - {{name: controller, nodeType: controller, k8sConfig: k, pinotNodeConfig: c}}\n"
        );
        let out = convert(&docs(&seed));
        let c = &out.resources[0];
        // pinot.cluster.name wins over controller.helix.cluster.name, and the controllers' name
        // over the other pools'.
        assert_eq!(c["spec"]["clusterName"], "helix");
        let said = out.warnings.join("\n");
        assert!(said.contains("node broker names the cluster \"other\""), "{said}");
        assert!(said.contains("controller.data.dir=/tmp/pinot not carried over"), "{said}");
        assert!(said.contains("instanceId=Broker_x_8099 not carried over"), "{said}");
        // Relaxed spellings of what the operator sets anyway are dropped silently.
        assert!(!said.contains("Controller.Port") && !said.contains("query-port"), "{said}");
        for pool in c["spec"]["pools"].as_array().unwrap() {
            assert!(pool.get("config").is_none(), "{pool}");
        }
        assert!(!said.contains("needs a fix"), "{said}");

        let unnamed = convert(&docs(&format!(
            "{MINIMAL_SEED}  nodes:\n    - {{name: controller, nodeType: controller, k8sConfig: k}}\n"
        )));
        assert!(unnamed.resources[0]["spec"].get("clusterName").is_none());
        let said = unnamed.warnings.join("\n");
        assert!(said.contains("spec.clusterName defaults to \"p\"") && said.contains("GET /cluster/info"), "{said}");
    }

    #[test]
    fn broken_input_is_named_and_skipped() {
        let out = convert(&docs(
            "apiVersion: datainfra.io/v1beta1\nkind: PinotSchema\nmetadata: {name: s}\nspec: {pinotCluster: c, schema.json: '{nope'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ));
        assert!(out.resources.is_empty());
        assert!(
            out.warnings[0].starts_with("PinotSchema/s: spec.schema.json: is not valid JSON"),
            "{:?}",
            out.warnings
        );
        assert!(out.warnings[1].contains("ConfigMap/x") && out.warnings[1].contains("skipped"), "{:?}", out.warnings);
    }
}
