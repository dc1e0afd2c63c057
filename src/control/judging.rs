//! The judging pass, five times a second: every non-stable color with weight is checked for
//! health, its outcome window (errors, latency) and, with quality gates, its answers.

use std::time::Instant;

use super::Inner;
use crate::control::rollout::Event;
use crate::judge::health::Status;
use crate::judge::quality::{self as quality, Baseline};
use crate::judge::Kind;
use crate::metrics::ColorMetrics;

impl Inner {
    /// Rolls back every non-stable color with weight that has no healthy backend or breaches a limit.
    pub(super) fn judge(&mut self) {
        let now = Instant::now();
        let p = self.policy.clone();
        let weights = self.machine.weights(&p);
        // The color getting mirrored copies is judged on them, with or without live weight.
        let mirror = self.machine.mirror(&p).map(|m| m.color);
        if let Some(q) = &p.quality {
            let stable = p.stable_name();
            let answers = self
                .outcomes_of(stable)
                .answers(now, p.rollback.window)
                .summary(&ColorMetrics::get(stable).label_names());
            self.baseline = Baseline::update(self.baseline.take(), answers, q.min_samples);
        }
        for (i, c) in p.colors.iter().enumerate() {
            let shadowed = mirror == Some(i);
            if i == p.stable
                || (weights[i] == 0 && !shadowed)
                || self.machine.rolled_back.contains_key(&c.name)
            {
                continue;
            }
            let statuses = self.statuses(c);
            let outcomes = self.outcomes_of(&c.name);
            let breach = if statuses.iter().all(|s| *s == Status::Unhealthy) {
                let n = health_count(c.health.unhealthy_after);
                Some((
                    Kind::Unhealthy,
                    format!("no healthy backend: all {} failed {n}", c.backends.len()),
                ))
            } else {
                let summary = outcomes.summary(now, p.rollback.window, p.rollback.max_p99_latency);
                crate::judge::limits::judge(&p.rollback, &summary)
            };
            // A shadow's own measure first: answer for answer, did it agree with the served one?
            let breach = breach.or_else(|| {
                if !shadowed {
                    return None;
                }
                let q = p.quality.as_ref();
                let why = quality::agreement(
                    p.mirroring.min_agreement,
                    q.map_or(DEFAULT_MIN_SAMPLES, |q| q.min_samples),
                    p.rollback.window,
                    &outcomes.shadow(now, p.rollback.window),
                    q.is_some(),
                )?;
                Some((Kind::Quality, why))
            });
            let breach = breach.or_else(|| {
                let q = p.quality.as_ref()?;
                let answers = outcomes
                    .answers(now, p.rollback.window)
                    .summary(&ColorMetrics::get(&c.name).label_names());
                let why = quality::judge(
                    q,
                    p.rollback.window,
                    &c.name,
                    &answers,
                    p.stable_name(),
                    self.baseline.as_ref(),
                )?;
                Some((Kind::Quality, why))
            });
            if let Some((kind, reason)) = breach {
                let _ = self.transition(Event::Breach {
                    color: c.name.clone(),
                    kind,
                    reason,
                });
            }
        }
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
