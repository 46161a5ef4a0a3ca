//! One PinotSchema: create or update the schema in Pinot when the live one differs.

use std::sync::Arc;

use kube::{ResourceExt, runtime::controller::Action};
use pinot_crds::{DeletionPolicy, PinotSchema};
use serde_json::Value;

use super::{
    Context, Error, Outcome, PinotObject, applied_freshly, compare, drift_check, holds_spec, older_owner, outcome_of,
    publish, reach_for_apply, reach_for_cleanup, ready, record_refusal, refusal_written, refused_already,
    report_transient, waiting, write_status,
};

/// The schema name a PinotSchema claims, without checking the rest of its spec.
fn schema_name(obj: &PinotSchema) -> String {
    obj.spec.schema["schemaName"].as_str().map(str::to_string).unwrap_or_else(|| obj.name_any())
}

/// The schema's name in Pinot and the body to send, or what is wrong with the spec.
pub(crate) fn desired(obj: &PinotSchema) -> Result<(String, Value), String> {
    let Value::Object(map) = &obj.spec.schema else {
        return Err("spec.schema must be an object: the Pinot schema (schemaName, dimensionFieldSpecs, ...)".into());
    };
    let name = match map.get("schemaName") {
        None | Some(Value::Null) => obj.name_any(),
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains('/') => s.clone(),
        Some(other) => {
            return Err(format!(
                "spec.schema.schemaName {other} is not a schema name: use a non-empty string without '/', or leave it out to use the resource's name"
            ));
        }
    };
    let mut body = obj.spec.schema.clone();
    body["schemaName"] = Value::String(name.clone());
    Ok((name, body))
}

pub(crate) async fn apply(obj: Arc<PinotSchema>, ctx: Arc<Context>) -> Result<Action, Error> {
    let generation = obj.metadata.generation;
    let mut status = obj.status.clone().unwrap_or_default();
    let (name, body) = match desired(&obj) {
        Ok(v) => v,
        Err(message) => {
            write_status(&ctx.client, &*obj, status, ready(false, "InvalidSpec", message)).await?;
            return Ok(Action::await_change());
        }
    };
    status.pinot_name = Some(name.clone());
    // Two resources may not manage one schema: the older one keeps it.
    if let Some(owner) = older_owner(&ctx.schemas, &*obj, &name, |o| Some(schema_name(o))) {
        let message = format!(
            "schema {name} of cluster {} is already managed by PinotSchema {owner}; delete one of the two",
            obj.spec.cluster
        );
        write_status(&ctx.client, &*obj, status, ready(false, "Conflict", message)).await?;
        return Ok(waiting());
    }
    let pinot = match reach_for_apply(&ctx, &*obj, &status).await? {
        Ok(pinot) => pinot,
        Err(action) => return Ok(action),
    };
    let live = match pinot.schema(&name).await {
        Ok(live) => live,
        Err(e) => return report_transient(&ctx, &*obj, e.into()).await,
    };
    let mut spec_changed = status.applied_generation != generation;
    if spec_changed && live.as_ref().is_some_and(|l| compare::covers(l, &body)) && applied_freshly(&ctx, &*obj) {
        spec_changed = false;
    }
    let write = match &live {
        None => true,
        Some(live) => !compare::covers(live, &body) || spec_changed,
    };
    if !write {
        holds_spec(&ctx, &*obj);
        status.applied_generation = generation;
        status.refused_generation = None;
        write_status(
            &ctx.client,
            &*obj,
            status,
            ready(true, "Synced", format!("schema {name} is in Pinot as specified")),
        )
        .await?;
        return Ok(drift_check(&ctx));
    }
    if refused_already(&ctx, &*obj, status.clone()).await? {
        // Pinot refused this spec already (even if the cached object does not show it yet): the
        // condition keeps its message until the spec changes. Only a live schema that now
        // matches (fixed in Pinot) clears it, above.
        return Ok(drift_check(&ctx));
    }
    let drift = match (&live, spec_changed) {
        (Some(live), false) => compare::differing_paths(live, &body, 5),
        _ => Vec::new(),
    };
    let result = match &live {
        None => pinot.create_schema(&body).await,
        Some(_) => pinot.update_schema(&name, &body, obj.spec.reload_tables_on_change).await,
    };
    match outcome_of(result) {
        Err(e) => report_transient(&ctx, &*obj, e.into()).await,
        Ok(Outcome::Refused(message)) => {
            status.refused_generation = generation;
            let message = format!("Pinot refused schema {name}: {message}");
            record_refusal(&ctx, &*obj, &message);
            publish(&ctx, &*obj, true, "PinotRefused", message.clone()).await;
            write_status(&ctx.client, &*obj, status, ready(false, "PinotRefused", message)).await?;
            refusal_written(&ctx, &*obj);
            Ok(drift_check(&ctx))
        }
        Ok(Outcome::Synced) => {
            let (reason, note) = match (&live, drift.is_empty()) {
                (None, _) => ("Created", format!("created schema {name} in Pinot")),
                (Some(_), true) => ("Updated", format!("updated schema {name} in Pinot")),
                (Some(_), false) => (
                    "DriftRepaired",
                    format!("schema {name} was changed in Pinot ({}); restored the spec", drift.join(", ")),
                ),
            };
            let note = if live.is_some() && obj.spec.reload_tables_on_change {
                format!("{note}; Pinot reloads the segments of the tables using it")
            } else {
                note
            };
            publish(&ctx, &*obj, false, reason, note).await;
            holds_spec(&ctx, &*obj);
            status.applied_generation = generation;
            status.refused_generation = None;
            write_status(
                &ctx.client,
                &*obj,
                status,
                ready(true, "Synced", format!("schema {name} is in Pinot as specified")),
            )
            .await?;
            Ok(drift_check(&ctx))
        }
    }
}

pub(crate) async fn cleanup(obj: Arc<PinotSchema>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Ok((name, _)) = desired(&obj) else { return Ok(Action::await_change()) };
    if obj.deletion_policy() == DeletionPolicy::Retain {
        publish(&ctx, &*obj, false, "Retained", format!("schema {name} stays in Pinot (deletionPolicy Retain)")).await;
        return Ok(Action::await_change());
    }
    // Tables first: Pinot refuses to delete a schema a table still uses.
    let ns = obj.namespace();
    let using: Vec<String> = ctx
        .tables
        .state()
        .into_iter()
        .filter(|t| t.namespace() == ns && t.spec.schema_ref.as_deref() == Some(obj.name_any().as_str()))
        .map(|t| t.name_any())
        .collect();
    let status = obj.status.clone().unwrap_or_default();
    if !using.is_empty() {
        let message = format!("deleting: waiting for the PinotTables using it to go first: {}", using.join(", "));
        write_status(&ctx.client, &*obj, status, ready(false, "Deleting", message.clone())).await?;
        return Err(Error::Waiting(message));
    }
    let Some(pinot) = reach_for_cleanup(&ctx, &*obj, &format!("schema {name}")).await? else {
        return Ok(Action::await_change());
    };
    match pinot.delete_schema(&name).await {
        Ok(()) => {
            publish(&ctx, &*obj, false, "Deleted", format!("deleted schema {name} from Pinot (deletionPolicy Delete)"))
                .await;
            Ok(Action::await_change())
        }
        Err(e) if e.status() == Some(409) => {
            let message = format!("deleting: Pinot still has tables using schema {name}: {}", e.pinot_message());
            write_status(&ctx.client, &*obj, status, ready(false, "Deleting", message.clone())).await?;
            Err(Error::Waiting(message))
        }
        Err(e) => report_transient(&ctx, &*obj, e.into()).await,
    }
}
