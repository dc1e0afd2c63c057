//! The last five minutes per color, one point a second, kept in the process for the rollout
//! page (`GET /history`): no Prometheus needed to see what a rollout just did.
//!
//! Once a second the [`Sampler`] reads each color's counters (the same ones `/metrics` exports)
//! and [`point`] turns the difference to the previous reading into one point. The request path
//! is not touched: it already counts everything a point needs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::Serialize;

use crate::metrics::{Totals, DURATION_BUCKETS};
use crate::route::snapshot::{Shared, Snapshot};

/// Points kept per color: five minutes at one a second.
pub const POINTS: usize = 300;

/// Time between points.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One second of one color.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// End of the second, Unix milliseconds.
    pub t: u64,
    /// Effective weight then (percent of new sessions).
    pub weight: u32,
    /// Requests per second.
    pub rps: f64,
    /// 5xx and proxy errors over requests; `null` without requests.
    pub error_rate: Option<f64>,
    /// 99th percentile of the whole request, milliseconds, estimated from the histogram's
    /// buckets like Prometheus' `histogram_quantile`.
    pub p99_ms: Option<f64>,
    /// The same for time to the first byte of the answer.
    pub first_byte_p99_ms: Option<f64>,
    /// Predictions by label in that second.
    pub labels: BTreeMap<String, u64>,
    /// Invalid answers in that second.
    pub invalid: u64,
    /// Share of compared mirrored copies that agreed; `null` without comparisons.
    pub agreement: Option<f64>,
}

/// The difference between two readings `elapsed` apart, as a point.
pub fn point(before: &Totals, after: &Totals, elapsed: Duration, t: u64, weight: u32) -> Point {
    let requests = after.requests.saturating_sub(before.requests);
    let errors = after.errors.saturating_sub(before.errors);
    let labels = after
        .labels
        .iter()
        .filter_map(|(l, n)| {
            let was = before
                .labels
                .iter()
                .find(|(b, _)| b == l)
                .map_or(0, |b| b.1);
            let d = n.saturating_sub(was);
            (d > 0).then(|| (l.clone(), d))
        })
        .collect();
    let matched = after.matched.saturating_sub(before.matched);
    let compared = matched + after.mismatched.saturating_sub(before.mismatched);
    Point {
        t,
        weight,
        rps: round(requests as f64 / elapsed.as_secs_f64().max(1e-3), 100.0),
        error_rate: (requests > 0).then(|| round(errors as f64 / requests as f64, 1e4)),
        p99_ms: quantile(0.99, &before.duration, &after.duration).map(|s| round(s * 1e3, 100.0)),
        first_byte_p99_ms: quantile(0.99, &before.first_byte, &after.first_byte)
            .map(|s| round(s * 1e3, 100.0)),
        labels,
        invalid: after.invalid.saturating_sub(before.invalid),
        agreement: (compared > 0).then(|| round(matched as f64 / compared as f64, 1e4)),
    }
}

/// `x` to the nearest `1 / per`: the JSON stays readable.
fn round(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

/// The `q` quantile of the samples added between two cumulative bucket readings (each
/// [`DURATION_BUCKETS`] then the total), interpolated inside its bucket; the highest bound for
/// samples above it; `None` without samples.
pub fn quantile(q: f64, before: &[u64], after: &[u64]) -> Option<f64> {
    let n = DURATION_BUCKETS.len();
    if after.len() != n + 1 {
        return None;
    }
    let at = |i: usize| after[i].saturating_sub(before.get(i).copied().unwrap_or(0));
    let total = at(n);
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0;
    for (i, upper) in DURATION_BUCKETS.iter().enumerate() {
        let count = at(i);
        if count as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { DURATION_BUCKETS[i - 1] };
            let inside = (count - below).max(1) as f64;
            return Some(lower + (upper - lower) * (rank - below as f64) / inside);
        }
        below = count;
    }
    DURATION_BUCKETS.last().copied()
}

struct Ring {
    route: String,
    color: String,
    last: Totals,
    points: VecDeque<Point>,
}

struct Rings {
    colors: Vec<Ring>,
    last_at: Option<Instant>,
}

/// Every route's colors' recent points: written by the [`Sampler`], read by the admin API.
pub struct History {
    inner: Mutex<Rings>,
}

impl Default for History {
    fn default() -> Self {
        History {
            inner: Mutex::new(Rings {
                colors: Vec::new(),
                last_at: None,
            }),
        }
    }
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rings> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a point per color of `s` once [`INTERVAL`] has passed since the last (called five
    /// times a second by the [`Sampler`]). Colors a reload removed are forgotten; new ones start
    /// empty.
    pub fn sample(&self, s: &Snapshot, now: Instant) {
        let mut r = self.lock();
        let elapsed = match r.last_at {
            Some(at) if now.saturating_duration_since(at) < INTERVAL => return,
            Some(at) => now.saturating_duration_since(at),
            None => Duration::ZERO,
        };
        r.last_at = Some(now);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut next = Vec::with_capacity(r.colors.len());
        for (route, rt) in s.policy.routes.iter().zip(&s.routes) {
            for (name, c) in rt.table.names.iter().zip(&rt.colors) {
                let totals = c.metrics.totals();
                let at = r
                    .colors
                    .iter()
                    .position(|g| g.route == route.name && &g.color == name);
                let mut ring = match at {
                    Some(i) => r.colors.swap_remove(i),
                    None => Ring {
                        route: route.name.clone(),
                        color: name.clone(),
                        last: totals.clone(),
                        points: VecDeque::with_capacity(POINTS),
                    },
                };
                if !elapsed.is_zero() {
                    if ring.points.len() == POINTS {
                        ring.points.pop_front();
                    }
                    let p = point(&ring.last, &totals, elapsed, t, c.percent);
                    ring.points.push_back(p);
                }
                ring.last = totals;
                next.push(ring);
            }
        }
        r.colors = next;
    }

    /// The `/history` document of `route`: points after `since` (Unix ms; 0 for all), per color
    /// in policy order.
    pub fn json(&self, route: &str, since: u64) -> serde_json::Value {
        let r = self.lock();
        let colors: serde_json::Map<String, serde_json::Value> = r
            .colors
            .iter()
            .filter(|g| g.route == route)
            .map(|g| {
                let points: Vec<&Point> = g.points.iter().filter(|p| p.t > since).collect();
                (g.color.clone(), serde_json::json!(points))
            })
            .collect();
        serde_json::json!({
            "interval_seconds": INTERVAL.as_secs(),
            "points": POINTS,
            "colors": colors,
        })
    }
}

/// How often the sampler looks: a point is taken once [`INTERVAL`] has passed since the last.
const LOOK: Duration = Duration::from_millis(200);

/// Samples the published snapshot's counters into a [`History`]: a Pingora background service.
pub struct Sampler {
    /// What the request path counts into.
    pub state: Shared,
    /// Where the points go.
    pub history: std::sync::Arc<History>,
}

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(LOOK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.history.sample(&self.state.load(), Instant::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cumulative readings with `counts[i]` samples in bucket `i` (the last is +Inf).
    fn cumulative(counts: &[u64]) -> Vec<u64> {
        let mut sum = 0;
        (0..=DURATION_BUCKETS.len())
            .map(|i| {
                sum += counts.get(i).copied().unwrap_or(0);
                sum
            })
            .collect()
    }

    #[test]
    fn no_samples_have_no_quantile() {
        let z = cumulative(&[]);
        assert_eq!(quantile(0.99, &z, &z), None);
        assert_eq!(quantile(0.99, &z, &[1, 2]), None);
    }

    #[test]
    fn the_quantile_interpolates_inside_its_bucket() {
        // 100 samples in (0.01, 0.025]: p50 half way, p99 near the top.
        let mut counts = vec![0; 5];
        counts[4] = 100;
        let after = cumulative(&counts);
        let before = cumulative(&[]);
        let p50 = quantile(0.5, &before, &after).unwrap();
        assert!((p50 - 0.0175).abs() < 1e-9, "{p50}");
        let p99 = quantile(0.99, &before, &after).unwrap();
        assert!((p99 - 0.02485).abs() < 1e-9, "{p99}");
        assert_eq!(round(24.849, 100.0), 24.85);
    }

    #[test]
    fn only_the_new_samples_count() {
        // Before: 1000 fast samples; after: 10 more, all slow (0.5..1 s).
        let mut old = vec![0; 10];
        old[0] = 1000;
        let before = cumulative(&old);
        let mut new = old.clone();
        new[9] = 10;
        let after = cumulative(&new);
        let p99 = quantile(0.99, &before, &after).unwrap();
        assert!(p99 > 0.5 && p99 <= 1.0, "{p99}");
    }

    #[test]
    fn samples_above_the_last_bound_report_the_bound() {
        let mut counts = vec![0; DURATION_BUCKETS.len() + 1];
        counts[DURATION_BUCKETS.len()] = 3;
        let after = cumulative(&counts);
        assert_eq!(quantile(0.99, &cumulative(&[]), &after), Some(60.0));
    }

    #[test]
    fn a_point_is_the_difference_of_two_readings() {
        let before = Totals {
            requests: 100,
            errors: 1,
            duration: cumulative(&[100]),
            first_byte: cumulative(&[100]),
            labels: vec![("positive".into(), 70), ("negative".into(), 30)],
            invalid: 2,
            matched: 10,
            mismatched: 0,
        };
        let after = Totals {
            requests: 150,
            errors: 6,
            duration: cumulative(&[150]),
            first_byte: cumulative(&[150]),
            labels: vec![
                ("positive".into(), 70),
                ("negative".into(), 60),
                ("neutral".into(), 5),
            ],
            invalid: 3,
            matched: 13,
            mismatched: 1,
        };
        let p = point(&before, &after, Duration::from_secs(2), 7, 40);
        assert_eq!((p.t, p.weight), (7, 40));
        assert_eq!(p.rps, 25.0);
        assert_eq!(p.error_rate, Some(0.1));
        assert!(p.p99_ms.unwrap() <= 1.0);
        let labels: Vec<(&str, u64)> = p.labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        assert_eq!(labels, [("negative", 30), ("neutral", 5)]);
        assert_eq!(p.invalid, 1);
        assert_eq!(p.agreement, Some(0.75));
    }

    #[test]
    fn a_quiet_second_has_no_rates() {
        let t = Totals {
            duration: cumulative(&[5]),
            first_byte: cumulative(&[5]),
            ..Totals::default()
        };
        let p = point(&t, &t, Duration::from_secs(1), 0, 100);
        assert_eq!(p.rps, 0.0);
        assert_eq!((p.error_rate, p.p99_ms, p.agreement), (None, None, None));
        assert!(p.labels.is_empty());
    }
}
