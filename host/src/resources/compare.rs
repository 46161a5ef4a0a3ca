//! Comparing what a user wrote with what Pinot holds.
//!
//! Pinot fills in defaults the user did not write (`singleValueField`, `tenants`, `metadata`,
//! index defaults, ...), and which ones depends on its version. So the live object matches the
//! desired one when it *covers* it: every field the user wrote is there with the same value;
//! fields only Pinot wrote are ignored. A field the user removed from the spec is handled by the
//! reconciler (a new generation is always written once), not here.

use serde_json::Value;

/// Whether `live` holds everything `desired` says.
pub fn covers(live: &Value, desired: &Value) -> bool {
    let mut out = Vec::new();
    differences(live, desired, "", &mut out, 1);
    out.is_empty()
}

/// Up to `limit` paths where `live` does not hold what `desired` says, e.g.
/// `segmentsConfig.replication` or `dimensionFieldSpecs[name=city]`.
pub fn differing_paths(live: &Value, desired: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    differences(live, desired, "", &mut out, limit);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn differences(live: &Value, desired: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (live, desired) {
        (_, Value::Null) => {}
        (Value::Object(l), Value::Object(d)) => {
            for (k, dv) in d {
                match l.get(k) {
                    Some(lv) => differences(lv, dv, &join(path, k), out, limit),
                    None if dv.is_null() => {}
                    None => out.push(join(path, k)),
                }
            }
        }
        (Value::Array(l), Value::Array(d)) => {
            if let (Some(ln), Some(dn)) = (names(l), names(d)) {
                // Lists of named entries (field specs): the same names, each entry covered,
                // whatever the order Pinot keeps them in.
                let mut lsorted = ln.clone();
                let mut dsorted = dn.clone();
                lsorted.sort();
                dsorted.sort();
                if lsorted != dsorted {
                    let extra: Vec<&str> = ln.iter().filter(|n| !dn.contains(n)).copied().collect();
                    let missing: Vec<&str> = dn.iter().filter(|n| !ln.contains(n)).copied().collect();
                    out.push(format!("{path} (missing {missing:?}, not in spec {extra:?})"));
                    return;
                }
                for (i, name) in dn.iter().enumerate() {
                    let li = ln.iter().position(|n| n == name).expect("same names");
                    differences(&l[li], &d[i], &format!("{path}[name={name}]"), out, limit);
                }
            } else if l.len() != d.len() {
                out.push(path.to_string());
            } else {
                for (i, (lv, dv)) in l.iter().zip(d).enumerate() {
                    differences(lv, dv, &format!("{path}[{i}]"), out, limit);
                }
            }
        }
        (l, d) if scalar_eq(l, d) => {}
        _ => out.push(path.to_string()),
    }
}

/// The `name` of every entry, when every entry is an object with one.
fn names(list: &[Value]) -> Option<Vec<&str>> {
    if list.is_empty() {
        return None;
    }
    list.iter().map(|v| v.get("name").and_then(Value::as_str)).collect()
}

/// Scalars are equal when their values are: `1` and `1.0`, and `"1"` and `1` (Pinot keeps
/// some maps as strings), are the same.
fn scalar_eq(l: &Value, d: &Value) -> bool {
    match (l, d) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::Number(_) | Value::Bool(_)) => a.as_str() == d.to_string().as_str(),
        (Value::Number(_) | Value::Bool(_), Value::String(b)) => l.to_string().as_str() == b.as_str(),
        _ => l == d,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_pinot_adds_are_not_differences() {
        let desired = json!({"schemaName": "t", "dimensionFieldSpecs": [{"name": "a", "dataType": "INT"}]});
        let live = json!({"schemaName": "t", "enableColumnBasedNullHandling": false,
            "dimensionFieldSpecs": [{"name": "a", "dataType": "INT", "singleValueField": true, "notNull": false}]});
        assert!(covers(&live, &desired));
    }

    #[test]
    fn a_changed_or_removed_user_field_is_a_difference_with_its_path() {
        let desired = json!({"segmentsConfig": {"replication": "2", "timeColumnName": "ts"}});
        let live = json!({"segmentsConfig": {"replication": "1"}});
        assert_eq!(
            differing_paths(&live, &desired, 10),
            ["segmentsConfig.replication", "segmentsConfig.timeColumnName"]
        );
    }

    #[test]
    fn named_lists_match_by_name_and_report_extra_and_missing_entries() {
        let desired = json!({"f": [{"name": "a"}, {"name": "b", "dataType": "LONG"}]});
        assert!(covers(&json!({"f": [{"name": "b", "dataType": "LONG"}, {"name": "a"}]}), &desired));
        assert_eq!(
            differing_paths(&json!({"f": [{"name": "b", "dataType": "INT"}, {"name": "a"}]}), &desired, 10),
            ["f[name=b].dataType"]
        );
        let paths = differing_paths(&json!({"f": [{"name": "a"}, {"name": "c"}]}), &desired, 10);
        assert_eq!(paths, [r#"f (missing ["b"], not in spec ["c"])"#]);
    }

    #[test]
    fn plain_lists_compare_in_order_and_scalars_by_value() {
        assert!(covers(&json!({"l": ["a", "b"]}), &json!({"l": ["a", "b"]})));
        assert!(!covers(&json!({"l": ["b", "a"]}), &json!({"l": ["a", "b"]})));
        assert!(!covers(&json!({"l": ["a"]}), &json!({"l": ["a", "b"]})));
        assert!(covers(&json!({"n": 1.0, "s": "3", "b": "true"}), &json!({"n": 1, "s": 3, "b": true})));
        assert!(!covers(&json!({"n": 2}), &json!({"n": 1})));
        assert!(covers(&json!({}), &json!({"unset": null})));
    }
}
