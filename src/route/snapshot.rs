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

use super::matcher::Table as Routes;
use super::split::Table;
use crate::config::{Mirror, Policy, Route};
use crate::judge::health::Status;
use crate::judge::window::Outcomes;
use crate::judge::{Kind, StateName, StepCount};
use crate::metrics::ColorMetrics;

/// The one shared, atomically swapped view of the running policy.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// One published generation of routing state.
pub struct Snapshot {
    /// Applied policy changes since start.
    pub revision: u64,
    /// The policy this snapshot was built from.
    pub policy: Arc<Policy>,
    /// Which route takes a request (built once per policy, shared by its snapshots).
    pub matcher: Arc<Routes>,
    /// Each route's runtime, in policy order.
    pub routes: Vec<RouteRuntime>,
    /// Counts the requests no route took.
    pub unmatched: Arc<ColorMetrics>,
    /// What `/status` shows of the process as a whole.
    pub control: Control,
}

/// A route as the request path needs it.
pub struct RouteRuntime {
    /// Effective weights and eligibility for the split.
    pub table: Table,
    /// Per-color runtime data, in policy order.
    pub colors: Vec<ColorRuntime>,
    /// Where live requests are mirrored now (a standing shadow or a rollout's shadow step).
    pub mirror: Option<Mirror>,
    /// Counts the requests of this route that got no color (an unknown override, say).
    pub uncolored: Arc<ColorMetrics>,
    /// What `/status` shows of the route's rollout.
    pub view: RouteView,
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

/// What `/status` shows of the process beyond its routes.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Result of the last reload attempt.
    pub last_reload: ReloadView,
    /// Changed settings that only a restart applies.
    pub restart_required: Vec<String>,
    /// The certificate of each TLS listener.
    pub tls: Vec<(SocketAddr, crate::config::certs::CertInfo)>,
}

/// What `/status` shows of one route's rollout and rollbacks.
#[derive(Debug, Clone)]
pub struct RouteView {
    /// The rollout state.
    pub state: StateName,
    /// Progress of the rollout, if one is configured.
    pub rollout: Option<RolloutView>,
    /// The last rollback, while it holds.
    pub rollback: Option<RollbackView>,
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
    pub counting: Option<StepCount>,
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
    /// Why, for scripts.
    pub kind: Kind,
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

/// What the supervisor decides for one route; [`RouteRuntime::build`] derives the rest.
pub struct RouteInputs<'a> {
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
    pub view: RouteView,
}

impl Snapshot {
    /// A snapshot of `policy` with each route's runtime (in policy order).
    pub fn new(
        revision: u64,
        policy: Arc<Policy>,
        matcher: Arc<Routes>,
        routes: Vec<RouteRuntime>,
        control: Control,
    ) -> Snapshot {
        Snapshot {
            revision,
            matcher,
            routes,
            unmatched: ColorMetrics::get(crate::metrics::NONE, crate::metrics::NONE),
            control,
            policy,
        }
    }

    /// The index of the route with this name.
    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.policy.route_index(name)
    }

    /// Route `i` as the policy says it and as it runs.
    pub fn route(&self, i: usize) -> (&Route, &RouteRuntime) {
        (&self.policy.routes[i], &self.routes[i])
    }
}

impl RouteRuntime {
    /// Builds a route's runtime: eligibility, effective weights and ready-made peers and headers.
    pub fn build(p: &Policy, r: &Route, inp: RouteInputs<'_>) -> RouteRuntime {
        let n = r.colors.len();
        let eligible: Vec<bool> = (0..n)
            .map(|i| !inp.rolled_back[i] && inp.health[i].contains(&Status::Healthy))
            .collect();
        let mut weights: Vec<u32> = (0..n)
            .map(|i| if eligible[i] { inp.base_weights[i] } else { 0 })
            .collect();
        // The stable color takes the traffic of the colors that cannot.
        if eligible[r.stable] {
            let moved: u32 = (0..n)
                .filter(|i| !eligible[*i])
                .map(|i| inp.base_weights[i])
                .sum();
            weights[r.stable] += moved;
        }
        let percents = percents(&weights, &eligible, r.stable);
        let colors = r
            .colors
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c, super::peer::ca(c)))
            .map(|(i, c, ca)| ColorRuntime {
                name_header: HeaderValue::from_str(&c.name).expect("color names are header-safe"),
                set_cookie: r.affinity.as_ref().and_then(|a| {
                    a.cookie
                        .as_ref()
                        .map(|k| super::affinity::set_cookie(k, &c.name, a.max_age))
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
                        peer: super::peer::peer(b, c, ca.as_ref(), &p.timeouts),
                    })
                    .collect(),
                percent: percents[i],
                metrics: ColorMetrics::get(&r.name, &c.name),
                outcomes: inp.outcomes[i].clone(),
            })
            .collect();
        let names = r.colors.iter().map(|c| c.name.clone()).collect();
        RouteRuntime {
            table: Table::new(names, weights, eligible, r.stable),
            colors,
            mirror: inp.mirror,
            uncolored: ColorMetrics::get(&r.name, crate::metrics::NONE),
            view: inp.view,
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
