//! Applying a reloaded policy: validate off to the side, carry state over, swap once.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use log::{error, info, warn};

use super::{tag, Inner, RouteState};
use crate::config::{self, Policy, Route};
use crate::control::health::Target;
use crate::control::rollout::Machine;
use crate::metrics;
use crate::route::matcher::Table as Routes;
use crate::route::snapshot::ReloadView;

impl Inner {
    /// Re-reads the policy; on any problem keeps everything as it is.
    pub(super) fn reload(&mut self, source: &str) -> Result<(), String> {
        let at = Some(SystemTime::now());
        match config::read_checked(&self.path) {
            Err(problems) => {
                let error = problems
                    .0
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                error!(
                    "reload ({source}) of {} failed, keeping revision {}: {error}",
                    self.path.display(),
                    self.revision
                );
                metrics::reloaded(false);
                self.last_reload = ReloadView {
                    ok: false,
                    error: Some(error.clone()),
                    at,
                };
                self.publish();
                Err(format!("the policy is invalid, nothing changed: {error}"))
            }
            Ok(checked) => {
                for w in &checked.warnings {
                    warn!("{}:{w}", self.path.display());
                }
                let new = checked.policy;
                metrics::reloaded(true);
                self.last_reload = ReloadView {
                    ok: true,
                    error: None,
                    at,
                };
                self.apply(new, source);
                Ok(())
            }
        }
    }

    fn apply(&mut self, new: Policy, source: &str) {
        let old = self.policy.clone();
        self.restart_required = ["listen", "admin"]
            .into_iter()
            .filter(|k| match *k {
                "listen" => old.listen != new.listen,
                _ => old.admin != new.admin,
            })
            .map(|k| format!("{k} changed: restart blueshift (or serve --upgrade) to apply it"))
            .collect();
        for r in &self.restart_required {
            warn!("{r}");
        }
        if *old == new {
            info!(
                "reload ({source}): policy unchanged at revision {}",
                self.revision
            );
            self.publish();
            return;
        }
        let now = Instant::now();
        let mut before = Vec::new();
        let mut routes = Vec::new();
        for r in &new.routes {
            // A route keeps its state (rollout clock, rollbacks, windows) across a reload; its
            // machine is carried over the changes to it alone.
            let kept = old.route_index(&r.name).map(|i| {
                (
                    &old.routes[i],
                    std::mem::replace(&mut self.routes[i], RouteState::new(Machine::new(r, now))),
                )
            });
            let state = match kept {
                Some((was, mut state)) => {
                    let machine = state.machine.clone();
                    for name in state.machine.reconcile(was, r, now) {
                        info!("{}reload clears the rollback of {name}", tag(&new, r));
                    }
                    carry(&mut state, was, r, now);
                    before.push(Some(machine));
                    state
                }
                None => {
                    info!("{}reload adds the route", tag(&new, r));
                    before.push(None);
                    RouteState::new(Machine::new(r, now))
                }
            };
            routes.push(state);
        }
        for was in &old.routes {
            let now = new.route_index(&was.name).map(|i| &new.routes[i]);
            forget(was, now);
            if now.is_none() {
                info!("reload removes route {}", was.name);
            }
        }
        self.routes = routes;
        self.revision += 1;
        self.matcher = Arc::new(Routes::new(&new.routes));
        self.policy = Arc::new(new);
        self.sync_checks();
        info!("reload ({source}): applied revision {}", self.revision);
        for (i, was) in before.into_iter().enumerate() {
            if let Some(was) = was {
                if was != self.routes[i].machine {
                    self.after_change(i, &was);
                }
            }
        }
        self.save();
        self.publish();
    }

    /// Makes the probe loops match the policy's backends: one per backend and check.
    pub(super) fn sync_checks(&mut self) {
        let mut targets: Vec<Target> = Vec::new();
        for r in &self.policy.routes {
            for c in &r.colors {
                for b in &c.backends {
                    let t = Target::of(c, b);
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
            }
        }
        self.health.retain(|t, _| targets.contains(t));
        for t in &targets {
            self.health.entry(t.clone()).or_default();
        }
        self.checks.sync(&targets, &self.probe_tx);
    }

    /// Re-reads every TLS listener's pair: a good one serves new handshakes from now on, a broken
    /// one is logged and shown while the old one keeps serving.
    pub(super) fn reload_certs(&mut self) {
        for (addr, store) in &self.certs {
            match store.reload() {
                Ok(true) => info!("listener {addr}: new certificate {}", store.info().subject),
                Ok(false) => {}
                Err(e) => error!("listener {addr}: keeping the current certificate: {e}"),
            }
        }
        self.publish();
    }
}

/// What a kept route's windows and baseline keep: a color whose backends changed is judged
/// afresh, a removed one forgotten; another stable color or other gates need a new baseline.
fn carry(state: &mut RouteState, was: &Route, now_is: &Route, now: Instant) {
    for c in &now_is.colors {
        let changed = was
            .colors
            .iter()
            .find(|o| o.name == c.name)
            .is_none_or(|o| o.backends != c.backends);
        if changed {
            state.outcomes_of(&c.name).clear(now);
        }
    }
    state
        .outcomes
        .retain(|name, _| now_is.color_index(name).is_some());
    if was.stable_name() != now_is.stable_name() || was.quality != now_is.quality {
        state.baseline = None;
    }
}

/// Drops the gauges of what a reload removed from route `was` (all of them if it is gone).
fn forget(was: &Route, now: Option<&Route>) {
    if now.is_none() {
        metrics::forget_route(&was.name);
    }
    for c in &was.colors {
        let kept = now.and_then(|r| r.colors.iter().find(|n| n.name == c.name));
        if kept.is_none() {
            metrics::forget_color(&was.name, &c.name);
        }
        for b in &c.backends {
            if !kept.is_some_and(|k| k.backends.iter().any(|nb| nb.addr == b.addr)) {
                metrics::forget_backend(&was.name, &c.name, &b.addr.to_string());
            }
        }
    }
}
