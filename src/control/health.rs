//! Active health checks: one probe loop per backend of each color, over the color's protocol
//! (`GET path`, or gRPC's health protocol), reporting every result to the supervisor, which
//! counts them with [`crate::judge::health::Counter`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::connectors::http::Connector;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{BackendSpec, Color, Timeouts};

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
    let ca = crate::route::peer::ca(&spec.color);
    let peer = crate::route::peer::peer(&spec.backend, &spec.color, ca.as_ref(), &timeouts);
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(
            h.timeout,
            crate::control::probe::probe(&connector, &peer, h),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err("timed out"),
        };
        if result == Err(crate::control::probe::NO_VERDICT) {
            log::warn!(
                "skipping a health check of {}: {}",
                spec.backend.addr,
                crate::control::probe::NO_VERDICT
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
