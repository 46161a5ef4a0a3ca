//! Policy modules as OCI artifacts: pulled from a registry by digest, checked against the
//! digests the manifest and the reference name, cached on disk by digest; and published
//! (`pinot-operator policy push`). No Kubernetes here: the PinotPolicy controller turns a pull
//! secret into [`RegistryAuth`] ([`credentials_from_docker_config`]).
//!
//! The artifact is the Wasm OCI artifact of the CNCF TAG Runtime layout that `wkg oci push`
//! writes: an image manifest whose config has media type `application/vnd.wasm.config.v0+json`
//! and whose one layer, `application/wasm`, is the component. A pull also takes the older
//! layer type of `wasm-to-oci` and Kubewarden (`application/vnd.wasm.content.layer.v1+wasm`).
//!
//! Every check happens before a byte reaches the compiler: the reference must pin a manifest
//! digest, the manifest's bytes must hash to it, the manifest must have exactly one Wasm
//! layer, that layer's declared size must be within the limit (and the download is cut at the
//! limit whatever the registry declared), and the layer's bytes must hash to the layer's
//! digest. The cache keeps the manifest and the layer by digest and checks both again when it
//! reads them, so a corrupted cache is a miss, never a different module.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use futures::StreamExt;
use oci_client::{
    Client, Reference,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer},
    errors::{OciDistributionError, OciErrorCode},
    manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest, OciManifest},
    secrets::RegistryAuth,
};

use super::{runtime::digest, signature};

/// The layer media type of the CNCF Wasm OCI artifact (what `push` writes).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer media type of `wasm-to-oci` and Kubewarden's policies (accepted on pull).
pub const WASM_LAYER_MEDIA_TYPE_V1: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
/// The config media type of the CNCF Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The artifact type of a Wasm component (OCI 1.1 `artifactType`).
pub const WASM_COMPONENT_ARTIFACT_TYPE: &str = "application/vnd.wasm.component.v1+wasm";
/// The largest module pulled unless the operator is told otherwise (`--max-module-bytes`).
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 << 20;
/// Annotations `push` writes on the manifest.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_POLICY_KIND: &str = "dev.controlplane.pinot.policy.kind";
pub const ANNOTATION_API_VERSION: &str = "dev.controlplane.pinot.policy.api-version";

/// How the operator reaches registries.
#[derive(Clone, Debug)]
pub struct RegistrySettings {
    /// Registries (`host[:port]`, as in a reference) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// PEM certificates trusted besides the system's roots (a private registry's CA).
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// The largest module (layer) pulled.
    pub max_module_bytes: u64,
    /// Where pulled manifests and modules are kept by digest (none: every load pulls).
    pub cache_dir: Option<PathBuf>,
    /// How long connecting and each read may take.
    pub timeout: Duration,
    /// How long a policy whose registry failed waits before it is pulled again.
    pub retry: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            insecure: vec![],
            extra_roots_pem: vec![],
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            cache_dir: None,
            timeout: Duration::from_secs(30),
            retry: Duration::from_secs(30),
        }
    }
}

/// Why a module could not be pulled; [`PullError::reason`] is the PinotPolicy's status reason.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "{field} {reference:?} does not pin a digest: write it as registry/repository@sha256:<64 hex> (`pinot-operator policy push` prints it)"
    )]
    DigestRequired { field: &'static str, reference: String },
    #[error("{field} {reference:?} is not an OCI reference: {message}")]
    InvalidReference { field: &'static str, reference: String, message: String },
    #[error("registry {registry} cannot be reached: {message}")]
    Unavailable { registry: String, message: String },
    #[error("registry {registry} refused the credentials for {reference}: {message}; check spec.module.oci.pullSecret")]
    Unauthorized { registry: String, reference: String, message: String },
    #[error("{reference} does not exist in its registry: {message}")]
    NotFound { reference: String, message: String },
    #[error(
        "{what} of {reference} hashes to {found}, not {expected}: the registry served other bytes than the reference pins"
    )]
    DigestMismatch { what: &'static str, reference: String, expected: String, found: String },
    #[error("a blob of {reference} does not match its digest: {message}")]
    BlobDigest { reference: String, message: String },
    #[error("{reference} is not a Wasm artifact: {message}")]
    NotWasm { reference: String, message: String },
    #[error("the module of {reference} is {size} bytes, over the operator's limit of {limit} (--max-module-bytes)")]
    TooLarge { reference: String, size: u64, limit: u64 },
    #[error("registry {registry} failed for {reference}: {message}")]
    Registry { registry: String, reference: String, message: String },
}

impl PullError {
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::DigestRequired { .. } => "DigestRequired",
            PullError::InvalidReference { .. } => "InvalidSpec",
            PullError::Unavailable { .. } | PullError::Registry { .. } => "RegistryUnavailable",
            PullError::Unauthorized { .. } => "RegistryUnauthorized",
            PullError::NotFound { .. } => "ArtifactNotFound",
            PullError::DigestMismatch { .. } | PullError::BlobDigest { .. } => "DigestMismatch",
            PullError::NotWasm { .. } => "NotAWasmArtifact",
            PullError::TooLarge { .. } => "ModuleTooLarge",
        }
    }

    /// Whether trying again later may succeed: the registry failed, the artifact is not pushed
    /// yet (a policy may be applied before its pipeline publishes the module), or the
    /// credentials are refused (pull secrets are not watched: a fixed one is found next time).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PullError::Unavailable { .. }
                | PullError::Registry { .. }
                | PullError::NotFound { .. }
                | PullError::Unauthorized { .. }
        )
    }
}

/// A reference that pins a manifest digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedReference {
    reference: Reference,
    /// `sha256:<64 lower-case hex>`.
    pub digest: String,
}

impl PinnedReference {
    /// Parses `registry/repository@sha256:<hex>` (a tag before the digest is allowed and
    /// ignored, as the container runtimes do); `field` names where it was written.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, PullError> {
        let reference: Reference = text.trim().parse().map_err(|e: oci_client::ParseError| {
            PullError::InvalidReference { field, reference: text.to_string(), message: e.to_string() }
        })?;
        let Some(digest) = reference.digest().map(str::to_string) else {
            return Err(PullError::DigestRequired { field, reference: text.to_string() });
        };
        let hex = digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(PullError::InvalidReference {
                field,
                reference: text.to_string(),
                message: format!("the digest must be sha256:<64 lower-case hex>, not {digest}"),
            });
        }
        let reference = Reference::with_digest(
            reference.registry().to_string(),
            reference.repository().to_string(),
            digest.clone(),
        );
        Ok(PinnedReference { reference, digest })
    }

    /// The registry as written (`host[:port]`; `docker.io` when none was).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    pub fn repository(&self) -> &str {
        self.reference.repository()
    }
}

impl PinnedReference {
    /// Where cosign keeps the signatures of this artifact: the `sha256-<hex>.sig` tag of its
    /// repository.
    pub fn signature_reference(&self) -> Reference {
        Reference::with_tag(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            signature::signature_tag(&self.digest),
        )
    }

    /// `registry/repository`, what a signature's payload names.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.reference.registry(), self.reference.repository())
    }
}

impl std::fmt::Display for PinnedReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.reference.registry(), self.reference.repository(), self.digest)
    }
}

/// A module pulled (or read from the cache) and checked.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The manifest's digest (the one the reference pins).
    pub manifest_digest: String,
    /// The module's own digest (`sha256:<hex>` of `bytes`: the layer's digest).
    pub module_digest: String,
    pub bytes: Vec<u8>,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// Pulls and publishes policy modules. Each pull or push has a client of its own: the OCI
/// client keeps the first credentials it is given for a registry, and one policy's pull
/// secret must never serve another policy's pull.
pub struct Registries {
    settings: RegistrySettings,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Registries {
    /// Registries reached with `settings`; fails on a certificate that does not parse.
    pub fn new(settings: RegistrySettings) -> Result<Self, String> {
        // The operator's TLS is rustls with ring (as kube's); install it if nobody has yet.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registries = Registries { settings };
        registries.client()?;
        Ok(registries)
    }

    fn client(&self) -> Result<Client, String> {
        let settings = &self.settings;
        let protocol = if settings.insecure.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(settings.insecure.clone())
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates: settings
                .extra_roots_pem
                .iter()
                .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
                .collect(),
            // An artifact is one manifest: an index is refused, not resolved to a platform.
            platform_resolver: None,
            connect_timeout: Some(settings.timeout),
            read_timeout: Some(settings.timeout),
            user_agent: concat!("pinot-operator/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Client::try_from(config).map_err(|e| format!("the registry client cannot be built: {e}"))
    }

    fn client_for(&self, registry: &str) -> Result<Client, PullError> {
        self.client().map_err(|message| PullError::Unavailable { registry: registry.to_string(), message })
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// The module `reference` pins: from the cache when it holds both digests, otherwise from
    /// the registry (and then cached).
    pub async fn pull(&self, reference: &PinnedReference, auth: &RegistryAuth) -> Result<Artifact, PullError> {
        let scope = CacheScope::of(reference, auth);
        if let Some(artifact) = self.cached(&scope, reference).await {
            return Ok(artifact);
        }
        self.deadline(reference, self.pull_uncached(&scope, reference, auth)).await
    }

    /// `work`, or `Unavailable` once it took longer than a pull may (a registry that trickles
    /// bytes never trips the per-read timeout).
    async fn deadline<T>(
        &self,
        reference: &PinnedReference,
        work: impl Future<Output = Result<T, PullError>>,
    ) -> Result<T, PullError> {
        let limit = self.settings.timeout * PULL_DEADLINE_READS;
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(PullError::Unavailable {
                registry: reference.registry().to_string(),
                message: format!("the pull of {reference} took longer than {limit:?}"),
            })
        })
    }

    async fn pull_uncached(
        &self,
        scope: &CacheScope,
        reference: &PinnedReference,
        auth: &RegistryAuth,
    ) -> Result<Artifact, PullError> {
        let registry = reference.registry().to_string();
        let client = self.client_for(&registry)?;
        let map = |e: OciDistributionError| classify(e, &registry, &reference.to_string());
        let (raw, _) = client
            .pull_manifest_raw(
                &reference.reference,
                auth,
                &[OCI_IMAGE_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, DOCKER_MANIFEST],
            )
            .await
            .map_err(map)?;
        let found = digest(&raw);
        if found != reference.digest {
            return Err(PullError::DigestMismatch {
                what: "the manifest",
                reference: reference.to_string(),
                expected: reference.digest.clone(),
                found,
            });
        }
        let layer = wasm_layer(reference, &raw, self.settings.max_module_bytes)?;
        let mut stream = client.pull_blob_stream(&reference.reference, &layer).await.map_err(map)?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| PullError::Unavailable { registry: registry.clone(), message: e.to_string() })?;
            if (bytes.len() + chunk.len()) as u64 > self.settings.max_module_bytes {
                return Err(PullError::TooLarge {
                    reference: reference.to_string(),
                    size: (bytes.len() + chunk.len()) as u64,
                    limit: self.settings.max_module_bytes,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let module_digest = digest(&bytes);
        if module_digest != layer.digest {
            return Err(PullError::DigestMismatch {
                what: "the module layer",
                reference: reference.to_string(),
                expected: layer.digest,
                found: module_digest,
            });
        }
        self.store(scope, &[(&reference.digest, &raw), (&module_digest, &bytes)]).await;
        Ok(Artifact { manifest_digest: reference.digest.clone(), module_digest, bytes, cached: false })
    }

    /// Publishes `module` at `reference` (`registry/repository:tag`, or without a tag for
    /// `latest`) as a Wasm OCI artifact; returns the pinned reference to write in a policy.
    pub async fn push(
        &self,
        reference: &str,
        module: Vec<u8>,
        annotations: std::collections::BTreeMap<String, String>,
        auth: &RegistryAuth,
    ) -> Result<PinnedReference, PullError> {
        let field = "REFERENCE";
        let parsed: Reference = reference.trim().parse().map_err(|e: oci_client::ParseError| {
            PullError::InvalidReference { field, reference: reference.to_string(), message: e.to_string() }
        })?;
        if parsed.digest().is_some() {
            return Err(PullError::InvalidReference {
                field,
                reference: reference.to_string(),
                message: "push to a tag (registry/repository:tag); the digest is what push prints".into(),
            });
        }
        let registry = parsed.registry().to_string();
        let client = self.client_for(&registry)?;
        let map = |e: OciDistributionError| classify(e, &registry, reference);
        let module_digest = digest(&module);
        let config = serde_json::json!({
            "created": annotations.get(ANNOTATION_CREATED),
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [module_digest],
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config = Config::new(config, WASM_CONFIG_MEDIA_TYPE.into(), None);
        let layer = ImageLayer::new(module, WASM_LAYER_MEDIA_TYPE.into(), None);
        let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
        manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.into());
        manifest.artifact_type = Some(WASM_COMPONENT_ARTIFACT_TYPE.into());
        // The manifest is sent as these bytes, so their digest is the artifact's.
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        client.store_auth_if_needed(parsed.resolve_registry(), auth).await;
        client.push_blob(&parsed, layer.data, &module_digest).await.map_err(map)?;
        let config_digest = digest(&config.data);
        client.push_blob(&parsed, config.data, &config_digest).await.map_err(map)?;
        let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
        client.push_manifest_raw(&parsed, manifest.clone(), content_type).await.map_err(map)?;
        PinnedReference::parse(field, &format!("{}/{}@{}", parsed.registry(), parsed.repository(), digest(&manifest)))
    }

    /// The cosign signatures of the artifact `reference` pins (the layers of the manifest at
    /// its `sha256-<hex>.sig` tag); none when it has no such tag.
    pub async fn signatures(
        &self,
        reference: &PinnedReference,
        auth: &RegistryAuth,
    ) -> Result<Vec<signature::SignatureLayer>, PullError> {
        let scope = CacheScope::of(reference, auth);
        let cache_key = format!("{}.sig", reference.digest);
        match self.deadline(reference, self.signatures_uncached(reference, auth)).await {
            Ok(layers) => {
                let json = serde_json::to_vec(&layers).unwrap_or_default();
                self.store(&scope, &[(&cache_key, &json)]).await;
                Ok(layers)
            }
            // The registry is away: the signatures read last time, verified again by the caller.
            Err(e) if e.is_transient() => match self.read_cached(&scope, &cache_key).await {
                Some(json) => serde_json::from_slice(&json).map_err(|_| e),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn signatures_uncached(
        &self,
        reference: &PinnedReference,
        auth: &RegistryAuth,
    ) -> Result<Vec<signature::SignatureLayer>, PullError> {
        let registry = reference.registry().to_string();
        let client = self.client_for(&registry)?;
        let map = |e: OciDistributionError| classify(e, &registry, &reference.to_string());
        let Some(manifest) = self.signature_manifest(&client, reference, auth).await? else { return Ok(vec![]) };
        let sig_ref = reference.signature_reference();
        let mut layers = Vec::new();
        let signed = manifest.layers.iter().filter(|l| l.media_type == signature::SIMPLE_SIGNING_MEDIA_TYPE);
        for layer in signed.take(MAX_SIGNATURES) {
            let Some(sig) = layer.annotations.as_ref().and_then(|a| a.get(signature::SIGNATURE_ANNOTATION)) else {
                continue;
            };
            if !(0..=MAX_PAYLOAD_BYTES).contains(&layer.size) {
                continue;
            }
            // Read at most what a payload may be, whatever the registry sends.
            let mut stream = client.pull_blob_stream(&sig_ref, layer).await.map_err(map)?;
            let mut payload = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| PullError::Unavailable { registry: registry.clone(), message: e.to_string() })?;
                if (payload.len() + chunk.len()) as i64 > MAX_PAYLOAD_BYTES {
                    payload.clear();
                    break;
                }
                payload.extend_from_slice(&chunk);
            }
            if digest(&payload) == layer.digest {
                layers.push(signature::SignatureLayer { payload, signature: sig.clone() });
            }
        }
        Ok(layers)
    }

    /// Adds a signature to the artifact `reference` pins, as `cosign sign` does: one more
    /// layer in the manifest at its `.sig` tag (an identical signature is not added twice).
    pub async fn push_signature(
        &self,
        reference: &PinnedReference,
        layer: signature::SignatureLayer,
        auth: &RegistryAuth,
    ) -> Result<String, PullError> {
        let registry = reference.registry().to_string();
        let client = self.client_for(&registry)?;
        let map = |e: OciDistributionError| classify(e, &registry, &reference.to_string());
        let sig_ref = reference.signature_reference();
        let mut manifest = self.signature_manifest(&client, reference, auth).await?.unwrap_or_default();
        let payload_digest = digest(&layer.payload);
        let exists = manifest.layers.iter().any(|l| {
            l.digest == payload_digest
                && l.annotations.as_ref().and_then(|a| a.get(signature::SIGNATURE_ANNOTATION)) == Some(&layer.signature)
        });
        if !exists {
            client.store_auth_if_needed(sig_ref.resolve_registry(), auth).await;
            client.push_blob(&sig_ref, layer.payload.clone(), &payload_digest).await.map_err(map)?;
            manifest.layers.push(oci_client::manifest::OciDescriptor {
                media_type: signature::SIMPLE_SIGNING_MEDIA_TYPE.into(),
                digest: payload_digest,
                size: layer.payload.len() as i64,
                annotations: Some([(signature::SIGNATURE_ANNOTATION.to_string(), layer.signature)].into()),
                ..Default::default()
            });
        }
        // The config cosign writes: one diff_id and one empty history entry per layer.
        let epoch = "0001-01-01T00:00:00Z";
        let config = serde_json::json!({
            "architecture": "",
            "created": epoch,
            "history": manifest.layers.iter().map(|_| serde_json::json!({"created": epoch})).collect::<Vec<_>>(),
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": manifest.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
            "config": {},
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config_digest = digest(&config);
        client.store_auth_if_needed(sig_ref.resolve_registry(), auth).await;
        client.push_blob(&sig_ref, config.clone(), &config_digest).await.map_err(map)?;
        manifest.schema_version = 2;
        manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.into());
        manifest.config = oci_client::manifest::OciDescriptor {
            media_type: oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE.into(),
            digest: config_digest,
            size: config.len() as i64,
            ..Default::default()
        };
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
        client.push_manifest_raw(&sig_ref, body, content_type).await.map_err(map)?;
        Ok(format!(
            "{}/{}:{}",
            reference.registry(),
            reference.repository(),
            signature::signature_tag(&reference.digest)
        ))
    }

    /// The manifest at the `.sig` tag of `reference`, if there is one.
    async fn signature_manifest(
        &self,
        client: &Client,
        reference: &PinnedReference,
        auth: &RegistryAuth,
    ) -> Result<Option<OciImageManifest>, PullError> {
        let registry = reference.registry().to_string();
        let sig_ref = reference.signature_reference();
        match client.pull_manifest_raw(&sig_ref, auth, &[OCI_IMAGE_MEDIA_TYPE, DOCKER_MANIFEST]).await {
            Ok((raw, _)) => serde_json::from_slice(&raw).map(Some).map_err(|e| PullError::Registry {
                registry,
                reference: sig_ref.whole(),
                message: format!("the signature manifest does not parse: {e}"),
            }),
            Err(e) => match classify(e, &registry, &sig_ref.whole()) {
                PullError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn cached(&self, scope: &CacheScope, reference: &PinnedReference) -> Option<Artifact> {
        let raw = self.read_cached(scope, &reference.digest).await?;
        if digest(&raw) != reference.digest {
            return None;
        }
        let layer = wasm_layer(reference, &raw, self.settings.max_module_bytes).ok()?;
        let bytes = self.read_cached(scope, &layer.digest).await?;
        (digest(&bytes) == layer.digest).then(|| Artifact {
            manifest_digest: reference.digest.clone(),
            module_digest: layer.digest,
            bytes,
            cached: true,
        })
    }

    async fn read_cached(&self, scope: &CacheScope, key: &str) -> Option<Vec<u8>> {
        let dir = self.settings.cache_dir.as_ref()?;
        tokio::fs::read(scope.path(dir, key)).await.ok()
    }

    /// Keeps what was pulled; a cache that cannot be written only costs a pull.
    async fn store(&self, scope: &CacheScope, entries: &[(&str, &[u8])]) {
        let Some(dir) = &self.settings.cache_dir else { return };
        let write = async {
            tokio::fs::create_dir_all(scope.dir(dir)).await?;
            for (key, bytes) in entries {
                let path = scope.path(dir, key);
                // A name of its own, so that two pulls of one artifact never share a file.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let partial = path.with_extension(format!("partial-{}-{n}", std::process::id()));
                tokio::fs::write(&partial, bytes).await?;
                tokio::fs::rename(&partial, &path).await?;
            }
            std::io::Result::Ok(())
        };
        if let Err(e) = write.await {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot cache a pulled policy module; it will be pulled again");
        }
    }
}

/// Where in the cache one registry repository, read with one set of credentials, keeps its
/// files: a policy never gets from the cache what its own credentials (or none) could not pull
/// from the registry, whatever another policy pulled.
struct CacheScope(String);

impl CacheScope {
    fn of(reference: &PinnedReference, auth: &RegistryAuth) -> Self {
        let credentials = match auth {
            RegistryAuth::Anonymous => "anonymous".to_string(),
            RegistryAuth::Basic(user, password) => format!("basic\n{user}\n{password}"),
            RegistryAuth::Bearer(token) => format!("bearer\n{token}"),
        };
        let scope = digest(format!("{}\n{}\n{credentials}", reference.registry(), reference.repository()).as_bytes());
        CacheScope(scope.trim_start_matches("sha256:")[..32].to_string())
    }

    fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    fn path(&self, root: &Path, key: &str) -> PathBuf {
        self.dir(root).join(key.replace(':', "-"))
    }
}

/// A signature payload is a few hundred bytes; anything much larger is not one.
const MAX_PAYLOAD_BYTES: i64 = 1 << 20;
/// The signatures of an artifact read at most.
const MAX_SIGNATURES: usize = 64;
/// A whole pull may take this many times the per-read timeout.
const PULL_DEADLINE_READS: u32 = 4;

const DOCKER_MANIFEST: &str = oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE;

/// The one Wasm layer of the manifest `raw`, within the size limit.
fn wasm_layer(
    reference: &PinnedReference,
    raw: &[u8],
    limit: u64,
) -> Result<oci_client::manifest::OciDescriptor, PullError> {
    let not_wasm = |message: String| PullError::NotWasm { reference: reference.to_string(), message };
    let manifest: OciManifest =
        serde_json::from_slice(raw).map_err(|e| not_wasm(format!("its manifest does not parse: {e}")))?;
    let manifest = match manifest {
        OciManifest::Image(m) => m,
        OciManifest::ImageIndex(_) => {
            return Err(not_wasm(
                "it is an image index (several platforms); pin the digest of one Wasm artifact".into(),
            ));
        }
    };
    let mut wasm = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE || l.media_type == WASM_LAYER_MEDIA_TYPE_V1);
    let (Some(layer), None) = (wasm.next(), wasm.next()) else {
        let types: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        return Err(not_wasm(format!(
            "it must have exactly one layer of media type {WASM_LAYER_MEDIA_TYPE} (or {WASM_LAYER_MEDIA_TYPE_V1}); its layers are {types:?} (a container image cannot be a policy: publish the .wasm with `pinot-operator policy push`)"
        )));
    };
    let size = u64::try_from(layer.size).unwrap_or(0);
    if size > limit {
        return Err(PullError::TooLarge { reference: reference.to_string(), size, limit });
    }
    Ok(layer.clone())
}

/// An error of the OCI client as the reason a user can act on.
fn classify(error: OciDistributionError, registry: &str, reference: &str) -> PullError {
    let (registry, reference) = (registry.to_string(), reference.to_string());
    match error {
        OciDistributionError::RequestError(e) => {
            // reqwest's Display hides the cause (connection refused, certificate unknown).
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            PullError::Unavailable { registry, message }
        }
        OciDistributionError::AuthenticationFailure(message) => {
            PullError::Unauthorized { registry, reference, message }
        }
        OciDistributionError::UnauthorizedError { url } => {
            PullError::Unauthorized { registry, reference, message: format!("401 from {url}") }
        }
        OciDistributionError::ImageManifestNotFoundError(message) => PullError::NotFound { reference, message },
        OciDistributionError::RegistryError { envelope, url } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let message = format!("{url}: {envelope}");
            if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                PullError::Unauthorized { registry, reference, message }
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                PullError::NotFound { reference, message }
            } else {
                PullError::Registry { registry, reference, message }
            }
        }
        OciDistributionError::ServerError { code: 404, url, message } => {
            PullError::NotFound { reference, message: format!("{url}: {message}") }
        }
        OciDistributionError::ServerError { code, url, message } if code == 401 || code == 403 => {
            PullError::Unauthorized { registry, reference, message: format!("{code} from {url}: {message}") }
        }
        OciDistributionError::DigestError(e) => PullError::BlobDigest { reference, message: e.to_string() },
        other => PullError::Registry { registry, reference, message: other.to_string() },
    }
}

/// The credentials a Docker config (`.dockerconfigjson` of a `kubernetes.io/dockerconfigjson`
/// Secret, or `~/.docker/config.json`) holds for `registry`; anonymous when it has none. Keys
/// may be written as `host[:port]`, with a scheme or with a path (`https://index.docker.io/v1/`
/// for Docker Hub).
pub fn credentials_from_docker_config(json: &[u8], registry: &str) -> Result<RegistryAuth, String> {
    #[derive(serde::Deserialize)]
    struct DockerConfig {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        username: Option<String>,
        password: Option<String>,
        auth: Option<String>,
        identitytoken: Option<String>,
    }
    let config: DockerConfig = serde_json::from_slice(json).map_err(|e| format!("not a Docker config: {e}"))?;
    let wanted = normalise_registry(registry);
    let Some((_, entry)) = config.auths.iter().find(|(key, _)| normalise_registry(key) == wanted) else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    if let Some(auth) = &entry.auth {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths[{registry:?}].auth is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| format!("auths[{registry:?}].auth is not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auths[{registry:?}].auth must be base64 of user:password"))?;
        return Ok(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    if let Some(token) = &entry.identitytoken {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    Ok(RegistryAuth::Anonymous)
}

fn normalise_registry(key: &str) -> String {
    let host = key.trim().trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_reference_must_pin_a_digest() {
        let e =
            PinnedReference::parse("spec.module.oci.reference", "registry.example.com/policies/zone:1.0").unwrap_err();
        assert_eq!(e.reason(), "DigestRequired");
        assert!(e.to_string().contains("spec.module.oci.reference"), "{e}");
        let r = PinnedReference::parse("f", &format!("127.0.0.1:5000/pinot/zone@{D}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "pinot/zone");
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/pinot/zone@{D}"));
        // A tag beside the digest is ignored, as container runtimes do.
        let r = PinnedReference::parse("f", &format!("ghcr.io/team/zone:1.0@{D}")).unwrap();
        assert_eq!(r.digest, D);
        let e = PinnedReference::parse("f", "ghcr.io/team/zone@sha256:abc").unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec", "{e}");
    }

    #[test]
    fn docker_config_credentials_match_the_registry_however_the_key_is_written() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "127.0.0.1:5443":{"username":"pinot","password":"s3cret"},
            "https://ghcr.io":{"identitytoken":"tok"}}}"#;
        let basic = |u: &str, p: &str| RegistryAuth::Basic(u.into(), p.into());
        assert_eq!(credentials_from_docker_config(json, "docker.io").unwrap(), basic("user", "pass"));
        assert_eq!(credentials_from_docker_config(json, "127.0.0.1:5443").unwrap(), basic("pinot", "s3cret"));
        assert_eq!(credentials_from_docker_config(json, "ghcr.io").unwrap(), RegistryAuth::Bearer("tok".into()));
        assert_eq!(credentials_from_docker_config(json, "quay.io").unwrap(), RegistryAuth::Anonymous);
        assert!(credentials_from_docker_config(br#"{"auths": []}"#, "quay.io").is_err());
    }

    fn manifest(layers: &[(&str, i64)]) -> Vec<u8> {
        let layers: Vec<_> =
            layers.iter().map(|(t, size)| serde_json::json!({"mediaType": t, "digest": D, "size": size})).collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, "digest": D, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn the_manifest_must_carry_one_wasm_layer_within_the_limit() {
        let r = PinnedReference::parse("f", &format!("r.example/p@{D}")).unwrap();
        assert_eq!(wasm_layer(&r, &manifest(&[(WASM_LAYER_MEDIA_TYPE, 10)]), 64).unwrap().size, 10);
        assert!(wasm_layer(&r, &manifest(&[(WASM_LAYER_MEDIA_TYPE_V1, 10)]), 64).is_ok());
        let image = manifest(&[("application/vnd.oci.image.layer.v1.tar+gzip", 10)]);
        let e = wasm_layer(&r, &image, 64).unwrap_err();
        assert_eq!(e.reason(), "NotAWasmArtifact");
        assert!(e.to_string().contains("tar+gzip"), "{e}");
        let two = manifest(&[(WASM_LAYER_MEDIA_TYPE, 10), (WASM_LAYER_MEDIA_TYPE, 10)]);
        assert_eq!(wasm_layer(&r, &two, 64).unwrap_err().reason(), "NotAWasmArtifact");
        let e = wasm_layer(&r, &manifest(&[(WASM_LAYER_MEDIA_TYPE, 65)]), 64).unwrap_err();
        assert_eq!(e.reason(), "ModuleTooLarge");
    }
}
