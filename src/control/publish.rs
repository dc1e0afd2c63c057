//! Publishing: the supervisor's state turned into one [`Snapshot`], stored for every reader.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Inner;
use crate::control::rollout;
use crate::judge::health::Status;
use crate::judge::window::Outcomes;
use crate::metrics;
use crate::route::snapshot::{self, Control, RollbackView, RolloutView, Snapshot};

impl Inner {
    /// Builds and stores a snapshot of the current state, and sets the gauges that mirror it.
    pub(super) fn publish(&mut self) {
        let p = self.policy.clone();
        let weights = self.machine.weights(&p);
        let rolled_back: Vec<bool> = p
            .colors
            .iter()
            .map(|c| self.machine.rolled_back.contains_key(&c.name))
            .collect();
        let health: Vec<Vec<Status>> = p.colors.iter().map(|c| self.statuses(c)).collect();
        let outcomes: Vec<Arc<Outcomes>> =
            p.colors.iter().map(|c| self.outcomes_of(&c.name)).collect();
        let now = Instant::now();
        let rollout = p.rollout.as_ref().map(|r| {
            let at = match self.machine.phase {
                rollout::Phase::Progressing { step, .. } | rollout::Phase::Paused { step, .. } => {
                    Some(step)
                }
                _ => None,
            };
            RolloutView {
                candidate: p.colors[r.candidate].name.clone(),
                step: at.map_or(r.steps.len(), |s| s + 1),
                steps: r.steps.len(),
                shadow: at.is_some_and(|s| r.steps[s].shadow.is_some()),
                counting: self.machine.step_count(&p),
                candidate_index: r.candidate,
                next_at: self
                    .machine
                    .next_at(&p)
                    .map(|at| SystemTime::now() + at.saturating_duration_since(now)),
            }
        });
        let rollback = self
            .machine
            .rolled_back
            .iter()
            .max_by_key(|(_, r)| r.at)
            .map(|(color, r)| RollbackView {
                color: color.clone(),
                reason: r.reason.clone(),
                at: r.at,
            });
        let snap = Snapshot::build(snapshot::Inputs {
            revision: self.revision,
            policy: p.clone(),
            base_weights: &weights,
            rolled_back: &rolled_back,
            health: &health,
            outcomes: &outcomes,
            mirror: self.machine.mirror(&p),
            control: Control {
                state: self.machine.state(),
                rollout,
                rollback,
                last_reload: self.last_reload.clone(),
                restart_required: self.restart_required.clone(),
                tls: self.certs.iter().map(|(a, c)| (*a, c.info())).collect(),
            },
        });
        for (i, c) in p.colors.iter().enumerate() {
            metrics::set_weight(&c.name, snap.colors[i].percent);
            snap.colors[i].metrics.touch();
            if p.quality.is_some() {
                snap.colors[i].metrics.touch_answers();
            }
            if c.protocol.h2() {
                snap.colors[i].metrics.touch_grpc();
            }
            if snap.mirror.is_some_and(|m| m.color == i) {
                snap.colors[i].metrics.touch_shadow();
            }
            metrics::touch_rollbacks(&c.name);
            for (b, h) in c.backends.iter().zip(&health[i]) {
                metrics::set_backend_healthy(&c.name, &b.addr.to_string(), *h == Status::Healthy);
            }
        }
        for (addr, info) in &snap.control.tls {
            metrics::set_certificate_expiry(&addr.to_string(), info.not_after);
        }
        metrics::set_revision(self.revision);
        metrics::set_state(snap.control.state.as_str());
        self.shared.store(Arc::new(snap));
    }
}
