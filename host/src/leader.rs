//! Leader election with a `coordination.k8s.io/v1` Lease, so that several replicas of the
//! operator can run and exactly one reconciles: the one holding the Lease. A standby takes the
//! Lease once its holder has not renewed it for `lease_duration`; a leader that cannot renew it
//! within that time stops reconciling at once (and the process exits, to be restarted as a
//! standby), so two operators never act together for longer than the apiserver's clock skew.
//!
//! Every write is guarded by the Lease's `resourceVersion`, so two candidates racing for an
//! expired Lease cannot both win.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// How the operator competes for the Lease.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process, e.g. the pod's name.
    pub identity: String,
    /// How long a Lease not renewed stays its holder's.
    pub lease_duration: Duration,
    /// How often the holder renews it (well under `lease_duration`).
    pub renew_every: Duration,
}

impl LeaderConfig {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: "pinot-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the Lease {namespace}/{name}: {why}; stopping so that only one operator acts")]
    Lost { namespace: String, name: String, why: String },
}

/// What one attempt found.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// The Lease is ours (taken or renewed).
    Held,
    /// Another holder's Lease is still valid.
    Taken(String),
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One attempt to take or renew the Lease.
async fn attempt(api: &Api<Lease>, config: &LeaderConfig) -> Result<Attempt, kube::Error> {
    let duration_secs = config.lease_duration.as_secs().max(1) as i32;
    let ours = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration_secs),
        acquire_time: acquired.or_else(|| Some(now())),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.name.clone()), ..Default::default() },
            spec: Some(ours(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            // Someone else created it first.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Taken("another candidate".into())),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(secs)) => {
            Timestamp::now().as_millisecond() - renewed.0.as_millisecond() > i64::from(secs) * 1000
        }
        _ => true,
    };
    let new_spec = if holder == config.identity {
        ours(transitions, spec.acquire_time.clone())
    } else if holder.is_empty() || expired {
        ours(transitions + 1, None)
    } else {
        return Ok(Attempt::Taken(holder));
    };
    lease.spec = Some(new_spec);
    // `replace` sends the resourceVersion read above: a concurrent write makes this a 409.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Taken("another candidate".into())),
        Err(e) => Err(e),
    }
}

/// Waits until this process holds the Lease.
pub async fn acquire(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut last_holder = String::new();
    loop {
        match attempt(&api, config).await {
            Ok(Attempt::Held) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
                return;
            }
            Ok(Attempt::Taken(holder)) => {
                // A standby is healthy and ready to take over.
                crate::metrics::set_ready();
                if holder != last_holder {
                    tracing::info!(lease = %config.name, %holder, "standing by: another operator leads");
                    last_holder = holder;
                }
            }
            Err(e) => tracing::warn!(lease = %config.name, error = %e, "reading the Lease failed; trying again"),
        }
        tokio::time::sleep(config.renew_every).await;
    }
}

/// Renews the Lease until it cannot; returns why it was lost. Held while this runs, so run the
/// operator only until this returns.
pub async fn hold(client: &Client, config: &LeaderConfig) -> LeaderError {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut last_renewed = std::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew_every).await;
        let why = match attempt(&api, config).await {
            Ok(Attempt::Held) => {
                last_renewed = std::time::Instant::now();
                continue;
            }
            Ok(Attempt::Taken(holder)) => format!("{holder} holds it now"),
            // Give up one renewal before others may take it, as client-go's renew deadline does.
            Err(e) if last_renewed.elapsed() + config.renew_every < config.lease_duration => {
                tracing::warn!(lease = %config.name, error = %e, "renewing the Lease failed; trying again");
                continue;
            }
            Err(e) => format!("not renewed for {:?}: {e}", config.lease_duration),
        };
        return LeaderError::Lost { namespace: config.namespace.clone(), name: config.name.clone(), why };
    }
}

/// Gives the Lease up (on a clean shutdown), so that a standby takes over at once.
pub async fn release(client: &Client, config: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else { return };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&config.name, &PostParams::default(), &lease).await {
        tracing::warn!(lease = %config.name, error = %e, "releasing the Lease failed; a standby takes over once it expires");
    }
}
