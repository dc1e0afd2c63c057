//! The [`Snapshot`]: everything the request path reads, published atomically as one value.
//!
//! A request loads the current snapshot once, in its first hook, and keeps it to the end, so it
//! never mixes two policy generations. Only the supervisor builds and stores snapshots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::HeaderValue;
use pingora_core::upstreams::peer::HttpPeer;

use crate::config::{Mirror, Policy};
use crate::judge::health::Status;
use crate::judge::window::Outcomes;
use crate::metrics::ColorMetrics;
use crate::route::split::Table;

/// The one shared, atomically swapped view of the running policy.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// One published generation of routing state.
pub struct Snapshot {
    /// Applied policy changes since start.
    pub revision: u64,
    /// The policy this snapshot was built from.
    pub policy: Arc<Policy>,
    /// Effective weights and eligibility for the split.
    pub table: Table,
    /// Per-color runtime data, in policy order.
    pub colors: Vec<ColorRuntime>,
    /// Where live requests are mirrored now (a standing shadow or a rollout's shadow step).
    pub mirror: Option<Mirror>,
    /// What `/status` shows beyond routing.
    pub control: Control,
}

/// A color as the request path needs it.
pub struct ColorRuntime {
    /// `x-blueshift-color` value.
    pub name_header: HeaderValue,
    /// `Set-Cookie` that pins a session here, if cookie affinity is on.
    pub set_cookie: Option<HeaderValue>,
    /// The pool.
    pub backends: Vec<BackendRuntime>,
    /// Effective percent of new sessions.
    pub percent: u32,
    /// Metric handles.
    pub metrics: Arc<ColorMetrics>,
    /// Passive outcome window, shared across snapshots.
    pub outcomes: Arc<Outcomes>,
}

/// One backend of a pool.
pub struct BackendRuntime {
    /// Address.
    pub addr: SocketAddr,
    /// Weight inside the pool.
    pub weight: u32,
    /// Passing active health checks.
    pub healthy: bool,
    /// What the health checks know (`Unknown` until the first probe).
    pub health: Status,
    /// A peer with the policy's timeouts, cloned per request.
    pub peer: HttpPeer,
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
}

/// Control-plane facts shown by `/status`.
#[derive(Debug, Clone)]
pub struct Control {
    /// The rollout state.
    pub state: StateName,
    /// Progress of the rollout, if one is configured.
    pub rollout: Option<RolloutView>,
    /// The last rollback, while it holds.
    pub rollback: Option<RollbackView>,
    /// Result of the last reload attempt.
    pub last_reload: ReloadView,
    /// Changed settings that only a restart applies.
    pub restart_required: Vec<String>,
    /// The certificate of each TLS listener.
    pub tls: Vec<(std::net::SocketAddr, crate::config::certs::CertInfo)>,
}

/// Where a rollout stands.
#[derive(Debug, Clone)]
pub struct RolloutView {
    /// Candidate color.
    pub candidate: String,
    /// 1-based step.
    pub step: usize,
    /// Number of steps.
    pub steps: usize,
    /// On a shadow step: the candidate gets mirrored copies and serves no one.
    pub shadow: bool,
    /// What the step counts, if it waits for requests (read live against the candidate's window).
    pub counting: Option<crate::judge::StepCount>,
    /// Index of the candidate color.
    pub candidate_index: usize,
    /// When the next step (or promotion) begins, if the clock runs.
    pub next_at: Option<SystemTime>,
}

/// A rollback in force.
#[derive(Debug, Clone)]
pub struct RollbackView {
    /// The rolled-back color.
    pub color: String,
    /// A sentence a person understands.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// Outcome of the last reload.
#[derive(Debug, Clone, Default)]
pub struct ReloadView {
    /// Whether it applied (or changed nothing).
    pub ok: bool,
    /// The problems, when it did not.
    pub error: Option<String>,
    /// When it was attempted.
    pub at: Option<SystemTime>,
}

/// What the supervisor decides; [`Snapshot::build`] derives the rest.
pub struct Inputs<'a> {
    /// Applied policy changes.
    pub revision: u64,
    /// The policy.
    pub policy: Arc<Policy>,
    /// Weight per color before health and rollback (the split, or the rollout's step).
    pub base_weights: &'a [u32],
    /// Colors taken out by a rollback.
    pub rolled_back: &'a [bool],
    /// Health per color, per backend.
    pub health: &'a [Vec<Status>],
    /// Passive outcome windows per color.
    pub outcomes: &'a [Arc<Outcomes>],
    /// Where live requests are mirrored.
    pub mirror: Option<Mirror>,
    /// Status facts.
    pub control: Control,
}

impl Snapshot {
    /// Builds a snapshot: eligibility, effective weights and ready-made peers and headers.
    pub fn build(inp: Inputs<'_>) -> Snapshot {
        let p = &inp.policy;
        let n = p.colors.len();
        let eligible: Vec<bool> = (0..n)
            .map(|i| !inp.rolled_back[i] && inp.health[i].contains(&Status::Healthy))
            .collect();
        let mut weights: Vec<u32> = (0..n)
            .map(|i| if eligible[i] { inp.base_weights[i] } else { 0 })
            .collect();
        // The stable color takes the traffic of the colors that cannot.
        if eligible[p.stable] {
            let moved: u32 = (0..n)
                .filter(|i| !eligible[*i])
                .map(|i| inp.base_weights[i])
                .sum();
            weights[p.stable] += moved;
        }
        let percents = percents(&weights, &eligible, p.stable);
        let colors = p
            .colors
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c, crate::route::peer::ca(c)))
            .map(|(i, c, ca)| ColorRuntime {
                name_header: HeaderValue::from_str(&c.name).expect("color names are header-safe"),
                set_cookie: p.affinity.as_ref().and_then(|a| {
                    a.cookie
                        .as_ref()
                        .map(|k| crate::route::affinity::set_cookie(k, &c.name, a.max_age))
                }),
                backends: c
                    .backends
                    .iter()
                    .zip(&inp.health[i])
                    .map(|(b, health)| BackendRuntime {
                        addr: b.addr,
                        weight: b.weight,
                        healthy: *health == Status::Healthy,
                        health: *health,
                        peer: crate::route::peer::peer(b, c, ca.as_ref(), &p.timeouts),
                    })
                    .collect(),
                percent: percents[i],
                metrics: ColorMetrics::get(&c.name),
                outcomes: inp.outcomes[i].clone(),
            })
            .collect();
        let names = p.colors.iter().map(|c| c.name.clone()).collect();
        Snapshot {
            revision: inp.revision,
            table: Table::new(names, weights, eligible, p.stable),
            colors,
            mirror: inp.mirror,
            control: inp.control,
            policy: inp.policy,
        }
    }
}

/// Effective weights as whole percents summing to 100 (largest remainder), or all 0.
fn percents(weights: &[u32], eligible: &[bool], stable: usize) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        // All-zero weights: the split falls back to the stable color, else the first eligible one.
        let mut out = vec![0; weights.len()];
        let fallback = if eligible[stable] {
            Some(stable)
        } else {
            eligible.iter().position(|e| *e)
        };
        if let Some(i) = fallback {
            out[i] = 100;
        }
        return out;
    }
    let exact: Vec<u64> = weights.iter().map(|w| u64::from(*w) * 100).collect();
    let mut out: Vec<u32> = exact.iter().map(|e| (e / total) as u32).collect();
    let mut short = 100 - out.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(exact[*i] % total));
    for i in order {
        if short == 0 {
            break;
        }
        if weights[i] > 0 {
            out[i] += 1;
            short -= 1;
        }
    }
    out
}

impl ColorRuntime {
    /// A healthy backend not yet tried, drawn by weight; `r` is uniform over `u32`.
    pub fn pick(&self, tried: &[SocketAddr], r: u32) -> Option<&BackendRuntime> {
        let usable = |b: &&BackendRuntime| b.healthy && !tried.contains(&b.addr);
        let total: u64 = self
            .backends
            .iter()
            .filter(usable)
            .map(|b| u64::from(b.weight))
            .sum();
        if total == 0 {
            // Only weight-0 standbys are left: use one rather than fail.
            return self.backends.iter().find(usable);
        }
        let mut point = (u64::from(r) * total) >> 32;
        for b in self.backends.iter().filter(usable) {
            let w = u64::from(b.weight);
            if point < w {
                return Some(b);
            }
            point -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::percents;

    #[test]
    fn percents_sum_to_100() {
        assert_eq!(percents(&[90, 10], &[true, true], 0), vec![90, 10]);
        assert_eq!(percents(&[1, 2], &[true, true], 0), vec![33, 67]);
        assert_eq!(percents(&[1, 1, 1], &[true; 3], 0).iter().sum::<u32>(), 100);
        assert_eq!(percents(&[0, 0], &[false, true], 0), vec![0, 100]);
        assert_eq!(percents(&[0, 0], &[false, false], 0), vec![0, 0]);
    }
}
