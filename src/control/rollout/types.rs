//! What the rollout machine speaks in: where a rollout stands, what a rollback holds, and the
//! events the supervisor feeds it.

use std::time::{Duration, Instant, SystemTime};

use crate::judge::StateName;
use crate::judge::{Kind, Progress};

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

impl Phase {
    /// The 0-based step a running or paused rollout is on.
    pub fn step(self) -> Option<usize> {
        match self {
            Phase::Progressing { step, .. } | Phase::Paused { step, .. } => Some(step),
            Phase::Steady | Phase::Promoted => None,
        }
    }

    /// The state this phase shows when nothing is rolled back.
    pub fn state(self) -> StateName {
        match self {
            Phase::Steady => StateName::Steady,
            Phase::Progressing { .. } => StateName::Progressing,
            Phase::Paused { .. } => StateName::Paused,
            Phase::Promoted => StateName::Promoted,
        }
    }

    /// Where the step's count of judged requests began, on a running or paused step.
    pub fn counted_from(self) -> Option<u64> {
        match self {
            Phase::Progressing { from, .. } | Phase::Paused { from, .. } => from,
            Phase::Steady | Phase::Promoted => None,
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
