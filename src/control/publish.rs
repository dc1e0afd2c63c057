//! Publishing: the supervisor's state turned into one [`Snapshot`], stored for every reader.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Inner;
use crate::config::Route;
use crate::judge::health::Status;
use crate::judge::window::Outcomes;
use crate::metrics;
use crate::route::snapshot::{
    Control, RollbackView, RolloutView, RouteInputs, RouteRuntime, RouteView, Snapshot,
};

impl Inner {
    /// Builds and stores a snapshot of the current state, and sets the gauges that mirror it.
    pub(super) fn publish(&mut self) {
        let p = self.policy.clone();
        let routes: Vec<RouteRuntime> =
            (0..p.routes.len()).map(|i| self.route_runtime(i)).collect();
        for (r, rt) in p.routes.iter().zip(&routes) {
            gauges(r, rt);
        }
        let control = Control {
            last_reload: self.last_reload.clone(),
            restart_required: self.restart_required.clone(),
            tls: self.certs.iter().map(|(a, c)| (*a, c.info())).collect(),
        };
        for (addr, info) in &control.tls {
            metrics::set_certificate_expiry(&addr.to_string(), info.not_after);
        }
        metrics::set_revision(self.revision);
        let snap = Snapshot::new(self.revision, p, self.matcher.clone(), routes, control);
        self.shared.store(Arc::new(snap));
    }

    /// Route `i` as the request path will run it.
    fn route_runtime(&mut self, i: usize) -> RouteRuntime {
        let p = self.policy.clone();
        let r = &p.routes[i];
        let health: Vec<Vec<Status>> = r.colors.iter().map(|c| self.statuses(c)).collect();
        let state = &mut self.routes[i];
        let m = &state.machine;
        let weights = m.weights(r);
        let rolled_back: Vec<bool> = r
            .colors
            .iter()
            .map(|c| m.rolled_back.contains_key(&c.name))
            .collect();
        let now = Instant::now();
        let rollout = r.rollout.as_ref().map(|ro| {
            let at = m.phase.step();
            RolloutView {
                candidate: r.colors[ro.candidate].name.clone(),
                step: at.map_or(ro.steps.len(), |s| s + 1),
                steps: ro.steps.len(),
                shadow: at.is_some_and(|s| ro.steps[s].shadow.is_some()),
                counting: m.step_count(r),
                candidate_index: ro.candidate,
                next_at: m
                    .next_at(r)
                    .map(|at| SystemTime::now() + at.saturating_duration_since(now)),
            }
        });
        let rollback = m
            .rolled_back
            .iter()
            .max_by_key(|(_, rb)| rb.at)
            .map(|(color, rb)| RollbackView {
                color: color.clone(),
                kind: rb.kind,
                reason: rb.reason.clone(),
                at: rb.at,
            });
        let view = RouteView {
            state: m.state(),
            rollout,
            rollback,
        };
        let mirror = m.mirror(r);
        let outcomes: Vec<Arc<Outcomes>> = r
            .colors
            .iter()
            .map(|c| state.outcomes_of(&c.name))
            .collect();
        RouteRuntime::build(
            &p,
            r,
            RouteInputs {
                base_weights: &weights,
                rolled_back: &rolled_back,
                health: &health,
                outcomes: &outcomes,
                mirror,
                view,
            },
        )
    }
}

/// The gauges that mirror a route's runtime, and the series to show before anything happens.
fn gauges(r: &Route, rt: &RouteRuntime) {
    for (i, c) in r.colors.iter().enumerate() {
        let m = &rt.colors[i].metrics;
        metrics::set_weight(&r.name, &c.name, rt.colors[i].percent);
        m.touch();
        if r.quality.is_some() {
            m.touch_answers();
        }
        if c.protocol.h2() {
            m.touch_grpc();
        }
        if rt.mirror.is_some_and(|mi| mi.color == i) {
            m.touch_shadow();
        }
        metrics::touch_rollbacks(&r.name, &c.name);
        for b in &rt.colors[i].backends {
            metrics::set_backend_healthy(&r.name, &c.name, &b.addr.to_string(), b.healthy);
        }
    }
    rt.uncolored.touch_errors();
    metrics::set_state(&r.name, rt.view.state);
}
