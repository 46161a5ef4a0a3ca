//! `spec.deepStorage`: checked and turned into what the controller, server and minion pools
//! get — Pinot properties (the PinotFS of the store's scheme and its settings), environment
//! variables from Secrets and mounted files. Credentials never become properties: Pinot's
//! cloud SDKs read them from the environment (`AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`)
//! or Pinot substitutes `${env:NAME}` in a value when it reads its file (every release; see
//! `pinot-facts/deep-storage.md` §2, which also says why `dynamic.env.config` is not used: at
//! 1.2.0 the controller and minion lose what it substitutes).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EnvVar, EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};
use pinot_crds::{DeepStorage, SecretKey};

use super::{Errors, uri_scheme};
use crate::role::{self, Role};

/// Where the operator mounts deep-storage files (keys, Hadoop configuration, keytabs).
pub const MOUNT_DIR: &str = "/var/pinot/deep-storage";

/// A deep store as the pools get it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidDeepStorage {
    /// `controller.data.dir`.
    pub uri: String,
    /// The scheme its PinotFS is registered for (`s3`, `gs`, `abfss`, `hdfs`).
    pub scheme: String,
    /// The PinotFS class.
    pub class: &'static str,
    /// Properties of the PinotFS, by the suffix after `<prefix>.storage.factory.<scheme>.`.
    pub properties: BTreeMap<String, String>,
    /// Environment variables of the Pinot container (credentials from Secrets, file paths).
    pub env: Vec<EnvVar>,
    /// Volumes and where the Pinot container mounts them.
    pub mounts: Vec<(Volume, VolumeMount)>,
}

impl ValidDeepStorage {
    /// The roles that read or write segments in the deep store (brokers do not).
    pub fn used_by(role: Role) -> bool {
        matches!(role, Role::Controller | Role::Server | Role::Minion)
    }

    /// The Pinot properties of a pool of `role`.
    pub fn role_properties(&self, role: Role) -> Vec<(String, String)> {
        let Some(prefix) = prefix(role) else { return vec![] };
        let scheme = &self.scheme;
        let mut out = vec![
            (format!("{prefix}.storage.factory.class.{scheme}"), self.class.to_string()),
            (format!("{prefix}.segment.fetcher.protocols"), format!("file,http,{scheme}")),
        ];
        for (k, v) in &self.properties {
            out.push((format!("{prefix}.storage.factory.{scheme}.{k}"), v.clone()));
        }
        if role == Role::Controller {
            out.push((role::CONTROLLER_DATA_DIR_KEY.to_string(), self.uri.clone()));
        }
        out
    }
}

/// The storage-factory / segment-fetcher prefix of a role (`CommonConstants`: the controller's
/// `pinot.controller.storage.factory`, ...).
fn prefix(role: Role) -> Option<&'static str> {
    match role {
        Role::Controller => Some("pinot.controller"),
        Role::Server => Some("pinot.server"),
        Role::Minion => Some("pinot.minion"),
        Role::Broker => None,
    }
}

/// Whether a pool's `config` key is one the deep storage writes for `role` (refused in a pool
/// while `spec.deepStorage` is set: Pinot would read one of the two).
pub fn writes_key(role: Role, key: &str) -> bool {
    let Some(prefix) = prefix(role) else { return false };
    let (storage, fetcher) = (format!("{prefix}.storage.factory."), format!("{prefix}.segment.fetcher."));
    role::under_any(key, &[&storage, &fetcher])
        || (role == Role::Minion && role::under_any(key, &["storage.factory.", "segment.fetcher."]))
        || (role == Role::Controller && role::relaxed_key(key) == role::relaxed_key(role::CONTROLLER_DATA_DIR_KEY))
}

/// Keys of `deepStorage.config` that are credentials: they would end up in a ConfigMap.
const CREDENTIAL_KEYS: &[&str] = &[
    "accessKey",
    "secretKey",
    "gcpKey",
    "jsonKey",
    "clientSecret",
    "sasToken",
    "proxyPassword",
    "hadoop.kerberos.keytab",
];

pub(super) fn validate(spec: &DeepStorage, errors: &mut Errors) -> Option<ValidDeepStorage> {
    let at = |f: &str| format!("spec.deepStorage.{f}");
    let before = errors.0.len();
    let stores = [spec.s3.is_some(), spec.gcs.is_some(), spec.adls.is_some(), spec.hdfs.is_some()];
    if stores.iter().filter(|s| **s).count() != 1 {
        errors.push("spec.deepStorage", "sets no store or more than one; set exactly one of s3, gcs, adls, hdfs");
        return None;
    }
    let scheme = uri_scheme(&spec.uri).map(str::to_ascii_lowercase);
    let expect = |wanted: &[&str], example: &str, errors: &mut Errors| {
        if !scheme.as_deref().is_some_and(|s| wanted.contains(&s)) || spec.uri.trim().len() <= example.len() {
            errors.push(
                at("uri"),
                format!(
                    "{:?} is not a URI of this store; write the directory segments go to, e.g. {example}bucket/pinot",
                    spec.uri
                ),
            );
        }
    };
    for k in spec.config.keys() {
        if CREDENTIAL_KEYS.iter().any(|c| role::relaxed_key(c) == role::relaxed_key(k)) {
            errors.push(
                at(&format!("config[{k:?}]")),
                "is a credential, and deepStorage.config is written into the pools' ConfigMaps; give it from a Secret with the store's own field (or podIdentity)",
            );
        }
    }
    let none = |field: &str, how: &str, errors: &mut Errors| {
        errors.push(
            at(field),
            format!("has no credentials: {how}, or set podIdentity: true when the pods' identity grants access (a ServiceAccount in podOverrides.serviceAccountName that the cloud trusts, or the nodes' role)"),
        );
    };
    let both = |field: &str, errors: &mut Errors| {
        errors.push(at("podIdentity"), format!("is true while {field} gives credentials; keep one of the two"));
    };
    let mut properties = BTreeMap::new();
    let mut env = Vec::new();
    let mut mounts = Vec::new();
    let (scheme, class) = if let Some(s3) = &spec.s3 {
        expect(&["s3"], "s3://", errors);
        if s3.region.trim().is_empty() {
            errors.push(
                at("s3.region"),
                "is empty; Pinot's S3 file system requires the bucket's region, even for MinIO (any value there)",
            );
        }
        properties.insert("region".to_string(), s3.region.trim().to_string());
        if let Some(endpoint) = &s3.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                errors.push(at("s3.endpoint"), format!("{endpoint:?} is not an http:// or https:// URL"));
            }
            properties.insert("endpoint".to_string(), endpoint.clone());
        }
        match (&s3.access_key_id, &s3.secret_access_key, spec.pod_identity) {
            (Some(id), Some(secret), identity) => {
                if identity {
                    both("s3", errors);
                }
                secret_key(&at("s3.accessKeyId"), id, errors);
                secret_key(&at("s3.secretAccessKey"), secret, errors);
                // Without accessKey/secretKey properties S3PinotFS uses the AWS SDK's default
                // chain, whose first source is these two variables.
                env.push(secret_env("AWS_ACCESS_KEY_ID", id));
                env.push(secret_env("AWS_SECRET_ACCESS_KEY", secret));
            }
            (Some(_), None, _) => {
                errors.push(at("s3.secretAccessKey"), "is missing while accessKeyId is set; give both from a Secret")
            }
            (None, Some(_), _) => {
                errors.push(at("s3.accessKeyId"), "is missing while secretAccessKey is set; give both from a Secret")
            }
            (None, None, true) => {}
            (None, None, false) => none("s3", "set accessKeyId and secretAccessKey from a Secret", errors),
        }
        ("s3".to_string(), "org.apache.pinot.plugin.filesystem.S3PinotFS")
    } else if let Some(gcs) = &spec.gcs {
        expect(&["gs"], "gs://", errors);
        if let Some(project) = &gcs.project_id {
            properties.insert("projectId".to_string(), project.clone());
        }
        match (&gcs.key_file, spec.pod_identity) {
            (Some(key), identity) => {
                if identity {
                    both("gcs", errors);
                }
                secret_key(&at("gcs.keyFile"), key, errors);
                let (volume, mount, path) = secret_file("pinot-deep-storage-gcs", key, "gcs", "key.json");
                // Application Default Credentials read the variable; GcsPinotFS reads gcpKey
                // only with a projectId (pinot-facts/deep-storage.md §4).
                env.push(EnvVar {
                    name: "GOOGLE_APPLICATION_CREDENTIALS".into(),
                    value: Some(path.clone()),
                    ..Default::default()
                });
                if gcs.project_id.is_some() {
                    properties.insert("gcpKey".to_string(), path);
                }
                mounts.push((volume, mount));
            }
            (None, true) => {}
            (None, false) => none("gcs", "set keyFile to a Secret key holding a service account's JSON key", errors),
        }
        ("gs".to_string(), "org.apache.pinot.plugin.filesystem.GcsPinotFS")
    } else if let Some(adls) = &spec.adls {
        // The scheme is whatever the URI says (Pinot registers the FS for it and reads only the
        // path); abfss:// is what Azure tools write.
        if scheme.is_none() || spec.uri.trim().len() < "abfss://x".len() {
            errors.push(
                at("uri"),
                format!("{:?} is not a URI; write e.g. abfss://container@account.dfs.core.windows.net/pinot", spec.uri),
            );
        }
        for (field, value) in
            [("adls.accountName", &adls.account_name), ("adls.fileSystemName", &adls.file_system_name)]
        {
            if value.trim().is_empty() {
                errors.push(at(field), "is empty; name the storage account and its container");
            }
        }
        properties.insert("accountName".to_string(), adls.account_name.trim().to_string());
        properties.insert("fileSystemName".to_string(), adls.file_system_name.trim().to_string());
        match (&adls.access_key, spec.pod_identity) {
            (Some(key), identity) => {
                if identity {
                    both("adls", errors);
                }
                secret_key(&at("adls.accessKey"), key, errors);
                env.push(secret_env("PINOT_ADLS_ACCESS_KEY", key));
                properties.insert("authenticationType".to_string(), "ACCESS_KEY".to_string());
                properties.insert("accessKey".to_string(), "${env:PINOT_ADLS_ACCESS_KEY}".to_string());
            }
            (None, true) => {
                properties.insert("authenticationType".to_string(), "DEFAULT".to_string());
            }
            (None, false) => none("adls", "set accessKey from a Secret", errors),
        }
        if let Some(id) = &adls.managed_identity_client_id {
            if !spec.pod_identity {
                errors.push(
                    at("adls.managedIdentityClientId"),
                    "is for podIdentity: true; set podIdentity, or remove it",
                );
            }
            properties.insert("managedIdentityClientId".to_string(), id.clone());
        }
        (scheme.clone().unwrap_or_default(), "org.apache.pinot.plugin.filesystem.ADLSGen2PinotFS")
    } else {
        let hdfs = spec.hdfs.as_ref().expect("one store is set");
        expect(&["hdfs"], "hdfs://", errors);
        if spec.pod_identity {
            errors.push(at("podIdentity"), "HDFS has no pod identity; use hdfs.kerberos, or remove podIdentity (simple authentication needs neither)");
        }
        if !super::is_dns_subdomain(&hdfs.config_map) {
            errors.push(
                at("hdfs.configMap"),
                format!(
                    "{:?} is not a ConfigMap name; name the ConfigMap holding core-site.xml and hdfs-site.xml",
                    hdfs.config_map
                ),
            );
        }
        let dir = format!("{MOUNT_DIR}/hadoop");
        mounts.push((
            Volume {
                name: "pinot-hadoop-conf".into(),
                config_map: Some(ConfigMapVolumeSource { name: hdfs.config_map.clone(), ..Default::default() }),
                ..Default::default()
            },
            VolumeMount {
                name: "pinot-hadoop-conf".into(),
                mount_path: dir.clone(),
                read_only: Some(true),
                ..Default::default()
            },
        ));
        properties.insert("hadoop.conf.path".to_string(), dir);
        if let Some(k) = &hdfs.kerberos {
            if k.principal.trim().is_empty() {
                errors.push(
                    at("hdfs.kerberos.principal"),
                    "is empty; name the principal Pinot logs in as, e.g. pinot@EXAMPLE.COM",
                );
            }
            secret_key(&at("hdfs.kerberos.keytab"), &k.keytab, errors);
            let (volume, mount, path) = secret_file("pinot-kerberos-keytab", &k.keytab, "kerberos", "pinot.keytab");
            mounts.push((volume, mount));
            // The key is spelt "principle" in Pinot (HadoopPinotFS, every release).
            properties.insert("hadoop.kerberos.principle".to_string(), k.principal.trim().to_string());
            properties.insert("hadoop.kerberos.keytab".to_string(), path);
            if let Some(krb5) = &k.krb5_config {
                mounts.push((
                    Volume {
                        name: "pinot-krb5-conf".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: krb5.name.clone(),
                            items: Some(vec![KeyToPath {
                                key: krb5.key.clone(),
                                path: "krb5.conf".into(),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    VolumeMount {
                        name: "pinot-krb5-conf".into(),
                        mount_path: "/etc/krb5.conf".into(),
                        sub_path: Some("krb5.conf".into()),
                        read_only: Some(true),
                        ..Default::default()
                    },
                ));
            }
        }
        ("hdfs".to_string(), "org.apache.pinot.plugin.filesystem.HadoopPinotFS")
    };
    for (k, v) in &spec.config {
        let relaxed = role::relaxed_key(k);
        if properties.keys().any(|p| role::relaxed_key(p) == relaxed) {
            errors.push(
                at(&format!("config[{k:?}]")),
                "is written from the store's own fields; set it there and remove it here",
            );
        } else if k.trim().is_empty() || k.contains(['\n', '=']) || v.contains('\n') {
            errors.push(at(&format!("config[{k:?}]")), "is not a valid Pinot property; keys cannot be empty or contain '=' or newlines, values cannot contain newlines");
        } else if !CREDENTIAL_KEYS.iter().any(|c| role::relaxed_key(c) == relaxed) {
            properties.insert(k.clone(), v.clone());
        }
    }
    (errors.0.len() == before).then(|| ValidDeepStorage {
        uri: spec.uri.trim().to_string(),
        scheme,
        class,
        properties,
        env,
        mounts,
    })
}

fn secret_key(field: &str, key: &SecretKey, errors: &mut Errors) {
    if !super::is_dns_subdomain(&key.name) {
        errors.push(format!("{field}.name"), format!("{:?} is not a Secret name", key.name));
    }
    if key.key.trim().is_empty() {
        errors.push(format!("{field}.key"), "is empty; name the Secret's key");
    }
}

/// An environment variable holding a Secret's key (what every credential of the pods is).
pub fn secret_env(name: &str, key: &SecretKey) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: key.name.clone(), key: key.key.clone(), optional: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Secret's key as a file `<MOUNT_DIR>/<dir>/<file>`: the volume, its mount and the path.
fn secret_file(volume: &str, key: &SecretKey, dir: &str, file: &str) -> (Volume, VolumeMount, String) {
    let mount_path = format!("{MOUNT_DIR}/{dir}");
    let v = Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(key.name.clone()),
            items: Some(vec![KeyToPath { key: key.key.clone(), path: file.into(), ..Default::default() }]),
            // Readable by the group the restricted profile gives the pods (fsGroup).
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = VolumeMount {
        name: volume.into(),
        mount_path: mount_path.clone(),
        read_only: Some(true),
        ..Default::default()
    };
    (v, m, format!("{mount_path}/{file}"))
}
