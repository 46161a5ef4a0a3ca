//! One PinotTenant's lifecycle, and the only writer of its status: its spec is checked and its
//! cluster must exist; placement on instances is decided by the cluster's tenant policy in the
//! PinotCluster pass, which reports it in the cluster's `status.tenants`; this controller
//! copies that into the tenant's own status (it hears of every change of its cluster).
//! Deleting with `deletionPolicy: Delete` takes the tenant's tags off its instances (Pinot
//! refuses while tables use the tenant).

use std::sync::Arc;

use kube::{ResourceExt, runtime::controller::Action};
use pinot_crds::{DeletionPolicy, PinotObjectStatus, PinotTenant};

use super::{
    Context, Error, PinotObject, named_cluster, publish, reach_for_cleanup, ready, report_transient, waiting,
    write_status,
};
use crate::{cluster::tenants::tenant_request, policy::model::Role};

pub(crate) async fn apply(obj: Arc<PinotTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let old = obj.status.clone().unwrap_or_default();
    if let Err(invalid) = tenant_request(&obj) {
        write_status(&ctx.client, &*obj, old, ready(false, "InvalidSpec", invalid.to_string())).await?;
        return Ok(Action::await_change());
    }
    let cluster = match named_cluster(&ctx, &*obj) {
        Ok(cluster) => cluster,
        Err(message) => {
            write_status(&ctx.client, &*obj, old, ready(false, "ClusterNotFound", message)).await?;
            return Ok(waiting());
        }
    };
    // Where the cluster's pass placed it; its changes start another look (see `run`).
    let placement = cluster.status.as_ref().and_then(|s| s.tenants.iter().find(|t| t.name == obj.name_any()));
    let (status, condition) = match placement {
        Some(p) => (
            PinotObjectStatus {
                pinot_name: Some(p.tenant.clone()),
                instances: p.instances.clone(),
                zones: p.zones.clone(),
                applied_generation: old.applied_generation,
                ..Default::default()
            },
            ready(p.placed, &p.reason, p.message.clone()),
        ),
        None => {
            let message = format!("waiting for PinotCluster {} to place it with its tenant policy", obj.cluster());
            (PinotObjectStatus { applied_generation: old.applied_generation, ..old }, ready(false, "Placing", message))
        }
    };
    write_status(&ctx.client, &*obj, status, condition).await?;
    Ok(Action::await_change())
}

pub(crate) async fn cleanup(obj: Arc<PinotTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Ok(request) = tenant_request(&obj) else { return Ok(Action::await_change()) };
    let name = &request.name;
    if obj.deletion_policy() == DeletionPolicy::Retain {
        publish(
            &ctx,
            &*obj,
            false,
            "Retained",
            format!("tenant {name} keeps its instances in Pinot (deletionPolicy Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let Some(pinot) = reach_for_cleanup(&ctx, &*obj, &format!("tenant {name}")).await? else {
        return Ok(Action::await_change());
    };
    let role = if request.role == Role::Broker { "BROKER" } else { "SERVER" };
    match pinot.delete_tenant(name, role).await {
        Ok(()) => {
            publish(
                &ctx,
                &*obj,
                false,
                "Deleted",
                format!("took tenant {name}'s tags off its instances (deletionPolicy Delete)"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) if e.is_transient() => report_transient(&ctx, &*obj, e.into()).await,
        Err(e) => {
            let message = format!("deleting: Pinot refused to delete tenant {name}: {}", e.pinot_message());
            let status = obj.status.clone().unwrap_or_default();
            write_status(&ctx.client, &*obj, status, ready(false, "Deleting", message.clone())).await?;
            Err(Error::Waiting(message))
        }
    }
}
