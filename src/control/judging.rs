//! The judging pass, five times a second: every route's non-stable colors with weight are
//! checked for health, their outcome windows (errors, latency) and, with quality gates, their
//! answers. A breach rolls back that color of that route only.

use std::time::Instant;

use super::Inner;
use crate::config::Route;
use crate::control::rollout::Event;
use crate::judge::health::Status;
use crate::judge::quality::{self as quality, Baseline};
use crate::judge::Kind;
use crate::metrics::ColorMetrics;

impl Inner {
    /// Rolls back every non-stable color with weight that has no healthy backend or breaches a
    /// limit, route by route.
    pub(super) fn judge(&mut self) {
        let p = self.policy.clone();
        for (i, r) in p.routes.iter().enumerate() {
            for (color, kind, reason) in self.breaches(i, r) {
                let _ = self.transition(
                    i,
                    Event::Breach {
                        color,
                        kind,
                        reason,
                    },
                );
            }
        }
    }

    /// What is wrong on route `i`, color by color.
    fn breaches(&mut self, i: usize, r: &Route) -> Vec<(String, Kind, String)> {
        let now = Instant::now();
        let statuses: Vec<Vec<Status>> = r.colors.iter().map(|c| self.statuses(c)).collect();
        let state = &mut self.routes[i];
        let weights = state.machine.weights(r);
        // The color getting mirrored copies is judged on them, with or without live weight.
        let mirror = state.machine.mirror(r).map(|m| m.color);
        let window = r.rollback.window;
        let labels = |c: &str| ColorMetrics::get(&r.name, c).label_names();
        if let Some(q) = &r.quality {
            let stable = r.stable_name();
            let answers = state
                .outcomes_of(stable)
                .answers(now, window)
                .summary(&labels(stable));
            state.baseline = Baseline::update(state.baseline.take(), answers, q.min_samples);
        }
        let mut out = Vec::new();
        for (ci, c) in r.colors.iter().enumerate() {
            let shadowed = mirror == Some(ci);
            if ci == r.stable
                || (weights[ci] == 0 && !shadowed)
                || state.machine.rolled_back.contains_key(&c.name)
            {
                continue;
            }
            let outcomes = state.outcomes_of(&c.name);
            let breach = if statuses[ci].iter().all(|s| *s == Status::Unhealthy) {
                let n = health_count(c.health.unhealthy_after);
                Some((
                    Kind::Unhealthy,
                    format!("no healthy backend: all {} failed {n}", c.backends.len()),
                ))
            } else {
                let summary = outcomes.summary(now, window, r.rollback.max_p99_latency);
                crate::judge::limits::judge(&r.rollback, &summary)
            };
            // A shadow's own measure first: answer for answer, did it agree with the served one?
            let breach = breach.or_else(|| {
                if !shadowed {
                    return None;
                }
                let q = r.quality.as_ref();
                let why = quality::agreement(
                    r.mirroring.min_agreement,
                    q.map_or(DEFAULT_MIN_SAMPLES, |q| q.min_samples),
                    window,
                    &outcomes.shadow(now, window),
                    q.is_some(),
                )?;
                Some((Kind::Quality, why))
            });
            let breach = breach.or_else(|| {
                let q = r.quality.as_ref()?;
                let answers = outcomes.answers(now, window).summary(&labels(&c.name));
                let why = quality::judge(
                    q,
                    window,
                    &c.name,
                    &answers,
                    r.stable_name(),
                    state.baseline.as_ref(),
                )?;
                Some((Kind::Quality, why))
            });
            if let Some((kind, reason)) = breach {
                out.push((c.name.clone(), kind, reason));
            }
        }
        out
    }
}

/// Compared answers before agreement judges, without `quality.min_samples`.
const DEFAULT_MIN_SAMPLES: u64 = 100;

fn health_count(n: u32) -> String {
    if n == 1 {
        "their health check".into()
    } else {
        format!("{n} health checks in a row")
    }
}
