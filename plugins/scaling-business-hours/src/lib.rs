//! Example team policy: the bundled default scaling policy, except that no pool is scaled in
//! during business hours. Policies have no clock of their own: the hour comes from the host's
//! `now-unix-seconds` in the observed state.
//!
//! Configuration (PinotPolicy `spec.config`):
//! - `businessHoursUtc`: `START-END` in whole UTC hours, e.g. `8-18` (default `9-17`); a scale-in
//!   waits while the hour is in `[START, END)`. `0-24` means always.
//! - `weekdaysOnly`: `true` (default) leaves Saturdays and Sundays open.
//!
//! Scaling out, dropping instances whose pods are already gone, and rebalancing are never held.

use pinot_policy_sdk::{ScalingAction as Action, ScalingPolicy, State};

struct BusinessHours;

/// `(start, end)` hours from `START-END`.
fn window(state: &State) -> Result<(u32, u32), String> {
    let text = state.config("businessHoursUtc").unwrap_or("9-17");
    let parsed = text.split_once('-').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((start, end)) if start <= end && end <= 24 => Ok((start, end)),
        _ => Err(format!("config businessHoursUtc {text:?}: write START-END in whole UTC hours, e.g. 9-17")),
    }
}

/// Whether `now` (seconds since the Unix epoch) falls in business hours.
fn closed(state: &State) -> Result<Option<String>, String> {
    let (start, end) = window(state)?;
    let now = state.now_unix_seconds();
    let hour = (now.rem_euclid(86_400) / 3_600) as u32;
    // 1970-01-01 was a Thursday: day 0 is Thursday, so (days + 3) % 7 gives Monday = 0.
    let weekday = ((now.div_euclid(86_400) + 3).rem_euclid(7)) as u32;
    let weekdays_only = state.config("weekdaysOnly") != Some("false");
    let in_hours = hour >= start && hour < end && !(weekdays_only && weekday >= 5);
    Ok(in_hours.then(|| format!("no scale-in during business hours ({start:02}:00-{end:02}:00 UTC, now {hour:02}:xx)")))
}

impl ScalingPolicy for BusinessHours {
    const NAME: &'static str = "scaling-business-hours";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn plan(state: &State) -> Result<Vec<Action>, String> {
        let actions = pinot_scaling_default_rules::plan(state);
        let Some(why) = closed(state)? else { return Ok(actions) };
        // Hold everything that starts or continues taking a pod out; keep the rest.
        let scaling_in: Vec<&str> =
            state.pools().filter(|p| p.current_replicas() > p.desired_replicas()).map(|p| p.name()).collect();
        if scaling_in.is_empty() {
            return Ok(actions);
        }
        let mut kept: Vec<Action> = actions
            .into_iter()
            .filter(|a| {
                matches!(a, Action::SetReplicas { pool, .. } if !scaling_in.contains(&pool.as_str()))
                    || matches!(a, Action::DropInstance(_))
            })
            .collect();
        kept.push(Action::Wait(format!("scaling in {} waits: {why}", scaling_in.join(", "))));
        Ok(kept)
    }
}

pinot_policy_sdk::export_scaling_policy!(BusinessHours);
