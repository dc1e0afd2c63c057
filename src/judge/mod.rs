//! Pure windows and verdicts: what happened to each color (outcome windows and answer counts),
//! and the rules that judge it (error rate and latency, quality, agreement, health). No I/O and
//! no clock of their own: every function takes the instant it judges at. Here too, the words
//! verdicts are reported in: rollback kinds and rollout states, each spelled once.

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

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<str>>::deserialize(d)?;
        Kind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("no rollback kind `{s}`")))
    }
}

/// Rollout state names, as `/status` and the metrics spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateName {
    /// No rollout running.
    Steady,
    /// A rollout walks its steps.
    Progressing,
    /// A rollout is frozen on its step.
    Paused,
    /// The candidate reached 100% and its holds are done.
    Promoted,
    /// Something was rolled back.
    RolledBack,
}

impl StateName {
    /// Every state, in the contract's order.
    pub const ALL: [StateName; 5] = [
        StateName::Steady,
        StateName::Progressing,
        StateName::Paused,
        StateName::Promoted,
        StateName::RolledBack,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Steady => "steady",
            StateName::Progressing => "progressing",
            StateName::Paused => "paused",
            StateName::Promoted => "promoted",
            StateName::RolledBack => "rolled_back",
        }
    }

    /// The state a spelling names.
    pub fn parse(s: &str) -> Option<StateName> {
        StateName::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

impl serde::Serialize for StateName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for StateName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<str>>::deserialize(d)?;
        StateName::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("no state `{s}`")))
    }
}
