//! One PinotTenant's lifecycle: its spec is checked and its cluster must exist; placement on
//! instances is decided by the cluster's tenant policy in the PinotCluster reconcile
//! (`cluster/tenants.rs`), which also writes the tenant's Ready condition. Deleting with
//! `deletionPolicy: Delete` takes the tenant's tags off its instances (Pinot refuses while
//! tables use the tenant).

use std::sync::Arc;

use kube::runtime::controller::Action;
use pinot_crds::{DeletionPolicy, PinotTenant};

use super::{
    Context, Error, PinotObject, Reach, publish, reach, reach_for_cleanup, ready, report_transient, waiting,
    write_status,
};
use crate::{cluster::tenants::tenant_request, policy::model::Role};

pub(crate) async fn apply(obj: Arc<PinotTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let status = obj.status.clone().unwrap_or_default();
    if let Err(message) = tenant_request(&obj) {
        write_status(&ctx.client, &*obj, status, ready(false, "InvalidSpec", message)).await?;
        return Ok(Action::await_change());
    }
    match reach(&ctx, &*obj).await {
        // Placed by the cluster's reconcile, which this resource's changes trigger.
        Ok(Reach::Ready(_)) => Ok(Action::await_change()),
        Ok(Reach::NoCluster(message)) => {
            write_status(&ctx.client, &*obj, status, ready(false, "ClusterNotFound", message)).await?;
            Ok(waiting())
        }
        Err(e) => report_transient(&ctx, &*obj, e).await,
    }
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
