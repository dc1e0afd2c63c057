//! The pure rollout/rollback state machine: no I/O, no clock of its own.
//!
//! The supervisor feeds it [`Event`]s with an explicit `now` and asks it for the base weights
//! and the state to publish. Rolled-back colors are kept per name, so a reload that keeps a
//! color keeps its rollback, and nothing flaps: only `resume` or a change to that color (or to
//! the rollout) clears one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

mod types;

pub use types::{Event, Phase, RolledBack};

use crate::config::{Mirror, Route, Step};
use crate::judge::StateName;
use crate::judge::{Kind, Progress, StepCount};

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
    pub fn new(policy: &Route, now: Instant) -> Machine {
        Machine {
            phase: match policy.rollout {
                Some(_) => Phase::Progressing {
                    step: 0,
                    since: now,
                    from: None,
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
        self.phase.state()
    }

    /// Base weight per color before health and rollback.
    pub fn weights(&self, p: &Route) -> Vec<u32> {
        let mut w = p.split.clone();
        if let Some(r) = &p.rollout {
            let candidate = match (self.phase, self.phase.step()) {
                (_, Some(step)) => r.steps[step].weight,
                (Phase::Promoted, None) => 100,
                _ => return w,
            };
            w[r.candidate] = candidate;
            w[p.stable] = 100 - candidate;
        }
        w
    }

    /// When the current step's hold ends, if the clock runs.
    pub fn next_at(&self, p: &Route) -> Option<Instant> {
        match (self.phase, &p.rollout) {
            (Phase::Progressing { step, since, .. }, Some(r)) if !self.candidate_rolled_back(p) => {
                Some(since + r.steps[step].hold)
            }
            _ => None,
        }
    }

    /// The step's judged requests so far and the number it waits for, if it waits for any.
    pub fn step_progress(&self, p: &Route, now: Progress) -> Option<(u64, u64)> {
        self.step_count(p).map(|c| c.at(now))
    }

    /// What the current step counts, if it waits for requests.
    pub fn step_count(&self, p: &Route) -> Option<StepCount> {
        let (Some(step), Some(r)) = (self.phase.step(), &p.rollout) else {
            return None;
        };
        let s = r.steps[step];
        let from = self.phase.counted_from();
        (s.min_requests > 0).then_some(StepCount { step: s, from })
    }

    /// Where live requests are mirrored now: the candidate on a rollout's shadow step, else the
    /// standing `shadow` color; never a rolled-back color.
    pub fn mirror(&self, p: &Route) -> Option<Mirror> {
        let on_step = match (self.phase.step(), &p.rollout) {
            (Some(step), Some(r)) => r.steps[step].shadow.map(|percent| Mirror {
                color: r.candidate,
                percent,
            }),
            _ => None,
        };
        on_step
            .or(p.shadow)
            .filter(|m| !self.rolled_back.contains_key(&p.colors[m.color].name))
    }

    fn candidate_rolled_back(&self, p: &Route) -> bool {
        p.rollout
            .as_ref()
            .is_some_and(|r| self.rolled_back.contains_key(&p.colors[r.candidate].name))
    }

    /// Applies one event.
    pub fn on(&mut self, p: &Route, event: Event, now: Instant, wall: SystemTime) -> Outcome {
        match event {
            Event::Tick(progress) => {
                // A rolled-back candidate stops the clock: nothing advances past a bad step.
                while let (Some(at), Some(r)) = (self.next_at(p), &p.rollout) {
                    let Phase::Progressing { step, since, from } = self.phase else {
                        break;
                    };
                    let s = &r.steps[step];
                    let Some(from) = from else {
                        // The step's count starts at the first tick that knows it.
                        self.phase = Phase::Progressing {
                            step,
                            since,
                            from: Some(progress.of(s)),
                        };
                        continue;
                    };
                    if now < at || progress.of(s).saturating_sub(from) < s.min_requests {
                        break;
                    }
                    self.phase = match r.steps.get(step + 1) {
                        Some(next) => Phase::Progressing {
                            step: step + 1,
                            // A step that waited for requests ends now, not when its hold did.
                            since: if s.min_requests > 0 { now } else { at },
                            from: Some(progress.of(next)),
                        },
                        None => Phase::Promoted,
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
                // Colors with live traffic, and the one receiving mirrored copies.
                let mirror = self.mirror(p).map(|m| m.color);
                let targets: Vec<String> = p
                    .colors
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| {
                        *i != p.stable
                            && (weights[*i] > 0 || mirror == Some(*i))
                            && !self.rolled_back.contains_key(&c.name)
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
                Phase::Progressing { step, since, from } => {
                    let hold = p
                        .rollout
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.steps[step].hold);
                    let remaining = hold.saturating_sub(now.saturating_duration_since(since));
                    self.phase = Phase::Paused {
                        step,
                        remaining,
                        from,
                    };
                    Ok(())
                }
                Phase::Paused { .. } => Err("the rollout is already paused".into()),
                Phase::Steady => Err("no rollout is configured to pause".into()),
                Phase::Promoted => Err("the rollout is already promoted".into()),
            },
            Event::Resume => {
                if !self.rolled_back.is_empty() {
                    self.rolled_back.clear();
                    // The step that failed starts again, its hold and its count from now.
                    if let Phase::Progressing { step, .. } = self.phase {
                        self.phase = Phase::Progressing {
                            step,
                            since: now,
                            from: None,
                        };
                    }
                    return Ok(());
                }
                match (self.phase, &p.rollout) {
                    (
                        Phase::Paused {
                            step,
                            remaining,
                            from,
                        },
                        Some(r),
                    ) => {
                        let since = (now + remaining)
                            .checked_sub(r.steps[step].hold)
                            .unwrap_or(now);
                        self.phase = Phase::Progressing { step, since, from };
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
    pub fn reconcile(&mut self, old: &Route, new: &Route, now: Instant) -> Vec<String> {
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
fn rollout_key(p: &Route) -> Option<(String, Vec<Step>)> {
    p.rollout
        .as_ref()
        .map(|r| (p.colors[r.candidate].name.clone(), r.steps.clone()))
}
