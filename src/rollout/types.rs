//! What the rollout machine speaks in: where a rollout stands, why a color was rolled back,
//! how far a step has counted, and the events the supervisor feeds it.

use std::time::{Duration, Instant, SystemTime};

use crate::policy::Step;

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
        /// The candidate's judged-request count when the step began (known at the first tick).
        from: Option<u64>,
    },
    /// Frozen on `step` with `remaining` of its hold left.
    Paused {
        /// 0-based step.
        step: usize,
        /// Hold left when paused.
        remaining: Duration,
        /// As in `Progressing`: requests judged while paused count towards the step.
        from: Option<u64>,
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

/// The candidate's judged requests since blueshift started: live requests it answered, and
/// mirrored answers compared with the served ones. A step counts from where they stood when it
/// began: compared answers on a shadow step, live requests on a weight step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Live requests answered.
    pub requests: u64,
    /// Mirrored answers compared.
    pub compared: u64,
}

impl Progress {
    /// The count a step waits on.
    pub fn of(self, step: &Step) -> u64 {
        match step.shadow {
            Some(_) => self.compared,
            None => self.requests,
        }
    }
}

/// How far a step that waits for requests has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCount {
    /// The step.
    pub step: Step,
    /// The count when it began (known from its first tick).
    pub from: Option<u64>,
}

impl StepCount {
    /// Judged requests so far, and the number waited for.
    pub fn at(&self, now: Progress) -> (u64, u64) {
        let counted = self
            .from
            .map_or(0, |f| now.of(&self.step).saturating_sub(f));
        (counted, self.step.min_requests)
    }
}

/// What happens to the machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// Time passed (step holds may end), and the candidate has been judged this much.
    Tick(Progress),
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
