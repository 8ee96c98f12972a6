//! The decision for one target: a pure function of its settings, its
//! current replicas, what the queue reads (or that it could not be read),
//! and the recommendations of the last scale-down window.
//!
//! - length: ceil((ready + unacked) / messages-per-pod), or ready alone;
//! - rate: ceil(publish rate / per-pod ack rate) plus the pods that drain
//!   the backlog within drain-time;
//! - from zero only once the backlog reaches `activation`;
//! - clamped to [min, max]; up at once by at most max-step; down only to
//!   the highest recommendation of the window, by at most max-step;
//! - no reading: hold the replicas (never down, never to zero), and say so;
//! - ready known but unacked not (a new queue, or a depth read by AMQP):
//!   the backlog is a lower bound, so it may scale up, never down.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::stats::Reading;
use super::target::{Mode, TargetSpec};

/// What was decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    /// Replicas to have.
    pub desired: i32,
    /// The recommendation before the window and the step (for the
    /// window's memory and the metrics).
    pub recommended: i32,
    /// The backlog read (ready, plus unacked unless excluded).
    pub backlog: Option<f64>,
    /// Why, in words.
    pub reason: String,
    /// The reading was missing: nothing was scaled down.
    pub held: bool,
}

fn clamp(spec: &TargetSpec, n: i64) -> i32 {
    n.clamp(i64::from(spec.min), i64::from(spec.max)) as i32
}

/// The raw recommendation, the backlog, and whether the backlog is only a
/// lower bound (the unacked count is not known: up only).
fn recommend(spec: &TargetSpec, current: i32, r: &Reading) -> Result<(i64, f64, bool), String> {
    let ready = r
        .ready
        .ok_or("the queue's ready count is not reported yet")?;
    let (backlog, lower_bound) = match (spec.exclude_unacked, r.unacked) {
        (true, _) => (ready, false),
        (false, Some(unacked)) => (ready + unacked, false),
        (false, None) => (ready, true),
    };
    let raw = match spec.mode {
        Mode::Length => (backlog / spec.messages_per_pod).ceil() as i64,
        Mode::Rate => {
            let publish = r.publish_rate.unwrap_or(0.0);
            let steady = (publish / spec.messages_per_pod).ceil() as i64;
            let drain_secs = spec.drain_time.as_secs_f64().max(1.0);
            let drain = (backlog / (spec.messages_per_pod * drain_secs)).ceil() as i64;
            steady + drain
        }
    };
    // From zero only at the activation backlog; once awake, at least one
    // pod while anything waits.
    let raw = if current == 0 && backlog < spec.activation {
        0
    } else if backlog > 0.0 {
        raw.max(1)
    } else {
        raw
    };
    Ok((raw, backlog, lower_bound))
}

/// Decides one target. `window` holds this target's recommendations of the
/// last scale-down window (times and values), oldest first.
pub fn decide(
    spec: &TargetSpec,
    current: i32,
    reading: Option<&Reading>,
    window: &[(DateTime<Utc>, i32)],
    now: DateTime<Utc>,
) -> Scale {
    let Some(r) = reading else {
        return Scale {
            desired: current,
            recommended: current,
            backlog: None,
            reason: "no reading of the queue: holding the replicas".into(),
            held: true,
        };
    };
    let (raw, backlog, lower_bound) = match recommend(spec, current, r) {
        Ok(x) => x,
        Err(why) => {
            return Scale {
                desired: current,
                recommended: current,
                backlog: None,
                reason: format!("{why}: holding the replicas"),
                held: true,
            };
        }
    };
    let recommended = clamp(spec, raw);
    let step = spec.max_step.max(1);
    if recommended > current {
        let desired = recommended.min(current.saturating_add(step));
        return Scale {
            desired,
            recommended,
            backlog: Some(backlog),
            reason: if lower_bound {
                format!(
                    "backlog at least {backlog:.0} (unacked not reported yet): {recommended} replicas wanted"
                )
            } else {
                format!("backlog {backlog:.0}: {recommended} replicas wanted")
            },
            held: false,
        };
    }
    if lower_bound {
        // Ready alone undercounts: it may wake or grow a target, never
        // shrink one. The replicas it keeps are remembered as the
        // recommendation, so a scale-down window counts from here.
        return Scale {
            desired: current,
            recommended: current,
            backlog: Some(backlog),
            reason: format!(
                "backlog at least {backlog:.0} (unacked not reported yet): keeping {current} replicas"
            ),
            held: false,
        };
    }
    if recommended == current {
        return Scale {
            desired: current,
            recommended,
            backlog: Some(backlog),
            reason: format!("backlog {backlog:.0}: {current} replicas are right"),
            held: false,
        };
    }
    // Down: to the highest recommendation of the window (this one
    // included), and only when the window is full of history.
    let cutoff =
        chrono::Duration::from_std(spec.scale_down_window).unwrap_or(chrono::Duration::MAX);
    let recent: Vec<i32> = window
        .iter()
        .filter(|(t, _)| now - *t <= cutoff)
        .map(|(_, v)| *v)
        .chain(std::iter::once(recommended))
        .collect();
    let covered = window.first().is_some_and(|(t, _)| now - *t >= cutoff);
    let stabilized = recent.iter().copied().max().unwrap_or(recommended);
    if !covered || stabilized >= current {
        return Scale {
            desired: current,
            recommended,
            backlog: Some(backlog),
            reason: format!(
                "backlog {backlog:.0}: {recommended} replicas would do, after the {}s scale-down window",
                spec.scale_down_window.as_secs()
            ),
            held: false,
        };
    }
    let desired = stabilized.max(current.saturating_sub(step)).max(spec.min);
    Scale {
        desired,
        recommended,
        backlog: Some(backlog),
        reason: format!(
            "backlog {backlog:.0}: down to {desired} (the window's highest recommendation was {stabilized})"
        ),
        held: false,
    }
}

/// Keeps the recommendations of the window (plus the one just made).
pub fn remember(
    window: &mut Vec<(DateTime<Utc>, i32)>,
    spec: &TargetSpec,
    now: DateTime<Utc>,
    recommended: i32,
) {
    let cutoff =
        chrono::Duration::from_std(spec.scale_down_window).unwrap_or(chrono::Duration::MAX);
    window.push((now, recommended));
    // Keep one entry older than the window: it shows the window is covered.
    while window.len() > 1 && now - window[1].0 > cutoff {
        window.remove(0);
    }
}
