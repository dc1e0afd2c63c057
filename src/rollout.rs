//! The pure rollout/rollback state machine: no I/O, no clock of its own.
//!
//! The supervisor feeds it [`Event`]s with an explicit `now` and asks it for the base weights
//! and the state to publish. Rolled-back colors are kept per name, so a reload that keeps a
//! color keeps its rollback, and nothing flaps: only `resume` or a change to that color (or to
//! the rollout) clears one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::outcomes::Summary;
use crate::policy::{Policy, RollbackLimits};
use crate::state::StateName;

/// Where a configured rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No rollout configured.
    Steady,
    /// Holding step `step` (0-based) since `since`.
    Progressing {
        /// 0-based step.
        step: usize,
        /// When the hold began (shifted on resume so that paused time does not count).
        since: Instant,
    },
    /// Frozen on `step` with `remaining` of its hold left.
    Paused {
        /// 0-based step.
        step: usize,
        /// Hold left when paused.
        remaining: Duration,
    },
    /// The candidate is at 100% and every hold is done (or an operator promoted it).
    Promoted,
}

/// Why a color was rolled back, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No healthy backend.
    Unhealthy,
    /// Too many 5xx or proxy errors.
    ErrorRate,
    /// p99 latency above the limit.
    Latency,
    /// What it answers differs from the stable color's answers, or is invalid.
    Quality,
    /// `POST /rollback`.
    Manual,
}

impl Kind {
    /// The `reason` label of `blueshift_rollbacks_total`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Unhealthy => "unhealthy",
            Kind::ErrorRate => "error_rate",
            Kind::Latency => "latency",
            Kind::Quality => "quality",
            Kind::Manual => "manual",
        }
    }
}

/// One rolled-back color.
#[derive(Debug, Clone, PartialEq)]
pub struct RolledBack {
    /// Reason kind.
    pub kind: Kind,
    /// A sentence a person understands.
    pub reason: String,
    /// Wall-clock time of the rollback.
    pub at: SystemTime,
}

/// What happens to the machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// Time passed; step holds may end.
    Tick,
    /// The supervisor judged `color` bad.
    Breach {
        /// Color name.
        color: String,
        /// Reason kind.
        kind: Kind,
        /// Sentence.
        reason: String,
    },
    /// `POST /rollback`.
    Rollback,
    /// `POST /promote`.
    Promote,
    /// `POST /pause`.
    Pause,
    /// `POST /resume`.
    Resume,
}

/// The machine's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Rollout phase.
    pub phase: Phase,
    /// Rolled-back colors by name.
    pub rolled_back: BTreeMap<String, RolledBack>,
}

/// The answer to an event: `Err` says why it does not apply (HTTP 409).
pub type Outcome = Result<(), String>;

impl Machine {
    /// The start state for a policy.
    pub fn new(policy: &Policy, now: Instant) -> Machine {
        Machine {
            phase: match policy.rollout {
                Some(_) => Phase::Progressing {
                    step: 0,
                    since: now,
                },
                None => Phase::Steady,
            },
            rolled_back: BTreeMap::new(),
        }
    }

    /// The state name to publish.
    pub fn state(&self) -> StateName {
        if !self.rolled_back.is_empty() {
            return StateName::RolledBack;
        }
        match self.phase {
            Phase::Steady => StateName::Steady,
            Phase::Progressing { .. } => StateName::Progressing,
            Phase::Paused { .. } => StateName::Paused,
            Phase::Promoted => StateName::Promoted,
        }
    }

    /// Base weight per color before health and rollback.
    pub fn weights(&self, p: &Policy) -> Vec<u32> {
        let mut w = p.split.clone();
        if let Some(r) = &p.rollout {
            let candidate = match self.phase {
                Phase::Progressing { step, .. } | Phase::Paused { step, .. } => {
                    r.steps[step].weight
                }
                Phase::Promoted => 100,
                Phase::Steady => return w,
            };
            w[r.candidate] = candidate;
            w[p.stable] = 100 - candidate;
        }
        w
    }

    /// When the current step's hold ends, if the clock runs.
    pub fn next_at(&self, p: &Policy) -> Option<Instant> {
        match (self.phase, &p.rollout) {
            (Phase::Progressing { step, since }, Some(r)) if !self.candidate_rolled_back(p) => {
                Some(since + r.steps[step].hold)
            }
            _ => None,
        }
    }

    fn candidate_rolled_back(&self, p: &Policy) -> bool {
        p.rollout
            .as_ref()
            .is_some_and(|r| self.rolled_back.contains_key(&p.colors[r.candidate].name))
    }

    /// Applies one event.
    pub fn on(&mut self, p: &Policy, event: Event, now: Instant, wall: SystemTime) -> Outcome {
        match event {
            Event::Tick => {
                // A rolled-back candidate stops the clock: nothing advances past a bad step.
                while let (Some(at), Some(r)) = (self.next_at(p), &p.rollout) {
                    if now < at {
                        break;
                    }
                    let Phase::Progressing { step, .. } = self.phase else {
                        break;
                    };
                    self.phase = if step + 1 < r.steps.len() {
                        Phase::Progressing {
                            step: step + 1,
                            since: at,
                        }
                    } else {
                        Phase::Promoted
                    };
                }
                Ok(())
            }
            Event::Breach {
                color,
                kind,
                reason,
            } => {
                if color == p.stable_name() || self.rolled_back.contains_key(&color) {
                    return Err(format!("{color} cannot be rolled back now"));
                }
                self.rolled_back.insert(
                    color,
                    RolledBack {
                        kind,
                        reason,
                        at: wall,
                    },
                );
                Ok(())
            }
            Event::Rollback => {
                let weights = self.weights(p);
                let targets: Vec<String> = p
                    .colors
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| {
                        *i != p.stable && weights[*i] > 0 && !self.rolled_back.contains_key(&c.name)
                    })
                    .map(|(_, c)| c.name.clone())
                    .collect();
                if targets.is_empty() {
                    return Err(format!(
                        "nothing to roll back: {} already takes all traffic",
                        p.stable_name()
                    ));
                }
                for color in targets {
                    // The contract spells the reason of an operator's rollback `manual`, for scripts to match.
                    let reason = "manual".to_string();
                    self.rolled_back.insert(
                        color,
                        RolledBack {
                            kind: Kind::Manual,
                            reason,
                            at: wall,
                        },
                    );
                }
                Ok(())
            }
            Event::Promote => {
                let Some(r) = &p.rollout else {
                    return Err("no rollout is configured to promote".into());
                };
                if self.candidate_rolled_back(p) {
                    return Err(format!(
                        "{} is rolled back; resume it before promoting",
                        p.colors[r.candidate].name
                    ));
                }
                if self.phase == Phase::Promoted {
                    return Err(format!(
                        "{} is already promoted",
                        p.colors[r.candidate].name
                    ));
                }
                self.phase = Phase::Promoted;
                Ok(())
            }
            Event::Pause => match self.phase {
                Phase::Progressing { step, since } => {
                    let hold = p
                        .rollout
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.steps[step].hold);
                    let remaining = hold.saturating_sub(now.saturating_duration_since(since));
                    self.phase = Phase::Paused { step, remaining };
                    Ok(())
                }
                Phase::Paused { .. } => Err("the rollout is already paused".into()),
                Phase::Steady => Err("no rollout is configured to pause".into()),
                Phase::Promoted => Err("the rollout is already promoted".into()),
            },
            Event::Resume => {
                if !self.rolled_back.is_empty() {
                    self.rolled_back.clear();
                    // The step that failed starts its hold again, from now.
                    if let Phase::Progressing { step, .. } = self.phase {
                        self.phase = Phase::Progressing { step, since: now };
                    }
                    return Ok(());
                }
                match (self.phase, &p.rollout) {
                    (Phase::Paused { step, remaining }, Some(r)) => {
                        let since = (now + remaining)
                            .checked_sub(r.steps[step].hold)
                            .unwrap_or(now);
                        self.phase = Phase::Progressing { step, since };
                        Ok(())
                    }
                    _ => Err(
                        "nothing to resume: the rollout is not paused and nothing is rolled back"
                            .into(),
                    ),
                }
            }
        }
    }

    /// Carries the machine over a policy change: rollbacks of removed or changed colors are
    /// cleared, and a changed rollout starts again from its first step.
    pub fn reconcile(&mut self, old: &Policy, new: &Policy, now: Instant) -> Vec<String> {
        let mut cleared = Vec::new();
        let rollout_changed = rollout_key(old) != rollout_key(new);
        self.rolled_back.retain(|name, _| {
            let before = old.colors.iter().find(|c| &c.name == name);
            let after = new.colors.iter().find(|c| &c.name == name);
            let is_candidate = new
                .rollout
                .as_ref()
                .is_some_and(|r| &new.colors[r.candidate].name == name);
            let keep = matches!((before, after), (Some(b), Some(a)) if b.backends == a.backends)
                && !(rollout_changed && is_candidate)
                && new.stable_name() != name;
            if !keep {
                cleared.push(name.clone());
            }
            keep
        });
        if rollout_changed {
            self.phase = Machine::new(new, now).phase;
        }
        cleared
    }
}

/// What identifies a rollout across reloads: candidate name and steps.
fn rollout_key(p: &Policy) -> Option<(String, Vec<(u32, Duration)>)> {
    p.rollout.as_ref().map(|r| {
        (
            p.colors[r.candidate].name.clone(),
            r.steps.iter().map(|s| (s.weight, s.hold)).collect(),
        )
    })
}

/// Judges one color's recent outcomes; `Some` is a breach worth a rollback.
pub fn judge(limits: &RollbackLimits, s: &Summary) -> Option<(Kind, String)> {
    let window = humantime::format_duration(limits.window);
    let limit = humantime::format_duration(limits.max_p99_latency);
    if s.requests >= limits.min_requests {
        if s.error_rate() > limits.max_error_rate {
            return Some((
                Kind::ErrorRate,
                format!(
                    "error rate {:.2} > {} over {window} ({} requests)",
                    s.error_rate(),
                    limits.max_error_rate,
                    s.requests
                ),
            ));
        }
        if s.p99 > limits.max_p99_latency {
            return Some((
                Kind::Latency,
                format!(
                    "p99 latency {} > {limit} over {window} ({} requests)",
                    humantime::format_duration(Duration::from_millis(s.p99.as_millis() as u64)),
                    s.requests
                ),
            ));
        }
    }
    // A hung model answers nothing to judge: the requests waiting on it past the limit count as
    // slower than it, so more than 1% of them (with the slow answers) is a p99 over the limit.
    let total = s.requests + s.stuck;
    if s.stuck > 0 && total >= limits.min_requests && (s.slow + s.stuck) * 100 > total {
        return Some((
            Kind::Latency,
            format!(
                "p99 latency > {limit} over {window}: {} requests waiting longer, {} answered slower ({total} requests)",
                s.stuck, s.slow,
            ),
        ));
    }
    None
}
