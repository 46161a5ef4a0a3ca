//! Pinot's instance assignment (pool- and replica-group based) and replica-group segment
//! assignment, as the controller computes them. Read from Pinot's source at release-1.2.0 and
//! release-1.4.0 (1.3.0, 1.5.0 and master diffed: the same logic); the facts, with the Java
//! lines they rest on, are in `assignment.md` beside this file. Paths: `INST/` =
//! `pinot-controller/.../helix/core/assignment/instance/`, `SEG/` = `.../assignment/segment/`.
//!
//! Modelled: `InstanceTagPoolSelector` (tag filter without a liveness filter, pools per tag,
//! `pools` / `numPools` and the hash-chosen start, `minimizeDataMovement`'s pool order),
//! `HashBasedRotateInstanceConstraintApplier` (no `constraintConfig`), the default
//! `InstanceReplicaGroupPartitionSelector` with one partition (replica groups to pools, the
//! instances per group, the minimum-movement variant), segment assignment with replica groups
//! (a new segment on the least-loaded index of group 0 and the same index in every group; a
//! rebalance keeping a segment where its group-0 instance still is, in Java's shuffled order),
//! and consuming-segment placement (stream partition modulo the group size). Not modelled
//! (refused with a message saying so): partitioned replica groups (`numPartitions` > 1), other
//! partition selectors, `constraintConfig`, tiers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

/// Java's `String.hashCode()`: `31 * h + c` over UTF-16 code units, wrapping.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// `Math.abs(tableNameWithType.hashCode())` (`Integer.MIN_VALUE` stays negative, as in Java).
fn table_hash(table_with_type: &str) -> i32 {
    java_hash(table_with_type).wrapping_abs()
}

/// `Math.abs(a % n)` with Java's `%` (the sign of `a`).
fn start_index(hash: i32, n: usize) -> usize {
    (hash % n as i32).unsigned_abs() as usize
}

/// `java.util.Random`, as far as `Collections.shuffle` uses it.
struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom { seed: (seed ^ Self::MULTIPLIER) & Self::MASK }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> (48 - bits)) as i32
    }

    fn next_int(&mut self, bound: i32) -> i32 {
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
}

/// `Collections.shuffle(list, new Random(seed))`.
fn java_shuffle<T>(list: &mut [T], seed: i32) {
    let mut rnd = JavaRandom::new(i64::from(seed));
    for i in (2..=list.len()).rev() {
        let j = rnd.next_int(i as i32) as usize;
        list.swap(i - 1, j);
    }
}

/// Instance partitions (`COMMON/InstancePartitions.java`): one partition here, so replica
/// group `r` is `"0_<r>"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstancePartitions {
    pub instance_partitions_name: String,
    pub partition_to_instances_map: BTreeMap<String, Vec<String>>,
}

impl InstancePartitions {
    /// The instances of replica group `r` (of partition 0).
    pub fn group(&self, r: usize) -> &[String] {
        self.partition_to_instances_map.get(&format!("0_{r}")).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn groups(&self) -> usize {
        self.partition_to_instances_map.keys().filter(|k| k.starts_with("0_")).count()
    }

    pub fn to_json(&self) -> Value {
        json!(self)
    }
}

/// What instance assignment reads of an instance: its tags and its `pool` map field.
pub struct Candidate<'a> {
    pub id: &'a str,
    pub tags: &'a [String],
    pub pools: &'a BTreeMap<String, String>,
}

/// `InstanceAssignmentDriver.assignInstances` for one instance-partitions type: tag and pool
/// selection, the hash rotation, the replica-group partition selector. `name` is the instance
/// partitions' name (`<raw>_<TYPE>`), `entry` the type's `instanceAssignmentConfigMap` entry,
/// `existing` the persisted partitions (used only with `minimize`). Errors carry Pinot's
/// precondition texts.
pub fn assign_instances(
    table_with_type: &str,
    name: &str,
    entry: &Value,
    candidates: &[Candidate<'_>],
    existing: Option<&InstancePartitions>,
    minimize: bool,
) -> Result<InstancePartitions, String> {
    let tag_config =
        entry.get("tagPoolConfig").filter(|v| v.is_object()).ok_or("'tagPoolConfig' must be configured")?;
    let rg_config = entry
        .get("replicaGroupPartitionConfig")
        .filter(|v| v.is_object())
        .ok_or("'replicaGroupPartitionConfig' must be configured")?;
    let tag = tag_config["tag"].as_str().ok_or("'tag' must be configured")?;
    if let Some(selector) =
        entry["partitionSelector"].as_str().filter(|s| *s != "INSTANCE_REPLICA_GROUP_PARTITION_SELECTOR")
    {
        return Err(format!("the simulator does not model the partition selector {selector}"));
    }
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    if int(&rg_config["numPartitions"]) > 1 {
        return Err("the simulator does not model partitioned replica groups (numPartitions > 1)".into());
    }
    let minimize = minimize && existing.is_some();
    let hash = table_hash(table_with_type);

    // InstanceTagPoolSelector: instances with the tag, by name; no liveness or enabled filter.
    let mut tagged: Vec<&Candidate> = candidates.iter().filter(|c| c.tags.iter().any(|t| t == tag)).collect();
    tagged.sort_by(|a, b| a.id.encode_utf16().cmp(b.id.encode_utf16()));
    if tagged.is_empty() {
        return Err(format!("No enabled instance has the tag: {tag}"));
    }
    let mut pools: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if tag_config["poolBased"].as_bool() == Some(true) {
        for c in &tagged {
            let Some(pool) = c.pools.get(tag) else { continue };
            let pool: i64 = pool.trim().parse().map_err(|_| format!("For input string: \"{pool}\""))?;
            pools.entry(pool).or_default().push(c.id.to_string());
        }
        if pools.is_empty() {
            return Err(format!("No enabled instance has the pool configured for the tag: {tag}"));
        }
        let listed: Vec<i64> = tag_config["pools"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
        let asked = int(&tag_config["numPools"]);
        let n = pools.len();
        if !listed.is_empty() {
            if !listed.iter().all(|p| pools.contains_key(p)) {
                let shown: Vec<String> = listed.iter().map(i64::to_string).collect();
                return Err(format!("Cannot find all instance pools configured: [{}]", shown.join(", ")));
            }
            pools.retain(|p, _| listed.contains(p));
        } else if asked > 0 {
            let asked = asked as usize;
            if asked > n {
                return Err(format!("Not enough instance pools ({n} in the cluster, asked for {asked})"));
            }
            if asked < n {
                let sorted: Vec<i64> = pools.keys().copied().collect();
                let start = start_index(hash, n);
                let mut order: Vec<i64> = (0..n).map(|i| sorted[(start + i) % n]).collect();
                if minimize && let Some(existing) = existing {
                    // Pools holding most of the existing instances first (stable: ties in hash order).
                    let held: BTreeSet<&String> = existing.partition_to_instances_map.values().flatten().collect();
                    let count = |p: &i64| pools[p].iter().filter(|i| held.contains(i)).count();
                    order.sort_by_key(|p| std::cmp::Reverse(count(p)));
                }
                let chosen: BTreeSet<i64> = order.into_iter().take(asked).collect();
                pools.retain(|p, _| chosen.contains(p));
            }
        }
    } else {
        pools.insert(0, tagged.iter().map(|c| c.id.to_string()).collect());
    }

    // HashBasedRotateInstanceConstraintApplier: each pool's list rotated left by hash % size.
    if entry.get("constraintConfig").is_some_and(|c| !c.is_null()) {
        return Err("the simulator does not model constraintConfig".into());
    }
    for list in pools.values_mut() {
        let shift = (hash % list.len() as i32).rem_euclid(list.len() as i32) as usize;
        list.rotate_left(shift);
    }

    // InstanceReplicaGroupPartitionSelector, one partition.
    let sorted: Vec<i64> = pools.keys().copied().collect();
    let num_pools = sorted.len();
    if num_pools == 0 {
        return Err("No pool qualified for selection".into());
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    if rg_config["replicaGroupBased"].as_bool() == Some(true) {
        let num_groups = int(&rg_config["numReplicaGroups"]);
        if num_groups <= 0 {
            return Err("Number of replica-groups must be positive".into());
        }
        let num_groups = num_groups as usize;
        let start = start_index(hash, num_pools);
        // Replica group -> pool.
        let pool_of: Vec<i64> = if minimize {
            let existing = existing.expect("minimize needs existing partitions");
            let max_per_pool = num_groups.div_ceil(num_pools);
            let mut taken: BTreeMap<i64, usize> = BTreeMap::new();
            (0..num_groups)
                .map(|r| {
                    let members: BTreeSet<&String> = existing.group(r).iter().collect();
                    let mut order: Vec<i64> = (0..num_pools).map(|i| sorted[(start + r + i) % num_pools]).collect();
                    order.sort_by_key(|p| std::cmp::Reverse(pools[p].iter().filter(|i| members.contains(i)).count()));
                    let pool = *order.iter().find(|p| taken.get(p).copied().unwrap_or(0) < max_per_pool).expect("room");
                    *taken.entry(pool).or_default() += 1;
                    pool
                })
                .collect()
        } else {
            (0..num_groups).map(|r| sorted[(start + r) % num_pools]).collect()
        };
        let groups_in = |p: i64| pool_of.iter().filter(|q| **q == p).count();
        let configured = int(&rg_config["numInstancesPerReplicaGroup"]);
        let per_group = if configured > 0 {
            let per_group = configured as usize;
            for p in &sorted {
                let asked = per_group * groups_in(*p);
                if asked > pools[p].len() {
                    return Err(format!(
                        "Not enough qualified instances from pool: {p} ({} in the pool, asked for {asked})",
                        pools[p].len()
                    ));
                }
            }
            per_group
        } else {
            for p in &sorted {
                if groups_in(*p) > pools[p].len() {
                    return Err(format!(
                        "Not enough qualified instances from pool: {p}, cannot select {} replica-groups from {} instances",
                        groups_in(*p),
                        pools[p].len()
                    ));
                }
            }
            sorted.iter().filter(|p| groups_in(**p) > 0).map(|p| pools[p].len() / groups_in(*p)).min().unwrap_or(0)
        };
        groups = vec![Vec::new(); num_groups];
        for p in &sorted {
            let ids: Vec<usize> = (0..num_groups).filter(|r| pool_of[*r] == *p).collect();
            if ids.is_empty() {
                continue;
            }
            let list = &pools[p];
            if minimize {
                let existing = existing.expect("minimize needs existing partitions");
                // Instances back to the group they were in; the others to the emptiest group.
                let mut new = Vec::new();
                for instance in list {
                    match ids.iter().find(|r| existing.group(**r).contains(instance) && groups[**r].len() < per_group) {
                        Some(r) => groups[*r].push(instance.clone()),
                        None => new.push(instance.clone()),
                    }
                }
                for instance in new {
                    let Some(r) =
                        ids.iter().filter(|r| groups[**r].len() < per_group).min_by_key(|r| groups[**r].len())
                    else {
                        break;
                    };
                    groups[*r].push(instance);
                }
                // Each kept instance at its old index, new ones in the holes.
                for r in &ids {
                    let old = existing.group(*r);
                    if old.is_empty() {
                        continue;
                    }
                    let candidates = std::mem::take(&mut groups[*r]);
                    let mut slots: Vec<Option<String>> = vec![None; per_group];
                    for (index, instance) in old.iter().enumerate().filter(|(i, _)| *i < per_group) {
                        if candidates.contains(instance) {
                            slots[index] = Some(instance.clone());
                        }
                    }
                    let kept: BTreeSet<String> = slots.iter().flatten().cloned().collect();
                    let mut rest = candidates.into_iter().filter(|c| !kept.contains(c));
                    groups[*r] = slots.into_iter().filter_map(|s| s.or_else(|| rest.next())).collect();
                }
            } else {
                let mut next = list.iter();
                for _ in 0..per_group {
                    for r in &ids {
                        if let Some(instance) = next.next() {
                            groups[*r].push(instance.clone());
                        }
                    }
                }
            }
        }
        let per_partition = int(&rg_config["numInstancesPerPartition"]);
        if per_partition > per_group as i64 {
            return Err(format!(
                "Number of instances per partition: {per_partition} must be smaller or equal to number of instances \
                 per replica-group: {per_group}"
            ));
        }
        if per_partition > 0 {
            for g in &mut groups {
                g.truncate(per_partition as usize);
            }
        }
    } else {
        // Not replica-group based: one pool by hash, its first `numInstances`.
        let pool = sorted[start_index(hash, num_pools)];
        let list = &pools[&pool];
        let wanted = int(&rg_config["numInstances"]);
        if wanted as usize > list.len() {
            return Err(format!(
                "Not enough qualified instances from pool: {pool} ({} in the pool, asked for {wanted})",
                list.len()
            ));
        }
        let n = if wanted > 0 { wanted as usize } else { list.len() };
        groups.push(list[..n].to_vec());
    }
    Ok(InstancePartitions {
        instance_partitions_name: name.to_string(),
        partition_to_instances_map: groups.into_iter().enumerate().map(|(r, g)| (format!("0_{r}"), g)).collect(),
    })
}

/// `SEG/SegmentAssignmentUtils.assignSegmentWithReplicaGroup`: a new segment on the instance
/// of group 0 that holds the fewest segments of `current` (ties: the lowest index), and the
/// same index in every group.
pub fn assign_new_segment(ip: &InstancePartitions, current: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let first = ip.group(0);
    let load = |i: &String| current.values().filter(|holders| holders.contains(i)).count();
    let Some((index, _)) = first.iter().enumerate().min_by_key(|(index, i)| (load(i), *index)) else {
        return BTreeSet::new();
    };
    (0..ip.groups()).filter_map(|r| ip.group(r).get(index).cloned()).collect()
}

/// `SEG/RealtimeSegmentAssignment.assignConsumingSegment` with one partition: in each group the
/// instance at `streamPartition % groupSize`. The simulator's segment names are not LLC names,
/// so the partition is Pinot's fallback, `Math.abs(segmentName.hashCode() % 10_000)`.
pub fn assign_consuming_segment(ip: &InstancePartitions, segment: &str) -> BTreeSet<String> {
    let partition = (java_hash(segment) % 10_000).unsigned_abs() as usize;
    (0..ip.groups())
        .filter_map(|r| {
            let group = ip.group(r);
            (!group.is_empty()).then(|| group[partition % group.len()].clone())
        })
        .collect()
}

/// `ReplicaGroupSegmentAssignmentStrategy.reassignSegments` +
/// `SegmentAssignmentUtils.rebalanceReplicaGroupBasedPartition`: segments in name order
/// shuffled with `new Random(tableNameWithType.hashCode())`; a segment stays at the index of the
/// first of its current holders (by name) that is in the new group 0 while that index holds
/// fewer than `ceil(segments / instances)`; the others go to the index with the fewest (ties:
/// the lowest); every group mirrors group 0's index.
pub fn rebalance_segments(
    table_with_type: &str,
    ip: &InstancePartitions,
    current: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let first = ip.group(0);
    if first.is_empty() {
        return current.clone();
    }
    let mut segments: Vec<&String> = current.keys().collect();
    java_shuffle(&mut segments, java_hash(table_with_type));
    let target = segments.len().div_ceil(first.len());
    let mut counts = vec![0usize; first.len()];
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut rest = Vec::new();
    for segment in segments {
        let keep = current[segment]
            .iter()
            .find_map(|holder| first.iter().position(|i| i == holder).filter(|index| counts[*index] < target));
        match keep {
            Some(index) => {
                counts[index] += 1;
                placed.insert(segment.clone(), index);
            }
            None => rest.push(segment),
        }
    }
    for segment in rest {
        let index = (0..first.len()).min_by_key(|i| (counts[*i], *i)).expect("group 0 is not empty");
        counts[index] += 1;
        placed.insert(segment.clone(), index);
    }
    placed
        .into_iter()
        .map(|(segment, index)| (segment, (0..ip.groups()).filter_map(|r| ip.group(r).get(index).cloned()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_and_shuffle_match_the_jdk() {
        // Vectors computed with JDK 17 (assignment.md §0, §5b).
        assert_eq!(java_hash("events_OFFLINE"), -1_219_299_171);
        assert_eq!(java_hash("events_REALTIME"), 759_568_849);
        assert_eq!(java_hash("myTable_OFFLINE"), 438_536_198);
        assert_eq!(java_hash("airlineStats_OFFLINE"), -802_879_867);
        let mut segments: Vec<String> = (0..10).map(|i| format!("seg_{i}")).collect();
        java_shuffle(&mut segments, java_hash("events_OFFLINE"));
        assert_eq!(
            segments,
            ["seg_6", "seg_0", "seg_5", "seg_8", "seg_7", "seg_3", "seg_4", "seg_2", "seg_9", "seg_1"]
        );
        let mut segments: Vec<String> = (0..10).map(|i| format!("seg_{i}")).collect();
        java_shuffle(&mut segments, java_hash("myTable_OFFLINE"));
        assert_eq!(
            segments,
            ["seg_1", "seg_7", "seg_6", "seg_0", "seg_9", "seg_8", "seg_2", "seg_3", "seg_4", "seg_5"]
        );
    }

    fn servers(spec: &[(&str, i64)]) -> Vec<(String, Vec<String>, BTreeMap<String, String>)> {
        spec.iter()
            .map(|(id, pool)| {
                let tags = vec!["sales_OFFLINE".to_string()];
                let pools = if *pool >= 0 {
                    BTreeMap::from([("sales_OFFLINE".to_string(), pool.to_string())])
                } else {
                    BTreeMap::new()
                };
                (id.to_string(), tags, pools)
            })
            .collect()
    }

    fn candidates(s: &[(String, Vec<String>, BTreeMap<String, String>)]) -> Vec<Candidate<'_>> {
        s.iter().map(|(id, tags, pools)| Candidate { id, tags, pools }).collect()
    }

    fn entry(num_pools: i64, groups: i64) -> Value {
        json!({"tagPoolConfig": {"tag": "sales_OFFLINE", "poolBased": true, "numPools": num_pools},
               "replicaGroupPartitionConfig": {"replicaGroupBased": true, "numReplicaGroups": groups}})
    }

    #[test]
    fn one_replica_group_per_pool_rotated_by_the_tables_hash() {
        let s = servers(&[("a0", 0), ("a1", 0), ("b0", 1), ("b1", 1), ("c0", 2), ("c1", 2), ("x", -1)]);
        let ip =
            assign_instances("events_OFFLINE", "events_OFFLINE", &entry(3, 3), &candidates(&s), None, false).unwrap();
        // events_OFFLINE: abs(hash) % 3 = 0, so group r is pool r; each pool's two instances
        // rotated left by abs(hash) % 2 = 1.
        assert_eq!(ip.group(0), ["a1", "a0"]);
        assert_eq!(ip.group(1), ["b1", "b0"]);
        assert_eq!(ip.group(2), ["c1", "c0"]);
        // myTable_OFFLINE: abs(hash) % 3 = 2: group 0 in pool 2; % 2 = 0: no rotation.
        let ip =
            assign_instances("myTable_OFFLINE", "myTable_OFFLINE", &entry(3, 3), &candidates(&s), None, false).unwrap();
        assert_eq!(
            (ip.group(0), ip.group(1), ip.group(2)),
            (
                &["c0".to_string(), "c1".into()][..],
                &["a0".to_string(), "a1".into()][..],
                &["b0".to_string(), "b1".into()][..]
            )
        );
    }

    #[test]
    fn too_few_pools_or_instances_fail_with_pinots_words() {
        let s = servers(&[("a0", 0), ("b0", 1)]);
        let err = assign_instances("t_OFFLINE", "t_OFFLINE", &entry(3, 3), &candidates(&s), None, false).unwrap_err();
        assert_eq!(err, "Not enough instance pools (2 in the cluster, asked for 3)");
        let err = assign_instances("t_OFFLINE", "t_OFFLINE", &entry(0, 3), &candidates(&s), None, false).unwrap_err();
        assert!(err.starts_with("Not enough qualified instances from pool: "), "{err}");
        let none = servers(&[("a0", -1)]);
        let err =
            assign_instances("t_OFFLINE", "t_OFFLINE", &entry(2, 2), &candidates(&none), None, false).unwrap_err();
        assert_eq!(err, "No enabled instance has the pool configured for the tag: sales_OFFLINE");
    }

    #[test]
    fn minimum_movement_keeps_instances_in_their_groups_and_at_their_index() {
        let s = servers(&[("a0", 0), ("a1", 0), ("b0", 1), ("b1", 1), ("c0", 2), ("c1", 2)]);
        let existing =
            assign_instances("myTable_OFFLINE", "myTable_OFFLINE", &entry(3, 3), &candidates(&s), None, false).unwrap();
        // A third server joins zone a: the groups stay as they were (two per group).
        let more = servers(&[("a0", 0), ("a1", 0), ("a2", 0), ("b0", 1), ("b1", 1), ("c0", 2), ("c1", 2)]);
        let again = assign_instances(
            "myTable_OFFLINE",
            "myTable_OFFLINE",
            &entry(3, 3),
            &candidates(&more),
            Some(&existing),
            true,
        )
        .unwrap();
        assert_eq!(again, existing);
    }

    #[test]
    fn segments_get_one_replica_per_group_at_the_same_index() {
        let ip = InstancePartitions {
            instance_partitions_name: "t_OFFLINE".into(),
            partition_to_instances_map: BTreeMap::from([
                ("0_0".to_string(), vec!["a0".to_string(), "a1".to_string()]),
                ("0_1".to_string(), vec!["b0".to_string(), "b1".to_string()]),
            ]),
        };
        let mut current = BTreeMap::new();
        for n in 0..4 {
            let holders = assign_new_segment(&ip, &current);
            current.insert(format!("s{n}"), holders);
        }
        let set = |a: &str, b: &str| BTreeSet::from([a.to_string(), b.to_string()]);
        assert_eq!(current["s0"], set("a0", "b0"));
        assert_eq!(current["s1"], set("a1", "b1"));
        assert_eq!(current["s2"], set("a0", "b0"));
        // Rebalanced onto the same partitions: nothing moves.
        assert_eq!(rebalance_segments("t_OFFLINE", &ip, &current), current);
        // From a placement that put two replicas in zone a: every segment ends with one per group.
        let mixed: BTreeMap<String, BTreeSet<String>> = (0..4).map(|n| (format!("s{n}"), set("a0", "a1"))).collect();
        let target = rebalance_segments("t_OFFLINE", &ip, &mixed);
        for holders in target.values() {
            assert_eq!(holders.iter().filter(|h| h.starts_with('a')).count(), 1, "{target:?}");
            assert_eq!(holders.iter().filter(|h| h.starts_with('b')).count(), 1, "{target:?}");
        }
    }
}
