//! How the operator reaches one PinotCluster's controller: its URL (the cluster's Service, the
//! URL template, the annotation, or `spec.external.controllerUrl`), its credentials (HTTP Basic
//! or a bearer token from a Secret) and the CA it trusts over HTTPS (a ConfigMap key).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};
use pinot_crds::PinotCluster;
use reqwest::header::HeaderValue;
use sha2::{Digest, Sha256};

use crate::pinot::{ControllerLocator, PinotClient, http_client};

/// The key of a cluster's TLS Secret holding its CA as PEM (cert-manager's name).
pub const TLS_CA_KEY: &str = "ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("reading {what} {namespace}/{name} for {field}: {source}")]
    Read { what: &'static str, namespace: String, name: String, field: &'static str, source: Box<kube::Error> },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl AccessError {
    /// Whether the error may go away without a spec change (the API server failed to answer).
    pub fn is_transient(&self) -> bool {
        match self {
            AccessError::Read { source, .. } => match &**source {
                kube::Error::Api(e) => e.code >= 500 || e.code == 404 || e.code == 429,
                _ => true,
            },
            AccessError::Invalid { .. } => false,
        }
    }
}

/// Builds Pinot clients for clusters, sharing one HTTP client per trusted CA bundle.
#[derive(Clone)]
pub struct ControllerAccess {
    client: Client,
    locator: ControllerLocator,
    /// The default HTTP client (system roots), and one per CA bundle digest.
    http: reqwest::Client,
    with_ca: Arc<Mutex<HashMap<String, reqwest::Client>>>,
}

impl ControllerAccess {
    pub fn new(client: Client, locator: ControllerLocator) -> Self {
        Self { client, locator, http: http_client(), with_ca: Arc::default() }
    }

    pub fn locator(&self) -> &ControllerLocator {
        &self.locator
    }

    /// The base URL of the cluster's controller.
    pub fn url_for(&self, cluster: &PinotCluster) -> String {
        match &cluster.spec.external {
            Some(external) => external.controller_url.trim().trim_end_matches('/').to_string(),
            None => {
                let url = self.locator.url_for(cluster);
                // With spec.security.tls the controller's client port speaks HTTPS only.
                match (cluster.spec.security.as_ref().and_then(|s| s.tls.as_ref()), url.strip_prefix("http://")) {
                    (Some(_), Some(rest)) => format!("https://{rest}"),
                    _ => url,
                }
            }
        }
    }

    /// A client for the cluster's controller, with the credentials and CA of
    /// `spec.controllerAccess`.
    pub async fn client_for(&self, cluster: &PinotCluster) -> Result<PinotClient, AccessError> {
        let ns = cluster.namespace().unwrap_or_default();
        let url = self.url_for(cluster);
        if let Some(external) = &cluster.spec.external
            && !(external.controller_url.starts_with("http://") || external.controller_url.starts_with("https://"))
        {
            return Err(AccessError::Invalid {
                field: "spec.external.controllerUrl",
                message: format!("{:?} is not an http:// or https:// URL", external.controller_url),
            });
        }
        let managed = cluster.spec.external.is_none();
        let security = cluster.spec.security.as_ref().filter(|_| managed);
        let default_access = pinot_crds::ControllerAccess::default();
        let access = cluster.spec.controller_access.as_ref().unwrap_or(&default_access);
        let http = match (&access.ca_bundle, security.and_then(|s| s.tls.as_ref())) {
            (Some(key), _) => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
                let cm = api.get(&key.name).await.map_err(|source| AccessError::Read {
                    what: "ConfigMap",
                    namespace: ns.clone(),
                    name: key.name.clone(),
                    field: "spec.controllerAccess.caBundle",
                    source: Box::new(source),
                })?;
                let pem = cm.data.as_ref().and_then(|d| d.get(&key.key)).ok_or_else(|| AccessError::Invalid {
                    field: "spec.controllerAccess.caBundle.key",
                    message: format!("ConfigMap {} has no key {:?}", key.name, key.key),
                })?;
                self.http_trusting(pem)?
            }
            // A cluster the operator runs with HTTPS: it trusts the CA of the cluster's TLS Secret.
            (None, Some(tls)) => {
                let field = "spec.security.tls.secret";
                let data = self.secret(&ns, &tls.secret, field).await?;
                let pem = data.get(TLS_CA_KEY).ok_or_else(|| AccessError::Invalid {
                    field,
                    message: format!("Secret {} has no key {TLS_CA_KEY:?} (the CA as PEM)", tls.secret),
                })?;
                self.http_trusting(&String::from_utf8_lossy(pem))?
            }
            (None, None) => self.http.clone(),
        };
        // A cluster the operator runs with Pinot's basic auth, and no other credentials given:
        // the operator is its admin.
        let admin = security.and_then(|s| s.basic_auth.as_ref()).map(|a| &a.admin);
        if let (None, None, Some(admin)) = (&access.basic_auth_secret, &access.bearer_token_secret, admin) {
            let client = PinotClient::new(http, url);
            let field = "spec.security.basicAuth.admin.passwordSecret";
            let data = self.secret(&ns, &admin.password_secret.name, field).await?;
            let password = data.get(&admin.password_secret.key).ok_or_else(|| AccessError::Invalid {
                field,
                message: format!("Secret {} has no key {:?}", admin.password_secret.name, admin.password_secret.key),
            })?;
            return with_header(client, basic_auth_header(admin.name.as_bytes(), password), field);
        }
        let client = PinotClient::new(http, url);
        let header = match (&access.basic_auth_secret, &access.bearer_token_secret) {
            (Some(_), Some(_)) => {
                return Err(AccessError::Invalid {
                    field: "spec.controllerAccess",
                    message: "set basicAuthSecret or bearerTokenSecret, not both".into(),
                });
            }
            (Some(name), None) => {
                let data = self.secret(&ns, name, "spec.controllerAccess.basicAuthSecret").await?;
                let get = |key: &str| {
                    data.get(key).cloned().ok_or_else(|| AccessError::Invalid {
                        field: "spec.controllerAccess.basicAuthSecret",
                        message: format!("Secret {name} has no key {key:?} (it needs `username` and `password`)"),
                    })
                };
                let (user, password) = (get("username")?, get("password")?);
                Some(basic_auth_header(&user, &password))
            }
            (None, Some(key)) => {
                let data = self.secret(&ns, &key.name, "spec.controllerAccess.bearerTokenSecret").await?;
                let token = data.get(&key.key).ok_or_else(|| AccessError::Invalid {
                    field: "spec.controllerAccess.bearerTokenSecret.key",
                    message: format!("Secret {} has no key {:?}", key.name, key.key),
                })?;
                Some(format!("Bearer {}", String::from_utf8_lossy(token).trim()))
            }
            (None, None) => None,
        };
        match header {
            None => Ok(client),
            Some(h) => with_header(client, h, "spec.controllerAccess"),
        }
    }

    async fn secret(
        &self,
        ns: &str,
        name: &str,
        field: &'static str,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>, AccessError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = api.get(name).await.map_err(|source| AccessError::Read {
            what: "Secret",
            namespace: ns.to_string(),
            name: name.to_string(),
            field,
            source: Box::new(source),
        })?;
        let mut data: std::collections::BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        Ok(data)
    }

    /// An HTTP client that trusts exactly the certificates of `pem` (shared per bundle).
    fn http_trusting(&self, pem: &str) -> Result<reqwest::Client, AccessError> {
        let digest = format!("{:x}", Sha256::digest(pem.as_bytes()));
        let mut cache = self.with_ca.lock().expect("CA client cache poisoned");
        if let Some(c) = cache.get(&digest) {
            return Ok(c.clone());
        }
        let client = client_trusting(pem)?;
        cache.insert(digest, client.clone());
        Ok(client)
    }
}

/// The `Authorization` value of HTTP Basic auth, `Basic base64(user:password)`: what the
/// operator sends, and what Pinot's roles send as the admin's token.
pub fn basic_auth_header(user: &[u8], password: &[u8]) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode([user, b":", password].concat()))
}

/// The client sending `header` as its `Authorization`.
fn with_header(client: PinotClient, header: String, field: &'static str) -> Result<PinotClient, AccessError> {
    let mut value = HeaderValue::from_str(&header).map_err(|_| AccessError::Invalid {
        field,
        message: "the credentials contain characters an HTTP header cannot carry".into(),
    })?;
    value.set_sensitive(true);
    Ok(client.with_auth(value))
}

/// An HTTP client whose only roots are the PEM certificates of `pem`.
fn client_trusting(pem: &str) -> Result<reqwest::Client, AccessError> {
    let invalid = |message: String| AccessError::Invalid { field: "spec.controllerAccess.caBundle", message };
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| invalid(format!("not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("the bundle holds no PEM certificate".into()));
    }
    crate::pinot::http_client_builder()
        .tls_certs_only(certs)
        .build()
        .map_err(|e| invalid(format!("building a TLS client with it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_bundle_becomes_the_clients_only_roots_and_garbage_names_the_field() {
        let pem = include_str!("../tests/fixtures/tls/test-ca.pem");
        assert!(client_trusting(pem).is_ok());
        let err = client_trusting("not a certificate").unwrap_err().to_string();
        assert!(err.starts_with("spec.controllerAccess.caBundle: the bundle holds no PEM certificate"), "{err}");
    }
}
