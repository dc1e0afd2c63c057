//! Active health checks: one probe loop per backend of each color, over the color's protocol
//! (`GET path`, or gRPC's health protocol), reporting every result to the supervisor, which
//! counts them with [`Counter`].
//!
//! A backend starts `Unknown` and takes no traffic until its first probe passes (unlike
//! Pingora's load balancer, where backends start healthy). After that it flips only after
//! `healthy_after` passes or `unhealthy_after` failures in a row.

mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::connectors::http::Connector;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policy::{BackendSpec, Color, Health, Timeouts};

/// What a backend is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not probed yet: no traffic.
    Unknown,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl Status {
    /// `unknown`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// Counts consecutive probe results for one backend.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    /// Current status.
    pub status: Status,
    passes: u32,
    failures: u32,
    /// Why the last probe failed, if it did.
    pub last_error: Option<&'static str>,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            status: Status::Unknown,
            passes: 0,
            failures: 0,
            last_error: None,
        }
    }
}

impl Counter {
    /// Takes one probe result; returns whether the status changed.
    pub fn on_probe(&mut self, result: Result<(), &'static str>, h: &Health) -> bool {
        let before = self.status;
        match result {
            Ok(()) => {
                self.passes += 1;
                self.failures = 0;
                self.last_error = None;
                if self.status == Status::Unknown || self.passes >= h.healthy_after {
                    self.status = Status::Healthy;
                }
            }
            Err(why) => {
                self.failures += 1;
                self.passes = 0;
                self.last_error = Some(why);
                if self.status == Status::Unknown || self.failures >= h.unhealthy_after {
                    self.status = Status::Unhealthy;
                }
            }
        }
        self.status != before
    }
}

/// What one probe loop checks: a backend of a color (the same address may serve two colors
/// with different protocols or checks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The color's name.
    pub color: String,
    /// The backend's address.
    pub addr: SocketAddr,
}

/// How a target is probed; a change restarts its loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The backend.
    pub backend: BackendSpec,
    /// Its color (protocol, TLS, health settings).
    pub color: Color,
}

/// One probe result, sent to the supervisor.
#[derive(Debug)]
pub struct Probe {
    /// What was probed.
    pub target: Target,
    /// Pass, or a short reason.
    pub result: Result<(), &'static str>,
}

/// The running probe loops, one per target.
#[derive(Default)]
pub struct Checks {
    tasks: HashMap<Target, (Spec, JoinHandle<()>)>,
    connector: Option<Arc<Connector>>,
}

impl Checks {
    /// Makes the running loops match `targets`: starts new ones, stops removed ones, restarts
    /// changed ones. Must run inside a tokio runtime.
    pub fn sync(&mut self, targets: &[(Target, Spec)], tx: &mpsc::Sender<Probe>) {
        let connector = self
            .connector
            .get_or_insert_with(|| Arc::new(Connector::new(None)))
            .clone();
        self.tasks.retain(|target, (spec, task)| {
            let keep = targets.iter().any(|(t, s)| t == target && s == spec);
            if !keep {
                task.abort();
            }
            keep
        });
        for (target, spec) in targets {
            if !self.tasks.contains_key(target) {
                let task = tokio::spawn(probe_loop(
                    target.clone(),
                    spec.clone(),
                    connector.clone(),
                    tx.clone(),
                ));
                self.tasks.insert(target.clone(), (spec.clone(), task));
            }
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, (_, t)) in self.tasks.drain() {
            t.abort();
        }
    }
}

async fn probe_loop(
    target: Target,
    spec: Spec,
    connector: Arc<Connector>,
    tx: mpsc::Sender<Probe>,
) {
    let h = &spec.color.health;
    // The probe's own timeout bounds connecting and reading alike.
    let timeouts = Timeouts {
        connect: h.timeout,
        read: h.timeout,
        ..Timeouts::default()
    };
    let ca = crate::upstream::ca(&spec.color);
    let peer = crate::upstream::peer(&spec.backend, &spec.color, ca.as_ref(), &timeouts);
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(h.timeout, probe::probe(&connector, &peer, h)).await
        {
            Ok(r) => r,
            Err(_) => Err("timed out"),
        };
        if result == Err(probe::NO_VERDICT) {
            log::warn!(
                "skipping a health check of {}: {}",
                spec.backend.addr,
                probe::NO_VERDICT
            );
            continue;
        }
        let probe = Probe {
            target: target.clone(),
            result,
        };
        if tx.send(probe).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(up: u32, down: u32) -> Health {
        Health {
            healthy_after: up,
            unhealthy_after: down,
            ..Health::default()
        }
    }

    #[test]
    fn first_result_decides_an_unknown_backend() {
        let mut c = Counter::default();
        assert!(c.on_probe(Ok(()), &h(3, 3)));
        assert_eq!(c.status, Status::Healthy);
        let mut c = Counter::default();
        assert!(c.on_probe(Err("x"), &h(3, 3)));
        assert_eq!(c.status, Status::Unhealthy);
    }

    #[test]
    fn flips_need_consecutive_results() {
        let settings = h(2, 3);
        let mut c = Counter::default();
        c.on_probe(Ok(()), &settings);
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(
            !c.on_probe(Ok(()), &settings),
            "a pass resets the failure count"
        );
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(c.on_probe(Err("x"), &settings));
        assert_eq!(c.status, Status::Unhealthy);
        assert!(!c.on_probe(Ok(()), &settings));
        assert!(c.on_probe(Ok(()), &settings));
        assert_eq!(c.status, Status::Healthy);
    }
}
