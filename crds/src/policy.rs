//! `PinotPolicy`: a team's own policy module (a WebAssembly component) and its configuration.
//! A PinotCluster chooses its upgrade, scaling and tenant policy by name.

// kube-derive takes one `printcolumn(...)` per column, which clippy reads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A policy module and its configuration.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "PinotPolicy",
    namespaced,
    shortname = "pinotpolicy",
    category = "pinot",
    status = "PinotPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A policy plugin (WebAssembly component) for Pinot clusters: upgrade, scaling or tenant placement.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.policyName"),
    printcolumn(name = "Digest", type_ = "string", priority = "1", json_path = ".status.digest"),
    printcolumn(name = "Message", type_ = "string", priority = "1", json_path = ".status.message"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PinotPolicySpec {
    /// `upgrade`, `scaling` or `tenant`.
    pub kind: String,
    /// Where the module is.
    pub module: PolicyModuleSource,
    /// The module's sha256, `sha256:<64 hex>` (or the bare hex). A module whose bytes do not
    /// match is rejected, so what runs is exactly what was reviewed. Required with `configMap`
    /// and `file`; optional with `oci`, whose reference pins the artifact's manifest digest
    /// (and that the module's): when given, the module must match it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Configuration handed to the policy with every decision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// A policy for every namespace, owned by the platform team: any PinotCluster may name it in
/// `spec.policies`; a PinotPolicy of the same name in the cluster's namespace wins there. Its
/// `configMap` and `pullSecret` are read from the operator's own namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "ClusterPinotPolicy",
    shortname = "clusterpinotpolicy",
    shortname = "cpp",
    category = "pinot",
    status = "PinotPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A policy plugin (WebAssembly component) shared by the Pinot clusters of every namespace.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.policyName"),
    printcolumn(name = "Digest", type_ = "string", priority = "1", json_path = ".status.digest"),
    printcolumn(name = "Message", type_ = "string", priority = "1", json_path = ".status.message"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ClusterPinotPolicySpec {
    /// The same fields as a PinotPolicy's spec.
    #[serde(flatten)]
    pub policy: PinotPolicySpec,
}

/// Where a policy module is read from: exactly one of the three.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyModuleSource {
    /// A key of a ConfigMap's `binaryData` in the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKey>,
    /// A file in the operator's policy directory (`--policy-dir`), e.g. `zone-at-a-time.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A Wasm OCI artifact in a registry, pulled by digest (`pinot-operator policy push`
    /// publishes one and prints the reference to write here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciModule>,
}

/// A policy module published as a Wasm OCI artifact.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciModule {
    /// `registry/repository@sha256:<64 hex>`: the manifest digest is required (a tag alone is
    /// refused: what runs must be what was reviewed). A tag before the digest is ignored.
    pub reference: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson` in the policy's namespace with the
    /// registry's credentials (as for a pod's `imagePullSecrets`). None: anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKey {
    pub name: String,
    pub key: String,
}

/// What the operator made of the module.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the module is active) or `Rejected` (see `reason`; a module that was Ready
    /// before stays active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `DoesNotCompile`, `WrongApiVersion`, `WrongWorld`, `ForbiddenImports`, `DigestMismatch`,
    /// `SmokeTestFailed`, `ModuleNotFound`, `InvalidSpec`, `ModuleTooLarge`; for `oci`:
    /// `DigestRequired`, `RegistryUnavailable` (retried), `RegistryUnauthorized`,
    /// `ArtifactNotFound`, `NotAWasmArtifact`; with trusted keys: `Unsigned`,
    /// `SignatureNotTrusted`, `SignatureRequired` (a ConfigMap module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The artifact the active module was pulled from (`registry/repository@sha256:...`), for
    /// `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The trusted key (its file name) whose signature the active module's artifact carries,
    /// when the operator requires signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Digest of the active module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The active module's own name and version (`info()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// When the active module was loaded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
}
