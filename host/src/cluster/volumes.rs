//! A pool's volumes when its `storage` changes. A StatefulSet's volume claim templates are
//! immutable, so a storage change is refused on an existing pool, except a larger `size` on a
//! StorageClass that allows expansion (`allowVolumeExpansion: true`): then each claim of the
//! pool is resized, and the StatefulSet is replaced by one with the new template, its pods left
//! running (deleted with `propagationPolicy: Orphan`; the new StatefulSet adopts them, and their
//! pod template, hence their revision, is unchanged: nothing restarts). Volumes never shrink.
//!
//! [`observe`] reads the claims and their StorageClass of pools whose size differs (client),
//! [`change`] decides (pure), [`expand`] carries it out (client, from `apply`).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim, storage::v1::StorageClass};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use pinot_crds::PinotCluster;

use super::validate::{FieldError, ValidPool, ValidStorage};
use crate::children::{LABEL_CLUSTER, LABEL_POOL, statefulset_name};

/// The claims of one pool and what their StorageClass allows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedClaims {
    /// The pool's claims (`data-<statefulset>-<ordinal>`), by name, with the size each requests.
    pub claims: BTreeMap<String, String>,
    /// The StorageClass of the claims (the template's, else the one the apiserver gave them).
    pub class: Option<String>,
    /// Whether the class allows expansion; `None` when it could not be read.
    pub expandable: Option<bool>,
}

/// The size of the `data` claim template of a StatefulSet, with its class.
pub fn template_storage(sts: &StatefulSet) -> Option<ValidStorage> {
    let claims = sts.spec.as_ref()?.volume_claim_templates.as_ref()?;
    let claim = claims.iter().find(|c| c.metadata.name.as_deref() == Some("data"))?;
    let spec = claim.spec.as_ref()?;
    let size = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?.0.clone();
    Some(ValidStorage { size, storage_class_name: spec.storage_class_name.clone() })
}

/// For each pool of the spec whose StatefulSet's claim size differs from the spec's: its claims
/// and whether their StorageClass allows expansion. Pools without a pending size change are not
/// read (no call at all for most passes).
pub async fn observe(
    client: &Client,
    cluster: &PinotCluster,
    statefulsets: &BTreeMap<String, StatefulSet>,
) -> BTreeMap<String, ObservedClaims> {
    let mut out = BTreeMap::new();
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    for pool in &cluster.spec.pools {
        let Some(size) = pool.storage.as_ref().and_then(|s| s.size.as_deref()) else { continue };
        let Some(existing) = statefulsets.get(&pool.name).and_then(template_storage) else { continue };
        // The apiserver keeps a quantity in its own spelling (`1024Gi` comes back as `1Ti`).
        if existing.size == size || quantity_bytes(&existing.size).is_some_and(|b| Some(b) == quantity_bytes(size)) {
            continue;
        }
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
        let selector = format!("{LABEL_CLUSTER}={name},{LABEL_POOL}={}", pool.name);
        let list = match pvcs.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(pool = %pool.name, error = %e, "could not list the pool's volume claims");
                continue;
            }
        };
        let prefix = format!("data-{}-", statefulset_name(&name, &pool.name));
        let claims: BTreeMap<String, String> = list
            .iter()
            .filter(|c| c.name_any().starts_with(&prefix))
            .filter_map(|c| {
                let size = c.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")?.0.clone();
                Some((c.name_any(), size))
            })
            .collect();
        let class = existing
            .storage_class_name
            .clone()
            .or_else(|| list.iter().find_map(|c| c.spec.as_ref()?.storage_class_name.clone()));
        let expandable = match &class {
            Some(class) => match Api::<StorageClass>::all(client.clone()).get_opt(class).await {
                Ok(Some(sc)) => Some(sc.allow_volume_expansion == Some(true)),
                Ok(None) => Some(false),
                Err(e) => {
                    tracing::warn!(%class, error = %e, "could not read the StorageClass");
                    None
                }
            },
            None => None,
        };
        out.insert(pool.name.clone(), ObservedClaims { claims, class, expandable });
    }
    out
}

/// A pool whose volumes grow.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeExpansion {
    pub pool: String,
    pub statefulset: String,
    /// The new size.
    pub size: String,
    /// The claims still smaller than `size`.
    pub claims: Vec<String>,
}

/// What a pool's storage change asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageChange {
    Unchanged,
    Expand(VolumeExpansion),
    Refused(FieldError),
}

/// Whether the pool's storage differs from its StatefulSet's, and what can be done about it.
pub fn change(
    index: usize,
    cluster: &str,
    pool: &ValidPool,
    sts: &StatefulSet,
    claims: Option<&ObservedClaims>,
) -> StorageChange {
    let existing = template_storage(sts);
    if existing == pool.storage {
        return StorageChange::Unchanged;
    }
    let field = format!("spec.pools[{index}].storage");
    let refuse = |message: String| StorageChange::Refused(FieldError { field: field.clone(), message });
    let describe = |s: &Option<ValidStorage>| match s {
        None => "no storage (emptyDir)".to_string(),
        Some(s) => format!("size {} class {}", s.size, s.storage_class_name.as_deref().unwrap_or("<cluster default>")),
    };
    let immutable = format!(
        "cannot change from {} to {} on an existing pool (StatefulSet volume claim templates are immutable; only a larger size on a StorageClass that allows expansion is carried out); set it back, or add a new pool with the new storage and then remove this one",
        describe(&existing),
        describe(&pool.storage)
    );
    let (Some(old), Some(new)) = (&existing, &pool.storage) else { return refuse(immutable) };
    if old.storage_class_name != new.storage_class_name {
        return refuse(immutable);
    }
    let (Some(old_bytes), Some(new_bytes)) = (quantity_bytes(&old.size), quantity_bytes(&new.size)) else {
        return refuse(immutable);
    };
    if new_bytes < old_bytes {
        return refuse(format!(
            "cannot shrink the pool's volumes from {} to {}: a volume only grows; set size back to {} or more",
            old.size, new.size, old.size
        ));
    }
    if new_bytes == old_bytes {
        // The same size written another way (`1024Gi` for `1Ti`, as the apiserver writes it
        // back): nothing to change. The apply leaves the template as it is (the apiserver
        // compares quantities by value).
        return StorageChange::Unchanged;
    }
    let Some(claims) = claims else {
        return refuse(format!("{immutable}; the pool's volume claims could not be read"));
    };
    match claims.expandable {
        Some(true) => {}
        Some(false) => {
            return refuse(format!(
                "cannot grow the pool's volumes from {} to {}: StorageClass {} does not allow volume expansion (allowVolumeExpansion); set size back to {}, or use a class that allows it for a new pool",
                old.size,
                new.size,
                claims.class.as_deref().unwrap_or("<none>"),
                old.size
            ));
        }
        None => {
            return refuse(format!(
                "cannot grow the pool's volumes from {} to {} yet: their StorageClass {} could not be read (the operator needs get on storageclasses)",
                old.size,
                new.size,
                claims.class.as_deref().unwrap_or("<none>")
            ));
        }
    }
    let smaller = claims
        .claims
        .iter()
        .filter(|(_, size)| quantity_bytes(size).is_none_or(|b| b < new_bytes))
        .map(|(name, _)| name.clone())
        .collect();
    StorageChange::Expand(VolumeExpansion {
        pool: pool.name.clone(),
        statefulset: statefulset_name(cluster, &pool.name),
        size: new.size.clone(),
        claims: smaller,
    })
}

/// Grows the pool's claims, then replaces its StatefulSet by deleting it with its pods left
/// running (the apply that follows creates it with the new template). Idempotent: a pass cut
/// off half way does the rest next time (claims already grown are not patched again; a
/// StatefulSet already gone is created by the apply).
pub async fn expand(client: &Client, namespace: &str, expansion: &VolumeExpansion) -> Result<Vec<String>, String> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": expansion.size}}}});
    let mut notes = Vec::new();
    for claim in &expansion.claims {
        pvcs.patch(claim, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| {
            format!("resizing PersistentVolumeClaim {claim} to {}: {}", expansion.size, super::apply::kube_message(&e))
        })?;
        notes.push(format!("resized PersistentVolumeClaim {claim} to {}", expansion.size));
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    match statefulsets.delete(&expansion.statefulset, &DeleteParams::orphan()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(notes),
        Err(e) => {
            return Err(format!(
                "replacing StatefulSet {} (its volume claim template): {}",
                expansion.statefulset,
                super::apply::kube_message(&e)
            ));
        }
    }
    // The garbage collector takes the orphan finalizer off once the pods no longer name the
    // StatefulSet as their owner: usually well within a second.
    for _ in 0..100 {
        match statefulsets.get_opt(&expansion.statefulset).await {
            Ok(None) => {
                notes.push(format!(
                    "replaced StatefulSet {} for claims of {} (its pods keep running)",
                    expansion.statefulset, expansion.size
                ));
                return Ok(notes);
            }
            Ok(Some(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err(format!("StatefulSet {} is still being deleted; the next pass creates it again", expansion.statefulset))
}

/// The bytes a Kubernetes quantity such as `10Gi`, `500M` or `1.5Ti` stands for.
pub fn quantity_bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut bytes = whole.checked_mul(multiplier)?;
    if !fraction.is_empty() {
        let digits: u32 = fraction.len().try_into().ok()?;
        let f: u128 = fraction.parse().ok()?;
        bytes = bytes.checked_add(f.checked_mul(multiplier)? / 10u128.checked_pow(digits)?)?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(quantity_bytes("10Gi"), Some(10 << 30));
        assert_eq!(quantity_bytes("1024Mi"), quantity_bytes("1Gi"));
        assert_eq!(quantity_bytes("1.5Ti"), Some(3 << 39));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert!(quantity_bytes("1G") < quantity_bytes("1Gi"));
        assert_eq!(quantity_bytes("10 apples"), None);
    }
}
