//! Pure windows and verdicts: what happened to each color (outcome windows and answer counts),
//! and the rules that judge it (error rate and latency, quality, agreement, health). No I/O and
//! no clock of their own: every function takes the instant it judges at.

pub mod answer;
pub mod compare;
pub mod counts;
pub mod grpc;
pub mod health;
pub mod limits;
mod progress;
pub mod quality;
pub mod window;

pub use progress::{Progress, StepCount};

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
    /// Every kind, in the contract's order.
    pub const ALL: [Kind; 5] = [
        Kind::Unhealthy,
        Kind::ErrorRate,
        Kind::Latency,
        Kind::Quality,
        Kind::Manual,
    ];

    /// The kind a label names, if any.
    pub fn parse(label: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == label)
    }

    /// The contract's spelling: `/status.rollback.kind`, the `reason` label of
    /// `blueshift_rollbacks_total`, the state file.
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
