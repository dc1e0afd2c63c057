//! How far a rollout step has counted: the candidate's judged requests since start, and where a
//! step that waits for requests began counting.

use crate::config::Step;

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
