//! `spec.security.basicAuth`: Pinot's basic auth on controllers and brokers, and the token
//! Pinot's own roles send to the controller (`pinot-facts/security.md` §1, §2, §4, §11a). The
//! passwords reach Pinot as `${env:...}` values (substituted when Pinot reads its file, at every
//! release), the environment variables from the Secrets; never in a ConfigMap.

use pinot_crds::{BasicAuth, PinotPrincipal, PinotTls, SecretKey};

use super::Errors;
use crate::role::{self, Role};

/// The environment variable holding the admin's basic-auth token (`base64(name:password)`)
/// in controllers, servers and minions, from the Secret the operator derives
/// (`service_token_secret`).
pub const SERVICE_TOKEN_ENV: &str = "PINOT_SERVICE_TOKEN";
/// The key of the token in that Secret.
pub const SERVICE_TOKEN_KEY: &str = "token";

/// The Secret the operator writes with the admin's token: Pinot takes a token, not a user and
/// password, for its own calls (`StaticTokenAuthProvider`).
pub fn service_token_secret(cluster: &str) -> String {
    format!("{cluster}-pinot-service-token")
}

#[derive(Clone, Debug, PartialEq)]
pub struct ValidPrincipal {
    pub name: String,
    pub password: SecretKey,
    pub permissions: Vec<String>,
    pub tables: Vec<String>,
    /// The environment variable its password is given in.
    pub env: String,
}

/// Basic auth as the pools get it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidBasicAuth {
    pub admin: ValidPrincipal,
    pub users: Vec<ValidPrincipal>,
}

const CONTROLLER_FACTORY: &str = "org.apache.pinot.controller.api.access.BasicAuthAccessControlFactory";
const BROKER_FACTORY: &str = "org.apache.pinot.broker.broker.BasicAuthAccessControlFactory";
const PERMISSIONS: &[&str] = &["READ", "CREATE", "UPDATE", "DELETE"];

impl ValidBasicAuth {
    pub fn principals(&self) -> impl Iterator<Item = &ValidPrincipal> {
        std::iter::once(&self.admin).chain(&self.users)
    }

    /// The Pinot properties of a pool of `role`.
    pub fn role_properties(&self, role: Role) -> Vec<(String, String)> {
        let token = format!("${{env:{SERVICE_TOKEN_ENV}}}");
        let principals = |prefix: &str, permissions: bool| {
            let mut out = vec![(
                format!("{prefix}.principals"),
                self.principals().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","),
            )];
            for p in self.principals() {
                out.push((format!("{prefix}.principals.{}.password", p.name), format!("${{env:{}}}", p.env)));
                if permissions && !p.permissions.is_empty() {
                    out.push((format!("{prefix}.principals.{}.permissions", p.name), p.permissions.join(",")));
                }
                if !p.tables.is_empty() {
                    out.push((format!("{prefix}.principals.{}.tables", p.name), p.tables.join(",")));
                }
            }
            out
        };
        match role {
            Role::Controller => {
                let mut out =
                    vec![("controller.admin.access.control.factory.class".to_string(), CONTROLLER_FACTORY.to_string())];
                out.extend(principals("controller.admin.access.control", true));
                out.push(("pinot.controller.segment.fetcher.auth.token".into(), token.clone()));
                // Read from 1.3.0 (calls to brokers); ignored before.
                out.push(("controller.broker.auth.token".into(), token));
                out
            }
            Role::Broker => {
                let mut out = vec![("pinot.broker.access.control.class".to_string(), BROKER_FACTORY.to_string())];
                out.extend(principals("pinot.broker.access.control", false));
                out
            }
            Role::Server => vec![
                ("pinot.server.segment.fetcher.auth.token".into(), token.clone()),
                ("pinot.server.segment.uploader.auth.token".into(), token),
            ],
            Role::Minion => vec![
                ("task.auth.token".into(), token.clone()),
                ("pinot.minion.segment.fetcher.auth.token".into(), token),
            ],
        }
    }

    /// Whether a pool's `config` key is one basic auth writes or would contradict.
    pub fn writes_key(role: Role, key: &str) -> bool {
        let prefixes: &[&str] = match role {
            Role::Controller => &[
                "controller.admin.access.control.",
                "pinot.controller.segment.fetcher.auth.",
                "controller.broker.auth.",
            ],
            Role::Broker => &["pinot.broker.access.control."],
            Role::Server => &["pinot.server.segment.fetcher.auth.", "pinot.server.segment.uploader.auth."],
            Role::Minion => &["task.auth.", "pinot.minion.segment.fetcher.auth."],
        };
        role::under_any(key, prefixes)
    }
}

pub(super) fn validate(spec: &BasicAuth, errors: &mut Errors) -> ValidBasicAuth {
    let principal = |at: String, p: &PinotPrincipal, env: String, errors: &mut Errors| {
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 64
            && p.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            errors.push(
                format!("{at}.name"),
                format!(
                    "{:?} is not a principal name Pinot's properties can hold; use letters, digits, '_', '-' and '.'",
                    p.name
                ),
            );
        }
        if !super::is_dns_subdomain(&p.password_secret.name) {
            errors.push(
                format!("{at}.passwordSecret.name"),
                format!("{:?} is not a Secret name", p.password_secret.name),
            );
        }
        if p.password_secret.key.trim().is_empty() {
            errors.push(format!("{at}.passwordSecret.key"), "is empty; name the Secret's key holding the password");
        }
        let mut permissions = Vec::new();
        for (i, perm) in p.permissions.iter().enumerate() {
            let upper = perm.trim().to_ascii_uppercase();
            if !PERMISSIONS.contains(&upper.as_str()) {
                errors.push(
                    format!("{at}.permissions[{i}]"),
                    format!("{perm:?} is not one of READ, CREATE, UPDATE, DELETE"),
                );
            }
            permissions.push(upper);
        }
        for (i, t) in p.tables.iter().enumerate() {
            if t.trim().is_empty() || t.contains([',', ' ', '=']) {
                errors.push(format!("{at}.tables[{i}]"), format!("{t:?} is not a table name"));
            }
        }
        ValidPrincipal {
            name: p.name.clone(),
            password: p.password_secret.clone(),
            permissions,
            tables: p.tables.clone(),
            env,
        }
    };
    let at = "spec.security.basicAuth";
    let admin = principal(format!("{at}.admin"), &spec.admin, "PINOT_AUTH_ADMIN_PASSWORD".into(), errors);
    if !spec.admin.permissions.is_empty() || !spec.admin.tables.is_empty() {
        errors.push(
            format!("{at}.admin"),
            "the admin has every permission on every table (the operator and Pinot's roles act as it); remove its permissions and tables, and add a user for narrower access",
        );
    }
    let mut users = Vec::new();
    for (i, u) in spec.users.iter().enumerate() {
        let user = principal(format!("{at}.users[{i}]"), u, format!("PINOT_AUTH_USER_{i}_PASSWORD"), errors);
        // Pinot reads `principals.Admin.password` and `principals.admin.password` as one key
        // (case, '-' and '_' do not count): two such names would share, or take over, one
        // principal's password and permissions.
        let same = |other: &str| role::relaxed_key(other) == role::relaxed_key(&u.name);
        if same(&spec.admin.name) || spec.users[..i].iter().any(|o| same(&o.name)) {
            errors.push(
                format!("{at}.users[{i}].name"),
                format!("{:?} is already a principal, as Pinot reads names (case, '-' and '_' do not count); give each its own name", u.name),
            );
        }
        users.push(user);
    }
    ValidBasicAuth { admin, users }
}

/// Where the TLS Secret's stores are mounted.
pub const TLS_DIR: &str = "/var/pinot/tls";
/// The environment variable holding the stores' password.
pub const TLS_PASSWORD_ENV: &str = "PINOT_TLS_PASSWORD";

/// HTTPS on controllers and brokers as the pools get it (`pinot-facts/security.md` §6-§8, §11b).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidTls {
    pub secret: String,
    pub password: SecretKey,
}

impl ValidTls {
    /// The Pinot properties of a pool of `role` (on top of which the plain listener's port key,
    /// `controller.port` / `pinot.broker.client.queryPort`, is left out: the HTTPS listener
    /// takes its port, so instance ids stay the same).
    pub fn role_properties(&self, role: Role) -> Vec<(String, String)> {
        let password = format!("${{env:{TLS_PASSWORD_ENV}}}");
        let stores = |prefix: &str, keystore: bool| {
            let mut out = Vec::new();
            let mut store = |kind: &str| {
                out.push((format!("{prefix}.{kind}.path"), format!("{TLS_DIR}/{kind}.p12")));
                out.push((format!("{prefix}.{kind}.password"), password.clone()));
                out.push((format!("{prefix}.{kind}.type"), "PKCS12".to_string()));
            };
            if keystore {
                store("keystore");
            }
            store("truststore");
            out
        };
        let mut out: Vec<(String, String)> = match role {
            Role::Controller => vec![
                ("controller.access.protocols".into(), "https".into()),
                ("controller.access.protocols.https.port".into(), role.main_port().to_string()),
                ("controller.access.protocols.https.vip".into(), "true".into()),
                ("controller.vip.protocol".into(), "https".into()),
                ("controller.broker.protocol".into(), "https".into()),
            ],
            Role::Broker => vec![
                ("pinot.broker.client.access.protocols".into(), "https".into()),
                ("pinot.broker.client.access.protocols.https.port".into(), role.main_port().to_string()),
            ],
            Role::Server => vec![("pinot.server.segment.uploader.protocol".into(), "https".into())],
            Role::Minion => vec![],
        };
        out.extend(match role {
            Role::Controller => stores("controller.tls", true),
            Role::Broker => stores("pinot.broker.tls", true),
            Role::Server => stores("pinot.server.tls", false),
            Role::Minion => stores("pinot.minion.tls", false),
        });
        out
    }

    /// The plain listener's port key the HTTPS listener replaces, for roles that serve HTTPS.
    pub fn replaced_key(role: Role) -> Option<&'static str> {
        match role {
            Role::Controller => Some("controller.port"),
            Role::Broker => Some("pinot.broker.client.queryPort"),
            _ => None,
        }
    }

    /// Whether `role` serves its client port over HTTPS.
    pub fn serves_https(role: Role) -> bool {
        Self::replaced_key(role).is_some()
    }

    /// The JVM's default trust store: the 1.2.0 controller's calls to servers and the broker
    /// use it (`pinot-facts/security.md` §7); Kubernetes expands `$(VAR)` from the env before.
    pub fn java_opts(role: Role) -> Option<String> {
        Self::serves_https(role).then(|| {
            format!(
                "-Djavax.net.ssl.trustStore={TLS_DIR}/truststore.p12 -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=$({TLS_PASSWORD_ENV})"
            )
        })
    }

    /// Whether a pool's `config` key is one TLS writes.
    pub fn writes_key(role: Role, key: &str) -> bool {
        let prefixes: &[&str] = match role {
            Role::Controller => &[
                "controller.tls.",
                "controller.access.protocols",
                "controller.vip.protocol",
                "controller.broker.protocol",
            ],
            Role::Broker => &["pinot.broker.tls.", "pinot.broker.client.access.protocols"],
            Role::Server => &["pinot.server.tls.", "pinot.server.segment.uploader.protocol"],
            Role::Minion => &["pinot.minion.tls."],
        };
        role::under_any(key, prefixes)
    }
}

pub(super) fn validate_tls(spec: &PinotTls, errors: &mut Errors) -> ValidTls {
    let at = "spec.security.tls";
    if !super::is_dns_subdomain(&spec.secret) {
        errors.push(format!("{at}.secret"), format!("{:?} is not a Secret name", spec.secret));
    }
    if !super::is_dns_subdomain(&spec.password_secret.name) {
        errors
            .push(format!("{at}.passwordSecret.name"), format!("{:?} is not a Secret name", spec.password_secret.name));
    }
    ValidTls { secret: spec.secret.clone(), password: spec.password_secret.clone() }
}
