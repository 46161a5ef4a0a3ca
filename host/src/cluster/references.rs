//! The objects a PinotCluster's pods need and the operator does not create: Secrets and
//! ConfigMaps (environment, volumes, pull credentials, deep-storage keys), the ServiceAccount
//! and the PriorityClass. A pod naming one that does not exist never starts (the kubelet
//! refuses a missing key, the apiserver a missing PriorityClass), so the operator reads each
//! before it rolls anything out and, when one is missing, changes nothing and says which field
//! names it (`Degraded`, reason `InvalidSpec`), looking again every few seconds.
//!
//! [`of`] lists the references (pure), [`observe`] reads them (client), [`problems`] compares
//! (pure).

use std::collections::BTreeMap;

use k8s_openapi::api::{
    core::v1::{ConfigMap, Container, Secret, ServiceAccount, Volume},
    scheduling::v1::PriorityClass,
};
use kube::{Api, Client};
use pinot_crds::{DeepStorage, PinotCluster, PodOverrides, SecretKey};

use super::validate::FieldError;

/// A kind of object the pods may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    ConfigMap,
    ServiceAccount,
    PriorityClass,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::PriorityClass => "PriorityClass",
        }
    }
}

/// One field of the spec naming an object (and maybe one of its keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub field: String,
    pub kind: Kind,
    pub name: String,
    /// The key the field needs in the object's data.
    pub key: Option<String>,
}

/// What a pass saw of one named object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// It exists, with these data keys.
    Exists(Vec<String>),
    Missing,
    /// It could not be read (no permission, the apiserver failed): not held against the spec.
    Unknown(String),
}

/// Every object the cluster's spec names for its pods, with the field that names it. Optional
/// references (`optional: true`) are left out: a pod starts without them.
pub fn of(cluster: &PinotCluster) -> Vec<Reference> {
    let mut out = Vec::new();
    let spec = &cluster.spec;
    if spec.external.is_some() {
        return out;
    }
    if let Some(d) = &spec.deep_storage {
        deep_storage(d, &mut out);
    }
    if let Some(tls) = spec.security.as_ref().and_then(|s| s.tls.as_ref()) {
        // The operator trusts ca.crt, unless spec.controllerAccess.caBundle names another CA.
        let ca_bundle = spec.controller_access.as_ref().is_some_and(|a| a.ca_bundle.is_some());
        let keys =
            ["keystore.p12", "truststore.p12"].into_iter().chain((!ca_bundle).then_some(crate::access::TLS_CA_KEY));
        for key in keys {
            push(&mut out, "spec.security.tls.secret".into(), Kind::Secret, &tls.secret, Some(key));
        }
        let key = &tls.password_secret;
        push(&mut out, "spec.security.tls.passwordSecret".into(), Kind::Secret, &key.name, Some(&key.key));
    }
    if let Some(auth) = spec.security.as_ref().and_then(|s| s.basic_auth.as_ref()) {
        let at = "spec.security.basicAuth";
        let key = &auth.admin.password_secret;
        push(&mut out, format!("{at}.admin.passwordSecret"), Kind::Secret, &key.name, Some(&key.key));
        for (i, user) in auth.users.iter().enumerate() {
            let key = &user.password_secret;
            push(&mut out, format!("{at}.users[{i}].passwordSecret"), Kind::Secret, &key.name, Some(&key.key));
        }
    }
    if let Some(o) = &spec.pod_overrides {
        overrides("spec.podOverrides", o, &mut out);
    }
    for (i, pool) in spec.pools.iter().enumerate() {
        if let Some(o) = &pool.pod_overrides {
            overrides(&format!("spec.pools[{i}].podOverrides"), o, &mut out);
        }
    }
    out
}

fn push(out: &mut Vec<Reference>, field: String, kind: Kind, name: &str, key: Option<&str>) {
    if !name.is_empty() {
        out.push(Reference { field, kind, name: name.to_string(), key: key.map(str::to_string) });
    }
}

fn deep_storage(d: &DeepStorage, out: &mut Vec<Reference>) {
    let at = "spec.deepStorage";
    let mut secret = |field: &str, key: &SecretKey| {
        push(out, format!("{at}.{field}"), Kind::Secret, &key.name, Some(&key.key));
    };
    if let Some(s3) = &d.s3 {
        for (field, key) in [("s3.accessKeyId", &s3.access_key_id), ("s3.secretAccessKey", &s3.secret_access_key)] {
            if let Some(key) = key {
                secret(field, key);
            }
        }
    }
    if let Some(key) = d.gcs.as_ref().and_then(|g| g.key_file.as_ref()) {
        secret("gcs.keyFile", key);
    }
    if let Some(key) = d.adls.as_ref().and_then(|a| a.access_key.as_ref()) {
        secret("adls.accessKey", key);
    }
    if let Some(hdfs) = &d.hdfs {
        if let Some(k) = &hdfs.kerberos {
            secret("hdfs.kerberos.keytab", &k.keytab);
            if let Some(krb5) = &k.krb5_config {
                push(out, format!("{at}.hdfs.kerberos.krb5Config"), Kind::ConfigMap, &krb5.name, Some(&krb5.key));
            }
        }
        // Pinot reads core-site.xml and hdfs-site.xml from the directory; core-site says how to
        // authenticate and where the name node is.
        push(out, format!("{at}.hdfs.configMap"), Kind::ConfigMap, &hdfs.config_map, Some("core-site.xml"));
    }
}

fn overrides(at: &str, o: &PodOverrides, out: &mut Vec<Reference>) {
    if let Some(name) = &o.service_account_name {
        push(out, format!("{at}.serviceAccountName"), Kind::ServiceAccount, name, None);
    }
    if let Some(name) = &o.priority_class_name {
        push(out, format!("{at}.priorityClassName"), Kind::PriorityClass, name, None);
    }
    for (i, s) in o.image_pull_secrets.iter().enumerate() {
        push(out, format!("{at}.imagePullSecrets[{i}]"), Kind::Secret, &s.name, None);
    }
    env(at, "env", &o.env, &o.env_from, out);
    for (i, v) in o.volumes.iter().enumerate() {
        volume(&format!("{at}.volumes[{i}]"), v, out);
    }
    for (list, key) in [(&o.init_containers, "initContainers"), (&o.sidecars, "sidecars")] {
        for (i, c) in list.iter().enumerate() {
            container(&format!("{at}.{key}[{i}]"), c, out);
        }
    }
}

fn container(at: &str, c: &Container, out: &mut Vec<Reference>) {
    env(at, "env", c.env.as_deref().unwrap_or_default(), c.env_from.as_deref().unwrap_or_default(), out);
}

fn env(
    at: &str,
    key: &str,
    env: &[k8s_openapi::api::core::v1::EnvVar],
    env_from: &[k8s_openapi::api::core::v1::EnvFromSource],
    out: &mut Vec<Reference>,
) {
    for (i, e) in env.iter().enumerate() {
        let Some(from) = &e.value_from else { continue };
        if let Some(s) = &from.secret_key_ref
            && s.optional != Some(true)
        {
            push(out, format!("{at}.{key}[{i}].valueFrom.secretKeyRef"), Kind::Secret, &s.name, Some(&s.key));
        }
        if let Some(c) = &from.config_map_key_ref
            && c.optional != Some(true)
        {
            push(out, format!("{at}.{key}[{i}].valueFrom.configMapKeyRef"), Kind::ConfigMap, &c.name, Some(&c.key));
        }
    }
    for (i, e) in env_from.iter().enumerate() {
        if let Some(s) = &e.secret_ref
            && s.optional != Some(true)
        {
            push(out, format!("{at}.envFrom[{i}].secretRef"), Kind::Secret, &s.name, None);
        }
        if let Some(c) = &e.config_map_ref
            && c.optional != Some(true)
        {
            push(out, format!("{at}.envFrom[{i}].configMapRef"), Kind::ConfigMap, &c.name, None);
        }
    }
}

fn volume(at: &str, v: &Volume, out: &mut Vec<Reference>) {
    if let Some(s) = &v.secret
        && s.optional != Some(true)
        && let Some(name) = &s.secret_name
    {
        let keys: Vec<&str> = s.items.iter().flatten().map(|i| i.key.as_str()).collect();
        match keys.as_slice() {
            [] => push(out, format!("{at}.secret"), Kind::Secret, name, None),
            keys => {
                for (k, key) in keys.iter().enumerate() {
                    push(out, format!("{at}.secret.items[{k}]"), Kind::Secret, name, Some(key));
                }
            }
        }
    }
    if let Some(c) = &v.config_map
        && c.optional != Some(true)
    {
        let keys: Vec<&str> = c.items.iter().flatten().map(|i| i.key.as_str()).collect();
        match keys.as_slice() {
            [] => push(out, format!("{at}.configMap"), Kind::ConfigMap, &c.name, None),
            keys => {
                for (k, key) in keys.iter().enumerate() {
                    push(out, format!("{at}.configMap.items[{k}]"), Kind::ConfigMap, &c.name, Some(key));
                }
            }
        }
    }
}

/// Reads each object named once (GET by name; the operator watches none of them).
pub async fn observe(client: &Client, namespace: &str, refs: &[Reference]) -> BTreeMap<(Kind, String), Seen> {
    let mut seen = BTreeMap::new();
    for r in refs {
        let id = (r.kind, r.name.clone());
        if seen.contains_key(&id) {
            continue;
        }
        let result = match r.kind {
            Kind::Secret => Api::<Secret>::namespaced(client.clone(), namespace).get_opt(&r.name).await.map(|s| {
                s.map(|s| {
                    let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
                    keys.extend(s.string_data.unwrap_or_default().into_keys());
                    keys
                })
            }),
            Kind::ConfigMap => {
                Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(&r.name).await.map(|c| {
                    c.map(|c| {
                        let mut keys: Vec<String> = c.data.unwrap_or_default().into_keys().collect();
                        keys.extend(c.binary_data.unwrap_or_default().into_keys());
                        keys
                    })
                })
            }
            Kind::ServiceAccount => Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map(|a| a.map(|_| vec![])),
            Kind::PriorityClass => {
                Api::<PriorityClass>::all(client.clone()).get_opt(&r.name).await.map(|p| p.map(|_| vec![]))
            }
        };
        let s = match result {
            Ok(Some(keys)) => Seen::Exists(keys),
            Ok(None) => Seen::Missing,
            Err(e) => Seen::Unknown(e.to_string()),
        };
        if let Seen::Unknown(why) = &s {
            tracing::warn!(kind = r.kind.as_str(), name = %r.name, error = %why, "could not read an object the pods name; not checked");
        }
        seen.insert(id, s);
    }
    seen
}

/// Every reference to an object that does not exist or lacks the key, as the field that names
/// it and what to do.
pub fn problems(namespace: &str, refs: &[Reference], seen: &BTreeMap<(Kind, String), Seen>) -> Vec<FieldError> {
    let mut out = Vec::new();
    for r in refs {
        let kind = r.kind.as_str();
        let message = match (seen.get(&(r.kind, r.name.clone())), &r.key) {
            (Some(Seen::Missing), _) => {
                let scope = match r.kind {
                    Kind::PriorityClass => "in the cluster".to_string(),
                    _ => format!("in namespace {namespace}"),
                };
                let fix = match r.kind {
                    Kind::PriorityClass => "create it, or name another",
                    Kind::ServiceAccount => "create it (with the cloud identity it should carry), or name another",
                    _ => "create it, or name another",
                };
                format!("{kind} {} does not exist {scope}; the pods could not start: {fix}", r.name)
            }
            (Some(Seen::Exists(keys)), Some(key)) if !keys.contains(key) => {
                format!(
                    "{kind} {} has no key {key:?} (it has {}); add the key, or name the one it has",
                    r.name,
                    list(keys)
                )
            }
            _ => continue,
        };
        let error = FieldError { field: r.field.clone(), message };
        if !out.contains(&error) {
            out.push(error);
        }
    }
    out
}

fn list(keys: &[String]) -> String {
    match keys {
        [] => "none".to_string(),
        keys => keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures;

    #[test]
    fn every_named_object_is_found_with_its_field_and_missing_ones_are_problems() {
        let cluster =
            fixtures::cluster(&std::fs::read_to_string(fixtures::dir("valid").join("identity.yaml")).unwrap());
        let refs = of(&cluster);
        let fields: Vec<(&str, &str)> = refs.iter().map(|r| (r.field.as_str(), r.name.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("spec.podOverrides.serviceAccountName", "pinot"),
                ("spec.podOverrides.priorityClassName", "data-platform"),
                ("spec.podOverrides.imagePullSecrets[0]", "registry-creds"),
                ("spec.podOverrides.envFrom[0].configMapRef", "pinot-env"),
                ("spec.podOverrides.volumes[0].configMap", "corp-ca"),
                ("spec.pools[1].podOverrides.serviceAccountName", "pinot-server"),
                ("spec.pools[1].podOverrides.imagePullSecrets[0]", "mirror-creds"),
                ("spec.pools[1].podOverrides.envFrom[0].secretRef", "server-env"),
            ]
        );
        let mut seen: BTreeMap<(Kind, String), Seen> =
            refs.iter().map(|r| ((r.kind, r.name.clone()), Seen::Exists(vec![]))).collect();
        assert!(problems("ns", &refs, &seen).is_empty());
        seen.insert((Kind::ServiceAccount, "pinot-server".into()), Seen::Missing);
        seen.insert((Kind::PriorityClass, "data-platform".into()), Seen::Unknown("forbidden".into()));
        let found = problems("ns", &refs, &seen);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.pools[1].podOverrides.serviceAccountName");
        assert!(
            found[0].message.starts_with("ServiceAccount pinot-server does not exist in namespace ns"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_key_the_object_lacks_is_named_with_the_keys_it_has() {
        let refs = vec![Reference {
            field: "spec.deepStorage.s3.secretAccessKey".into(),
            kind: Kind::Secret,
            name: "s3".into(),
            key: Some("secret".into()),
        }];
        let seen = BTreeMap::from([((Kind::Secret, "s3".to_string()), Seen::Exists(vec!["access".into()]))]);
        let found = problems("ns", &refs, &seen);
        assert_eq!(
            found[0].to_string(),
            "spec.deepStorage.s3.secretAccessKey: Secret s3 has no key \"secret\" (it has \"access\"); add the key, or name the one it has"
        );
    }
}
