//! One PinotTable: create or update its OFFLINE and/or REALTIME config in Pinot when the live
//! one differs, once its schema is Ready. A table whose server tenant runs in several zones,
//! each a Pinot pool, gets pool-based replica-group instance assignment (one replica group per
//! zone) unless its config has an assignment of its own; its `ZoneSpread` condition says how
//! its replicas lie over the zones.

use std::sync::Arc;

use kube::{ResourceExt, runtime::controller::Action};
use pinot_crds::{ClusterCondition, DeletionPolicy, PinotObjectStatus, PinotTable, TenantPlacement};
use serde_json::{Value, json};

use crate::cluster::tenants::tenant_request;

use super::{
    Context, Error, Outcome, PinotObject, applied_freshly, compare, drift_check, holds_spec, named_cluster,
    older_owner, outcome_of, publish, reach_for_apply, reach_for_cleanup, ready, record_refusal, refusal_written,
    refused_already, report_transient, schema, waiting, write_status, write_status_with,
};

const TYPES: [&str; 2] = ["OFFLINE", "REALTIME"];

/// What a PinotTable asks Pinot to hold.
#[derive(Debug, PartialEq)]
pub(crate) struct DesiredTable {
    /// The raw table name (no type suffix).
    pub name: String,
    /// The config to send per table type, with `tableName` and `tableType` filled in.
    pub configs: Vec<(&'static str, Value)>,
}

fn raw(name: &str) -> &str {
    name.strip_suffix("_OFFLINE").or_else(|| name.strip_suffix("_REALTIME")).unwrap_or(name)
}

/// The raw table name a PinotTable claims, without checking the rest of its spec.
fn table_name(obj: &PinotTable) -> String {
    let from_config =
        || [&obj.spec.offline, &obj.spec.realtime].into_iter().flatten().find_map(|c| c["tableName"].as_str().map(raw));
    match &obj.spec.table_name {
        Some(n) => raw(n.trim()).to_string(),
        None => from_config().map(str::to_string).unwrap_or_else(|| obj.name_any()),
    }
}

/// The table's name and configs, or what is wrong with the spec (naming the field).
pub(crate) fn desired(obj: &PinotTable) -> Result<DesiredTable, String> {
    let slots = [("OFFLINE", "spec.offline", &obj.spec.offline), ("REALTIME", "spec.realtime", &obj.spec.realtime)];
    let mut given = Vec::new();
    for (table_type, field, config) in slots {
        let Some(config) = config else { continue };
        if !config.is_object() {
            return Err(format!("{field} must be an object: the {table_type} table config"));
        }
        match config.get("tableType") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case(table_type) => {}
            Some(other) => {
                return Err(format!(
                    "{field}.tableType is {other}, but {field} holds the {table_type} config: move the config or fix tableType"
                ));
            }
        }
        let name = match config.get("tableName") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if !n.trim().is_empty() => Some(raw(n).to_string()),
            Some(other) => return Err(format!("{field}.tableName {other} is not a table name")),
        };
        given.push((table_type, field, config, name));
    }
    if given.is_empty() {
        return Err("spec.offline and spec.realtime are both empty: give the OFFLINE config, the REALTIME config, or both (a hybrid table)".into());
    }
    let name = match &obj.spec.table_name {
        Some(n) if n.trim().is_empty() || n.contains('/') => {
            return Err(format!("spec.tableName {n:?} is not a table name"));
        }
        Some(n) => raw(n.trim()).to_string(),
        None => given.iter().find_map(|(_, _, _, n)| n.clone()).unwrap_or_else(|| obj.name_any()),
    };
    for (_, field, _, n) in &given {
        if let Some(n) = n
            && *n != name
        {
            return Err(format!(
                "{field}.tableName {n:?} differs from the table's name {name:?} (spec.tableName or the other config): make them equal"
            ));
        }
    }
    let configs = given
        .into_iter()
        .map(|(table_type, _, config, _)| {
            let mut body = config.clone();
            body["tableName"] = Value::String(name.clone());
            body["tableType"] = Value::String(table_type.to_string());
            (table_type, body)
        })
        .collect();
    Ok(DesiredTable { name, configs })
}

/// A config without its name, which Pinot keeps with the type suffix.
fn unnamed(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(map) = c.as_object_mut() {
        map.remove("tableName");
    }
    c
}

/// Whether the table's schema is there: `Err` carries the reason and message to wait with, or
/// a spec error.
fn check_schema(ctx: &Context, obj: &PinotTable, table: &str) -> Result<(), (&'static str, String)> {
    let Some(schema_ref) = &obj.spec.schema_ref else { return Ok(()) };
    let ns = obj.namespace();
    let schema = ctx.schemas.state().into_iter().find(|s| s.namespace() == ns && s.name_any() == *schema_ref);
    let Some(schema) = schema else {
        return Err(("WaitingForSchema", format!("PinotSchema {schema_ref} (spec.schemaRef) does not exist yet")));
    };
    if schema.spec.cluster != obj.spec.cluster {
        return Err((
            "InvalidSpec",
            format!(
                "PinotSchema {schema_ref} (spec.schemaRef) belongs to cluster {}, this table to {}: use a schema of the same cluster",
                schema.spec.cluster, obj.spec.cluster
            ),
        ));
    }
    if let Ok((schema_name, _)) = schema::desired(&schema)
        && schema_name != table
    {
        return Err((
            "InvalidSpec",
            format!(
                "Pinot finds a table's schema by the table's name, but PinotSchema {schema_ref} (spec.schemaRef) is named {schema_name:?} and the table {table:?}: set spec.tableName or the schema's schemaName so they match"
            ),
        ));
    }
    let ready = schema.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" && c.observed_generation == schema.metadata.generation => Ok(()),
        Some(c) => Err(("WaitingForSchema", format!("PinotSchema {schema_ref} is not Ready: {}", c.message))),
        None => Err(("WaitingForSchema", format!("PinotSchema {schema_ref} is not Ready yet"))),
    }
}

/// The tenants the table's configs name (`tenants.server`, `tenants.broker`).
pub(crate) fn tenants_named(obj: &PinotTable) -> Vec<String> {
    [&obj.spec.offline, &obj.spec.realtime]
        .into_iter()
        .flatten()
        .flat_map(|c| ["server", "broker"].map(|k| c["tenants"][k].as_str().map(str::to_string)))
        .flatten()
        .collect()
}

/// Whether the PinotTenants the table names (of its cluster) are placed: Pinot refuses a
/// table whose tenant has no instances yet.
fn check_tenants(ctx: &Context, obj: &PinotTable) -> Result<(), String> {
    let named = tenants_named(obj);
    for t in ctx.tenants.state() {
        if t.namespace() != obj.namespace() || t.spec.cluster != obj.spec.cluster {
            continue;
        }
        let Ok(request) = tenant_request(&t) else { continue };
        if !named.contains(&request.name) {
            continue;
        }
        let ready = t.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        if ready.is_none_or(|c| c.status != "True") {
            let why = ready.map(|c| c.message.clone()).unwrap_or_else(|| "not placed yet".into());
            return Err(format!("waiting for PinotTenant {} (tenant {}): {why}", t.name_any(), request.name));
        }
    }
    Ok(())
}

pub(crate) async fn apply(obj: Arc<PinotTable>, ctx: Arc<Context>) -> Result<Action, Error> {
    let generation = obj.metadata.generation;
    let mut status = obj.status.clone().unwrap_or_default();
    let table = match desired(&obj) {
        Ok(t) => t,
        Err(message) => {
            write_status(&ctx.client, &*obj, status, ready(false, "InvalidSpec", message)).await?;
            return Ok(Action::await_change());
        }
    };
    let name = table.name.clone();
    status.pinot_name = Some(name.clone());
    if let Some(owner) = older_owner(&ctx.tables, &*obj, &name, |t| Some(table_name(t))) {
        let message = format!(
            "table {name} of cluster {} is already managed by PinotTable {owner}; delete one of the two",
            obj.spec.cluster
        );
        write_status(&ctx.client, &*obj, status, ready(false, "Conflict", message)).await?;
        return Ok(waiting());
    }
    if let Err((reason, message)) = check_schema(&ctx, &obj, &name) {
        write_status(&ctx.client, &*obj, status, ready(false, reason, message)).await?;
        return Ok(if reason == "InvalidSpec" { Action::await_change() } else { waiting() });
    }
    if let Err(message) = check_tenants(&ctx, &obj) {
        write_status(&ctx.client, &*obj, status, ready(false, "WaitingForTenant", message)).await?;
        return Ok(waiting());
    }
    // Replica groups by zone, from where the cluster's last pass placed the tenants.
    let mut table = table;
    let plain = table.configs.clone();
    let placements = named_cluster(&ctx, &*obj).ok().and_then(|c| c.status.clone()).map(|s| s.tenants);
    let placements = placements.unwrap_or_default();
    let spreads = table
        .configs
        .iter_mut()
        .map(|(table_type, config)| {
            let tenant = config["tenants"]["server"].as_str().unwrap_or("DefaultTenant").to_string();
            let zones = tenant_pools(&placements, &tenant);
            follow_zones(table_type, config, zones.as_deref())
        })
        .collect();
    let spread: Vec<ClusterCondition> = worst(spreads).map(|s| s.condition()).into_iter().collect();
    let pinot = match reach_for_apply(&ctx, &*obj, &status).await? {
        Ok(pinot) => pinot,
        Err(action) => return Ok(action),
    };
    let live = match pinot.table(&name).await {
        Ok(live) => live,
        Err(e) => return report_transient(&ctx, &*obj, e.into()).await,
    };
    let mut spec_changed = status.applied_generation != generation;
    let all_covered = table
        .configs
        .iter()
        .all(|(t, body)| live.get(*t).is_some_and(|l| compare::covers(&unnamed(l), &unnamed(body))));
    if spec_changed && all_covered && applied_freshly(&ctx, &*obj) {
        spec_changed = false;
    }
    let writes: Vec<&(&str, Value)> = table
        .configs
        .iter()
        .filter(|(t, body)| match live.get(*t) {
            None => true,
            Some(l) => spec_changed || !compare::covers(&unnamed(l), &unnamed(body)),
        })
        .collect();
    let mut types: Vec<&str> = TYPES.into_iter().filter(|t| live.contains_key(*t)).collect();
    let extra: Vec<&str> = types.iter().copied().filter(|t| !table.configs.iter().any(|(c, _)| c == t)).collect();
    let synced_message = || {
        let mut m = format!("table {name} ({}) is in Pinot as specified", table_types(&table));
        if !extra.is_empty() {
            m.push_str(&format!(
                "; Pinot also has its {} table, which the spec does not name (left alone)",
                extra.join(", ")
            ));
        }
        m
    };
    if writes.is_empty() {
        holds_spec(&ctx, &*obj);
        status.applied_generation = generation;
        status.refused_generation = None;
        status.table_types = Some(types.join(","));
        write_status_with(&ctx.client, &*obj, status, ready(true, "Synced", synced_message()), spread.clone()).await?;
        return Ok(drift_check(&ctx));
    }
    // Refused already: not sent again until the spec changes, even when the cached object does
    // not show the refusal yet.
    let refused_status = PinotObjectStatus { table_types: Some(types.join(",")), ..status.clone() };
    if refused_already(&ctx, &*obj, refused_status).await? {
        return Ok(drift_check(&ctx));
    }
    for (table_type, body) in writes {
        let existing = live.get(*table_type);
        let drift = match (existing, spec_changed) {
            (Some(l), false) => compare::differing_paths(&unnamed(l), &unnamed(body), 5),
            _ => Vec::new(),
        };
        // What differs is only the placement by zone (the tenant's zones changed): not drift.
        let zones_only = existing
            .is_some_and(|l| plain.iter().any(|(t, p)| t == table_type && compare::covers(&unnamed(l), &unnamed(p))));
        let result = match existing {
            None => pinot.create_table(body).await,
            Some(_) => pinot.update_table(&name, body).await,
        };
        match outcome_of(result) {
            Err(e) => return report_transient(&ctx, &*obj, e.into()).await,
            Ok(Outcome::Refused(message)) => {
                status.refused_generation = generation;
                status.table_types = Some(types.join(","));
                let message = format!("Pinot refused the {table_type} config of table {name}: {message}");
                record_refusal(&ctx, &*obj, &message);
                publish(&ctx, &*obj, true, "PinotRefused", message.clone()).await;
                write_status_with(&ctx.client, &*obj, status, ready(false, "PinotRefused", message), spread.clone())
                    .await?;
                refusal_written(&ctx, &*obj);
                return Ok(drift_check(&ctx));
            }
            Ok(Outcome::Synced) => {
                let (reason, note) = match (existing, drift.is_empty()) {
                    (None, _) => ("Created", format!("created {table_type} table {name} in Pinot")),
                    (Some(_), false) if zones_only => (
                        "Updated",
                        format!(
                            "updated {table_type} table {name} in Pinot: replica groups by zone ({})",
                            drift.join(", ")
                        ),
                    ),
                    (Some(_), true) => ("Updated", format!("updated {table_type} table {name} in Pinot")),
                    (Some(_), false) => (
                        "DriftRepaired",
                        format!(
                            "{table_type} table {name} was changed in Pinot ({}); restored the spec",
                            drift.join(", ")
                        ),
                    ),
                };
                publish(&ctx, &*obj, false, reason, note).await;
                if !types.contains(table_type) {
                    types.push(table_type);
                }
            }
        }
    }
    types.sort();
    holds_spec(&ctx, &*obj);
    status.applied_generation = generation;
    status.refused_generation = None;
    status.table_types = Some(types.join(","));
    write_status_with(&ctx.client, &*obj, status, ready(true, "Synced", synced_message()), spread.clone()).await?;
    Ok(drift_check(&ctx))
}

/// How a table's replicas lie over its server tenant's zones: the `ZoneSpread` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ZoneSpread {
    /// `True`: one replica per zone; `False`: some zone holds two replicas of a segment, or a
    /// segment has one replica; `Unknown`: replicas are not placed by zone.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl ZoneSpread {
    fn rank(&self) -> u8 {
        match self.status {
            "False" => 2,
            "Unknown" => 1,
            _ => 0,
        }
    }

    pub(crate) fn condition(&self) -> ClusterCondition {
        ClusterCondition {
            type_: "ZoneSpread".into(),
            status: self.status.into(),
            last_transition_time: String::new(),
            reason: self.reason.into(),
            message: self.message.clone(),
            observed_generation: None,
        }
    }
}

/// A replication count as Pinot's table config holds it (a string, or a number).
fn count(v: &Value) -> Option<u32> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}

/// The zones (with their Pinot pool) of the server tenant a config names, as its cluster's
/// status reports them (`status.tenants`); none for a tenant no PinotTenant places.
pub(crate) fn tenant_pools<'a>(tenants: &'a [TenantPlacement], tenant: &str) -> Option<Vec<(&'a str, u32)>> {
    let placement = tenants.iter().find(|t| t.tenant == tenant)?;
    Some(
        placement
            .zones
            .iter()
            .filter_map(|z| Some((z.zone.as_str(), z.pool?)))
            .filter(|(z, _)| !z.is_empty())
            .collect(),
    )
}

/// Gives one table config (of `table_type`) pool-based replica-group instance assignment over
/// its server tenant's zones (`zones`: each zone with its Pinot pool; `None`: the tenant is
/// not placed by a PinotTenant, so it has no pools), and says how its replicas lie. With two
/// zones or more and no assignment of the config's own: `replication` (REALTIME:
/// `replicasPerPartition` when given) is the number of replica groups, the number of zones when
/// the config does not say; `numPools` is the smaller of the two, so that a lost pool makes a
/// reassignment fail rather than put two groups in one zone; `minimizeDataMovement` keeps
/// servers that still qualify where they are when it is recomputed.
pub(crate) fn follow_zones(table_type: &str, config: &mut Value, zones: Option<&[(&str, u32)]>) -> ZoneSpread {
    let tenant = config["tenants"]["server"].as_str().unwrap_or("DefaultTenant").to_string();
    let unknown = |reason, message: String| ZoneSpread { status: "Unknown", reason, message };
    if config.get("instanceAssignmentConfigMap").is_some_and(|m| !m.is_null()) {
        return unknown(
            "OwnAssignment",
            format!("the {table_type} config's instanceAssignmentConfigMap is used as written (not placed by zone)"),
        );
    }
    if config["segmentsConfig"].get("replicaGroupStrategyConfig").is_some_and(|m| !m.is_null()) {
        return unknown(
            "OwnAssignment",
            format!(
                "the {table_type} config's segmentsConfig.replicaGroupStrategyConfig is used as written; remove it to \
                 have one replica group per zone"
            ),
        );
    }
    let Some(zones) = zones else {
        return unknown(
            "NoPools",
            format!(
                "server tenant {tenant} is not placed by a PinotTenant, so its servers have no Pinot pools and the \
                 {table_type} replicas are not placed by zone"
            ),
        );
    };
    let n = zones.len() as u32;
    let names: Vec<&str> = zones.iter().map(|(z, _)| *z).collect();
    if n < 2 {
        return unknown("OneZone", format!("server tenant {tenant} runs in one zone ({})", names.join(", ")));
    }
    let segments = &config["segmentsConfig"];
    let given = match table_type {
        "REALTIME" => count(&segments["replicasPerPartition"]).or_else(|| count(&segments["replication"])),
        _ => count(&segments["replication"]),
    };
    let replicas = given.unwrap_or(n).max(1);
    if given.is_none() {
        if !config["segmentsConfig"].is_object() {
            config["segmentsConfig"] = json!({});
        }
        config["segmentsConfig"]["replication"] = Value::String(replicas.to_string());
    }
    let assignment = |tag: String| {
        json!({
            "tagPoolConfig": {"tag": tag, "poolBased": true, "numPools": replicas.min(n)},
            "replicaGroupPartitionConfig": {"replicaGroupBased": true, "numReplicaGroups": replicas},
            "minimizeDataMovement": true,
        })
    };
    config["instanceAssignmentConfigMap"] = match table_type {
        "REALTIME" => {
            // Completed segments go where the tag override sends them, else stay with the
            // consuming servers' tag; either way one replica group per pool.
            let completed = config["tenants"]["tagOverrideConfig"]["realtimeCompleted"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{tenant}_REALTIME"));
            json!({"CONSUMING": assignment(format!("{tenant}_REALTIME")), "COMPLETED": assignment(completed)})
        }
        _ => json!({"OFFLINE": assignment(format!("{tenant}_OFFLINE"))}),
    };
    let zones_said = format!("{n} zones of server tenant {tenant} ({})", names.join(", "));
    match replicas {
        1 => ZoneSpread {
            status: "False",
            reason: "SingleReplica",
            message: format!(
                "{table_type}: replication 1 over {zones_said}: each segment lives in one zone, and is unavailable \
                 while that zone is out; raise replication to {n}"
            ),
        },
        r if r > n => ZoneSpread {
            status: "False",
            reason: "MoreReplicasThanZones",
            message: format!(
                "{table_type}: replication {r} over {zones_said}: a zone holds 2 replicas of some segments, so losing \
                 it takes 2 replicas of those away; add zones or lower replication to {n}"
            ),
        },
        r => ZoneSpread {
            status: "True",
            reason: "OneReplicaPerZone",
            message: format!(
                "{table_type}: {r} replica groups over {zones_said}, one per zone: losing a zone leaves {} replicas \
                 of every segment",
                r - 1
            ),
        },
    }
}

/// The spread of a table's configs: the worst of them (one `False` makes it `False`).
fn worst(spreads: Vec<ZoneSpread>) -> Option<ZoneSpread> {
    let rank = spreads.iter().map(ZoneSpread::rank).max()?;
    let mut worst: Vec<ZoneSpread> = spreads.into_iter().filter(|s| s.rank() == rank).collect();
    let mut first = worst.remove(0);
    for other in worst {
        if other.message != first.message {
            first.message = format!("{}; {}", first.message, other.message);
        }
    }
    Some(first)
}

fn table_types(table: &DesiredTable) -> String {
    match table.configs.len() {
        2 => "hybrid".into(),
        _ => table.configs.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(","),
    }
}

pub(crate) async fn cleanup(obj: Arc<PinotTable>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Ok(table) = desired(&obj) else { return Ok(Action::await_change()) };
    let name = &table.name;
    if obj.deletion_policy() == DeletionPolicy::Retain {
        publish(
            &ctx,
            &*obj,
            false,
            "Retained",
            format!("table {name} and its segments stay in Pinot (deletionPolicy Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(pinot) = reach_for_cleanup(&ctx, &*obj, &format!("table {name}")).await? else {
        return Ok(Action::await_change());
    };
    for (table_type, _) in &table.configs {
        if let Err(e) = pinot.delete_table(name, table_type).await {
            let status = obj.status.clone().unwrap_or_default();
            if e.is_transient() {
                return report_transient(&ctx, &*obj, e.into()).await;
            }
            let message =
                format!("deleting: Pinot refused to delete the {table_type} table {name}: {}", e.pinot_message());
            write_status(&ctx.client, &*obj, status, ready(false, "Deleting", message.clone())).await?;
            return Err(Error::Waiting(message));
        }
    }
    publish(
        &ctx,
        &*obj,
        false,
        "Deleted",
        format!("deleted table {name} ({}) from Pinot (deletionPolicy Delete)", table_types(&table)),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn table(spec: Value) -> PinotTable {
        serde_json::from_value(json!({
            "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTable",
            "metadata": {"name": "t", "namespace": "n"}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_hybrid_table_takes_its_name_from_the_configs_and_gets_both_types() {
        let t = table(json!({"cluster": "c",
            "offline": {"tableName": "airlineStats_OFFLINE", "segmentsConfig": {}},
            "realtime": {"tableName": "airlineStats", "tableType": "REALTIME", "segmentsConfig": {}}}));
        let d = desired(&t).unwrap();
        assert_eq!(d.name, "airlineStats");
        assert_eq!(d.configs[0].1["tableName"], "airlineStats");
        assert_eq!(d.configs[0].1["tableType"], "OFFLINE");
        assert_eq!(d.configs[1].1["tableType"], "REALTIME");
    }

    #[test]
    fn mistakes_name_the_field() {
        let none = desired(&table(json!({"cluster": "c"}))).unwrap_err();
        assert!(none.contains("spec.offline and spec.realtime"), "{none}");
        let wrong_type = desired(&table(json!({"cluster": "c", "offline": {"tableType": "REALTIME"}}))).unwrap_err();
        assert!(wrong_type.contains("spec.offline.tableType"), "{wrong_type}");
        let names =
            desired(&table(json!({"cluster": "c", "tableName": "a", "realtime": {"tableName": "b"}}))).unwrap_err();
        assert!(names.contains("spec.realtime.tableName") && names.contains("\"a\""), "{names}");
        // Without any name, the resource's.
        assert_eq!(desired(&table(json!({"cluster": "c", "offline": {}}))).unwrap().name, "t");
    }

    const THREE: [(&str, u32); 3] = [("zone-a", 0), ("zone-b", 1), ("zone-c", 2)];

    #[test]
    fn an_offline_table_gets_one_replica_group_per_zone_and_replication_from_the_zones() {
        let mut config =
            json!({"tableName": "t", "tenants": {"server": "sales"}, "segmentsConfig": {"timeColumnName": "ts"}});
        let spread = follow_zones("OFFLINE", &mut config, Some(&THREE));
        assert_eq!((spread.status, spread.reason), ("True", "OneReplicaPerZone"), "{spread:?}");
        assert!(spread.message.contains("losing a zone leaves 2 replicas"), "{}", spread.message);
        assert_eq!(config["segmentsConfig"]["replication"], "3", "as many replicas as zones, a string as Pinot has it");
        assert_eq!(
            config["instanceAssignmentConfigMap"],
            json!({"OFFLINE": {
                "tagPoolConfig": {"tag": "sales_OFFLINE", "poolBased": true, "numPools": 3},
                "replicaGroupPartitionConfig": {"replicaGroupBased": true, "numReplicaGroups": 3},
                "minimizeDataMovement": true,
            }})
        );
    }

    #[test]
    fn a_realtime_table_places_consuming_and_completed_segments_by_zone_with_its_own_replication() {
        let mut config = json!({"tenants": {"server": "sales"}, "segmentsConfig": {"replication": "1", "replicasPerPartition": "2"}});
        let spread = follow_zones("REALTIME", &mut config, Some(&THREE));
        assert_eq!(spread.status, "True", "{spread:?}");
        assert_eq!(
            config["segmentsConfig"],
            json!({"replication": "1", "replicasPerPartition": "2"}),
            "the spec's stands"
        );
        let map = &config["instanceAssignmentConfigMap"];
        assert_eq!(
            map["CONSUMING"]["tagPoolConfig"],
            json!({"tag": "sales_REALTIME", "poolBased": true, "numPools": 2})
        );
        assert_eq!(map["CONSUMING"]["replicaGroupPartitionConfig"]["numReplicaGroups"], 2);
        assert_eq!(map["COMPLETED"], map["CONSUMING"]);
        // A tag override sends completed segments elsewhere: there, by zone too.
        let mut config =
            json!({"tenants": {"server": "sales", "tagOverrideConfig": {"realtimeCompleted": "sales_OFFLINE"}}});
        follow_zones("REALTIME", &mut config, Some(&THREE));
        assert_eq!(config["instanceAssignmentConfigMap"]["COMPLETED"]["tagPoolConfig"]["tag"], "sales_OFFLINE");
    }

    #[test]
    fn replicas_that_cannot_be_spread_over_the_zones_are_said_and_the_spec_stands() {
        let two = &THREE[..2];
        let mut config = json!({"tenants": {"server": "sales"}, "segmentsConfig": {"replication": 3}});
        let spread = follow_zones("OFFLINE", &mut config, Some(two));
        assert_eq!((spread.status, spread.reason), ("False", "MoreReplicasThanZones"), "{spread:?}");
        assert!(spread.message.contains("replication 3 over 2 zones"), "{}", spread.message);
        let offline = &config["instanceAssignmentConfigMap"]["OFFLINE"];
        assert_eq!(
            (&offline["tagPoolConfig"]["numPools"], &offline["replicaGroupPartitionConfig"]["numReplicaGroups"]),
            (&json!(2), &json!(3))
        );
        let mut config = json!({"segmentsConfig": {"replication": "1"}});
        let spread = follow_zones("OFFLINE", &mut config, Some(&THREE));
        assert_eq!((spread.status, spread.reason), ("False", "SingleReplica"), "{spread:?}");
        assert_eq!(config["instanceAssignmentConfigMap"]["OFFLINE"]["tagPoolConfig"]["tag"], "DefaultTenant_OFFLINE");
    }

    #[test]
    fn a_table_with_its_own_assignment_or_a_tenant_in_one_zone_is_left_as_it_is() {
        let own = json!({"instanceAssignmentConfigMap": {"OFFLINE": {"tagPoolConfig": {"tag": "x_OFFLINE"}}}});
        let legacy = json!({"segmentsConfig": {"replicaGroupStrategyConfig": {"numInstancesPerPartition": 1}}});
        for (config, zones, reason) in [
            (own, Some(&THREE[..]), "OwnAssignment"),
            (legacy, Some(&THREE[..]), "OwnAssignment"),
            (json!({"tenants": {"server": "sales"}}), Some(&THREE[..1]), "OneZone"),
            (json!({}), None, "NoPools"),
        ] {
            let mut changed = config.clone();
            let spread = follow_zones("OFFLINE", &mut changed, zones);
            assert_eq!((spread.status, spread.reason), ("Unknown", reason), "{spread:?}");
            assert_eq!(changed, config, "{reason}: nothing changes");
        }
        // Hybrid: the worst of the two.
        let spreads = vec![
            ZoneSpread { status: "True", reason: "OneReplicaPerZone", message: "a".into() },
            ZoneSpread { status: "False", reason: "SingleReplica", message: "b".into() },
        ];
        assert_eq!(worst(spreads).unwrap().reason, "SingleReplica");
    }

    #[test]
    fn a_tenants_zones_come_from_its_placement() {
        let placement = TenantPlacement {
            name: "sales".into(),
            tenant: "sales".into(),
            zones: vec![
                pinot_crds::TenantZone { zone: "zone-a".into(), pool: Some(0), servers: 1, live: 1 },
                pinot_crds::TenantZone { zone: "zone-b".into(), pool: None, servers: 1, live: 1 },
                pinot_crds::TenantZone { zone: String::new(), pool: Some(3), servers: 1, live: 1 },
            ],
            ..Default::default()
        };
        let tenants = [placement];
        assert_eq!(tenant_pools(&tenants, "sales"), Some(vec![("zone-a", 0)]));
        assert_eq!(tenant_pools(&tenants, "other"), None);
    }
}
