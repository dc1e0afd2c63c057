//! Applying a reloaded policy: validate off to the side, carry state over, swap once.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use log::{error, info, warn};

use super::Inner;
use crate::config::{self, Policy};
use crate::control::health::{Spec, Target};
use crate::metrics;
use crate::route::snapshot::ReloadView;

impl Inner {
    /// Re-reads the policy; on any problem keeps everything as it is.
    pub(super) fn reload(&mut self, source: &str) -> Result<(), String> {
        let at = Some(SystemTime::now());
        match config::read_file(&self.path) {
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
            Ok(new) => {
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
            .filter(|k| {
                if *k == "listen" {
                    old.listen != new.listen
                } else {
                    old.admin != new.admin
                }
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
        let before = self.machine.clone();
        for name in self.machine.reconcile(&old, &new, Instant::now()) {
            info!("reload clears the rollback of {name}");
        }
        for c in &new.colors {
            let changed = old
                .colors
                .iter()
                .find(|o| o.name == c.name)
                .is_none_or(|o| o.backends != c.backends);
            if changed {
                self.outcomes_of(&c.name).clear(Instant::now());
            }
        }
        for c in &old.colors {
            if new.color_index(&c.name).is_none() {
                self.outcomes.remove(&c.name);
                metrics::forget_color(&c.name);
            }
            for b in &c.backends {
                if !new
                    .colors
                    .iter()
                    .any(|n| n.name == c.name && n.backends.iter().any(|nb| nb.addr == b.addr))
                {
                    metrics::forget_backend(&c.name, &b.addr.to_string());
                }
            }
        }
        if old.stable_name() != new.stable_name() || old.quality != new.quality {
            // Stable's earlier answers are no baseline for another stable color or other gates.
            self.baseline = None;
        }
        self.revision += 1;
        self.policy = Arc::new(new);
        let targets = self.targets();
        self.health
            .retain(|t, _| targets.iter().any(|(target, _)| target == t));
        self.checks.sync(&targets, &self.probe_tx);
        info!("reload ({source}): applied revision {}", self.revision);
        self.after_change(&before);
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

    /// Every backend of every color, with how it is probed.
    pub(super) fn targets(&self) -> Vec<(Target, Spec)> {
        self.policy
            .colors
            .iter()
            .flat_map(|c| {
                c.backends.iter().map(|b| {
                    let target = Target {
                        color: c.name.clone(),
                        addr: b.addr,
                    };
                    let spec = Spec {
                        backend: b.clone(),
                        color: c.clone(),
                    };
                    (target, spec)
                })
            })
            .collect()
    }
}
