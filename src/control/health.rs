//! Active health checks: one probe loop per backend of each color, over the color's protocol
//! (`GET path`, or gRPC's health protocol), reporting every result to the supervisor, which
//! counts them with [`crate::judge::health::Counter`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::connectors::http::Connector;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{BackendSpec, Color, Health, Protocol, Timeouts, UpstreamTls};

/// What one probe loop checks: a backend's address and how it is checked (its color's protocol,
/// TLS and health settings). Routes and colors that name the same backend the same way share
/// one loop and one health.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The backend's address.
    pub addr: SocketAddr,
    /// The host as written (the default TLS server name).
    pub host: String,
    /// How blueshift speaks to it.
    pub protocol: Protocol,
    /// TLS towards it.
    pub tls: UpstreamTls,
    /// How it is checked.
    pub health: Health,
}

impl Target {
    /// The probe loop of backend `b` of `color`.
    pub fn of(color: &Color, b: &BackendSpec) -> Target {
        Target {
            addr: b.addr,
            host: b.host.clone(),
            protocol: color.protocol,
            tls: color.tls.clone(),
            health: color.health.clone(),
        }
    }

    /// The target as a one-backend color, for [`crate::route::peer`].
    fn as_color(&self) -> (BackendSpec, Color) {
        let backend = BackendSpec {
            addr: self.addr,
            host: self.host.clone(),
            weight: 1,
        };
        let color = Color {
            name: String::new(),
            backends: vec![backend.clone()],
            protocol: self.protocol,
            tls: self.tls.clone(),
            health: self.health.clone(),
        };
        (backend, color)
    }
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
    tasks: HashMap<Target, JoinHandle<()>>,
    connector: Option<Arc<Connector>>,
}

impl Checks {
    /// Makes the running loops match `targets`: starts new ones, stops removed ones. Must run
    /// inside a tokio runtime.
    pub fn sync(&mut self, targets: &[Target], tx: &mpsc::Sender<Probe>) {
        let connector = self
            .connector
            .get_or_insert_with(|| Arc::new(Connector::new(None)))
            .clone();
        self.tasks.retain(|target, task| {
            let keep = targets.contains(target);
            if !keep {
                task.abort();
            }
            keep
        });
        for target in targets {
            if !self.tasks.contains_key(target) {
                let task = tokio::spawn(probe_loop(target.clone(), connector.clone(), tx.clone()));
                self.tasks.insert(target.clone(), task);
            }
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }
}

async fn probe_loop(target: Target, connector: Arc<Connector>, tx: mpsc::Sender<Probe>) {
    let h = &target.health;
    // The probe's own timeout bounds connecting and reading alike.
    let timeouts = Timeouts {
        connect: h.timeout,
        read: h.timeout,
        ..Timeouts::default()
    };
    let (backend, color) = target.as_color();
    let ca = crate::route::peer::ca(&color);
    let peer = crate::route::peer::peer(&backend, &color, ca.as_ref(), &timeouts);
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
                target.addr,
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
