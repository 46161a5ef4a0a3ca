//! One PinotTable: create or update its OFFLINE and/or REALTIME config in Pinot when the live
//! one differs, once its schema is Ready.

use std::sync::Arc;

use kube::{ResourceExt, runtime::controller::Action};
use pinot_crds::{DeletionPolicy, PinotObjectStatus, PinotTable};
use serde_json::Value;

use crate::cluster::tenants::tenant_request;

use super::{
    Context, Error, Outcome, PinotObject, applied_freshly, compare, drift_check, holds_spec, older_owner, outcome_of,
    publish, reach_for_apply, reach_for_cleanup, ready, record_refusal, refusal_written, refused_already,
    report_transient, schema, waiting, write_status,
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
        write_status(&ctx.client, &*obj, status, ready(true, "Synced", synced_message())).await?;
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
                write_status(&ctx.client, &*obj, status, ready(false, "PinotRefused", message)).await?;
                refusal_written(&ctx, &*obj);
                return Ok(drift_check(&ctx));
            }
            Ok(Outcome::Synced) => {
                let (reason, note) = match (existing, drift.is_empty()) {
                    (None, _) => ("Created", format!("created {table_type} table {name} in Pinot")),
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
    write_status(&ctx.client, &*obj, status, ready(true, "Synced", synced_message())).await?;
    Ok(drift_check(&ctx))
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
}
