//! `PinotSchema`, `PinotTable` and `PinotTenant`: Pinot's own objects as Kubernetes resources,
//! reconciled against the live Pinot controller of the PinotCluster they name.

// kube-derive takes one `printcolumn(...)` per column, which clippy reads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ClusterCondition;

/// What happens in Pinot when the resource is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The resource goes; the schema, table or tenant (and its data) stays in Pinot.
    #[default]
    Retain,
    /// The schema, table or tenant is deleted from Pinot too (a table with its segments).
    Delete,
}

impl DeletionPolicy {
    fn is_default(&self) -> bool {
        *self == DeletionPolicy::Retain
    }
}

/// A Pinot schema, applied to the controller of `spec.cluster`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "PinotSchema",
    namespaced,
    shortname = "pinotschema",
    category = "pinot",
    status = "PinotObjectStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Pinot schema, kept equal to the live schema in the cluster's Pinot controller.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Schema", type_ = "string", json_path = ".status.pinotName"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PinotSchemaSpec {
    /// The PinotCluster (same namespace) whose Pinot controller holds the schema.
    pub cluster: String,
    /// The schema as Pinot takes it (`schemaName`, `dimensionFieldSpecs`, `metricFieldSpecs`,
    /// `dateTimeFieldSpecs`, `primaryKeyColumns`, ...). Without `schemaName` the resource's name
    /// is used.
    #[schemars(schema_with = "crate::resources::any_object")]
    pub schema: Value,
    /// After Pinot accepted a change, reload the segments of the tables using the schema
    /// (`PUT /schemas/{name}?reload=true`), so a new column is served from existing segments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reload_tables_on_change: bool,
    /// `Retain` (default) or `Delete`: whether deleting the resource deletes the schema in Pinot.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
}

/// A Pinot table: an OFFLINE config, a REALTIME config, or both (a hybrid table).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "PinotTable",
    namespaced,
    shortname = "pinottable",
    category = "pinot",
    status = "PinotObjectStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Pinot table (OFFLINE, REALTIME or hybrid), kept equal to the live table config in the cluster's Pinot controller.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Table", type_ = "string", json_path = ".status.pinotName"),
    printcolumn(name = "Types", type_ = "string", json_path = ".status.tableTypes"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PinotTableSpec {
    /// The PinotCluster (same namespace) whose Pinot controller holds the table.
    pub cluster: String,
    /// The PinotSchema resource (same namespace) of the table's schema. The table is created
    /// only once that schema is Ready, and Pinot requires the schema to be named like the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_ref: Option<String>,
    /// The raw table name (without `_OFFLINE` / `_REALTIME`). Default: the configs'
    /// `tableName`, else the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// The OFFLINE table config, as Pinot takes it (`tableType` may be left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::resources::any_object_opt")]
    pub offline: Option<Value>,
    /// The REALTIME table config, as Pinot takes it (`tableType` may be left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::resources::any_object_opt")]
    pub realtime: Option<Value>,
    /// `Retain` (default) or `Delete`: whether deleting the resource deletes the table (and its
    /// segments) in Pinot.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
}

/// A Pinot tenant: a group of brokers or servers carrying the tenant's tags, following the
/// `Tenant` body of Pinot's API. Which instances carry the tags is decided by the cluster's
/// tenant policy.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "PinotTenant",
    namespaced,
    shortname = "pinottenant",
    category = "pinot",
    status = "PinotObjectStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Pinot broker or server tenant, placed on instances by the cluster's tenant policy.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.tenantRole"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PinotTenantSpec {
    /// The PinotCluster (same namespace) whose instances carry the tenant.
    pub cluster: String,
    /// The tenant's name in Pinot (tags `<name>_BROKER`, `<name>_OFFLINE`, `<name>_REALTIME`).
    /// Default: the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<String>,
    /// `SERVER` or `BROKER`.
    pub tenant_role: String,
    /// Brokers of a broker tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_instances: Option<i32>,
    /// Servers of a server tenant that serve OFFLINE tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_instances: Option<i32>,
    /// Servers of a server tenant that serve REALTIME tables (may be the same servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_instances: Option<i32>,
    /// `Retain` (default) or `Delete`: whether deleting the resource removes the tenant's tags
    /// from its instances in Pinot.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
}

/// What the operator made of a schema, table or tenant.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotObjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: whether Pinot holds what the spec says, with Pinot's own error message when it
    /// refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterCondition>,
    /// The object's name in Pinot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinot_name: Option<String>,
    /// The generation Pinot last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// The generation Pinot refused as invalid or incompatible: not sent again until the spec
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_generation: Option<i64>,
    /// Tables: the table types Pinot has (`OFFLINE`, `REALTIME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_types: Option<String>,
    /// Tenants: the instances carrying the tenant's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// Server tenants: their servers by zone, with each zone's Pinot pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<crate::TenantZone>,
}

pub(crate) fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub(crate) fn any_object_opt(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true})
}
