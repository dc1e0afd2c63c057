//! The single writer: the only place that builds and stores a new [`Snapshot`].
//!
//! Health probes, admin actions, reload requests and a steady tick arrive over channels; each
//! is handled to the end (state machine, state file, metrics, log line) and then published as
//! one snapshot, so readers always see a consistent generation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::{error, info, warn};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::services::ServiceReadyNotifier;
use tokio::sync::{mpsc, Mutex};

mod apply;
mod handle;
pub mod health;
mod judging;
pub mod persist;
mod probe;
mod publish;
pub mod rollout;
pub mod watch;

use crate::config::Policy;
use crate::control::health::{Checks, Probe, Target};
use crate::judge::health::{Counter, Status};
use crate::judge::quality::Baseline;
use crate::judge::window::Outcomes;
use crate::metrics;
use crate::proxy::tls::CertStore;
use crate::route::snapshot::{self, Control, ReloadView, Shared, Snapshot};
pub use handle::{Action, Command, Handle, Reply};
use rollout::{Event, Machine};

/// How often the supervisor judges colors and advances rollout steps.
pub const TICK: Duration = Duration::from_millis(200);

/// Owns the control-plane state; runs as a Pingora background service.
pub struct Supervisor {
    shared: Shared,
    handle: Handle,
    channels: Mutex<Option<(mpsc::Receiver<Command>, mpsc::Receiver<Probe>)>>,
    inner: Mutex<Inner>,
}

struct Inner {
    shared: Shared,
    path: PathBuf,
    policy: Arc<Policy>,
    revision: u64,
    machine: Machine,
    health: HashMap<Target, Counter>,
    outcomes: HashMap<String, Arc<Outcomes>>,
    last_reload: ReloadView,
    restart_required: Vec<String>,
    checks: Checks,
    probe_tx: mpsc::Sender<Probe>,
    /// What the stable color answered, for the quality judge.
    baseline: Option<Baseline>,
    /// The certificate of each TLS listener.
    certs: Vec<(SocketAddr, Arc<CertStore>)>,
}

impl Supervisor {
    /// Builds and publishes the first snapshot from an already validated policy. Backends
    /// start `Unknown`, so nothing is served until the first health checks pass.
    pub fn new(
        path: PathBuf,
        policy: Policy,
        certs: Vec<(SocketAddr, Arc<CertStore>)>,
    ) -> Supervisor {
        metrics::init();
        let now = Instant::now();
        let mut machine = Machine::new(&policy, now);
        if let Some(file) = &policy.state_file {
            match persist::load(file, &policy, now) {
                Ok(Some(restored)) => {
                    info!(
                        "restored {} state from {}",
                        restored.state().as_str(),
                        file.display()
                    );
                    machine = restored;
                }
                Ok(None) => {}
                Err(e) => warn!("ignoring state file {}: {e}", file.display()),
            }
        }
        let (probe_tx, probe_rx) = mpsc::channel(1024);
        let (tx, rx) = mpsc::channel(64);
        let mut inner = Inner {
            shared: Arc::new(ArcSwap::from_pointee(placeholder(&policy))),
            path,
            policy: Arc::new(policy),
            revision: 1,
            machine,
            health: HashMap::new(),
            outcomes: HashMap::new(),
            last_reload: ReloadView {
                ok: true,
                error: None,
                at: None,
            },
            restart_required: Vec::new(),
            checks: Checks::default(),
            probe_tx,
            baseline: None,
            certs,
        };
        inner.publish();
        Supervisor {
            shared: inner.shared.clone(),
            handle: Handle { tx },
            channels: Mutex::new(Some((rx, probe_rx))),
            inner: Mutex::new(inner),
        }
    }

    /// The snapshot the proxy and admin API read.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// A handle for sending commands.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

/// A snapshot to hold the `ArcSwap` until the first real publish.
fn placeholder(policy: &Policy) -> Snapshot {
    let n = policy.colors.len();
    Snapshot::build(snapshot::Inputs {
        revision: 0,
        policy: Arc::new(policy.clone()),
        base_weights: &policy.split,
        rolled_back: &vec![false; n],
        health: &policy
            .colors
            .iter()
            .map(|c| vec![Status::Unknown; c.backends.len()])
            .collect::<Vec<_>>(),
        outcomes: &(0..n)
            .map(|_| Arc::new(Outcomes::new(Instant::now())))
            .collect::<Vec<_>>(),
        mirror: None,
        control: Control {
            state: crate::route::snapshot::StateName::Steady,
            rollout: None,
            rollback: None,
            last_reload: ReloadView::default(),
            restart_required: Vec::new(),
            tls: Vec::new(),
        },
    })
}

impl Inner {
    fn outcomes_of(&mut self, color: &str) -> Arc<Outcomes> {
        self.outcomes
            .entry(color.to_owned())
            .or_insert_with(|| Arc::new(Outcomes::new(Instant::now())))
            .clone()
    }

    /// Applies an event to the machine; on a change, persists, logs and publishes.
    fn transition(&mut self, event: Event) -> Result<(), String> {
        let before = self.machine.clone();
        let now = Instant::now();
        let result = self.machine.on(&self.policy, event, now, SystemTime::now());
        if self.machine != before {
            self.after_change(&before);
        }
        result
    }

    fn after_change(&mut self, before: &Machine) {
        for (color, r) in &self.machine.rolled_back {
            if !before.rolled_back.contains_key(color) {
                warn!("rolled back {color}: {}", r.reason);
                metrics::rolled_back(color, r.kind.label());
            }
        }
        for color in before.rolled_back.keys() {
            if !self.machine.rolled_back.contains_key(color) {
                info!("{color} is back in traffic");
                // Judge it afresh: the errors that rolled it back are history.
                self.outcomes_of(color).clear(Instant::now());
            }
        }
        // A step's count starting changes the phase too; only a new step or state is news.
        if step_of(before.phase) != step_of(self.machine.phase) {
            match (&self.policy.rollout, self.machine.phase) {
                (Some(r), rollout::Phase::Progressing { step, .. }) => {
                    let s = &r.steps[step];
                    info!(
                        "rollout of {}: step {} of {} ({})",
                        self.policy.colors[r.candidate].name,
                        step + 1,
                        r.steps.len(),
                        match s.shadow {
                            Some(pct) => format!("shadow, copies of {pct}% of requests"),
                            None => format!("{}%", s.weight),
                        }
                    )
                }
                (_, phase) => info!("rollout is now {}", state_of(phase)),
            }
        }
        if let Some(file) = &self.policy.state_file {
            if let Err(e) = persist::save(file, &self.machine, &self.policy) {
                error!("cannot write state file {}: {e}", file.display());
            }
        }
        self.publish();
    }

    fn on_probe(&mut self, probe: Probe) {
        let Some(color) = self
            .policy
            .colors
            .iter()
            .find(|c| c.name == probe.target.color)
        else {
            return;
        };
        let settings = color.health.clone();
        let counter = self.health.entry(probe.target.clone()).or_default();
        if counter.on_probe(probe.result, &settings) {
            let why = counter
                .last_error
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            info!(
                "backend {} of {} is now {}{why}",
                probe.target.addr,
                probe.target.color,
                if counter.status == Status::Healthy {
                    "healthy"
                } else {
                    "unhealthy"
                }
            );
            self.publish();
            self.judge();
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Keep a little more than the window: the oldest bucket may straddle its edge.
        let keep = self.policy.rollback.window + Duration::from_secs(1);
        for o in self.outcomes.values() {
            o.rotate(now, keep);
        }
        let progress = match &self.policy.rollout {
            Some(r) => self
                .outcomes_of(&self.policy.colors[r.candidate].name.clone())
                .progress(),
            None => Default::default(),
        };
        let _ = self.transition(Event::Tick(progress));
        self.judge();
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reload(source, reply) => {
                let r = self.reload(source);
                let _ = reply.send(r);
            }
            Command::Certs(reply) => {
                self.reload_certs();
                let _ = reply.send(Ok(()));
            }
            Command::Act(action, reply) => {
                let event = match action {
                    Action::Rollback => Event::Rollback,
                    Action::Promote => Event::Promote,
                    Action::Pause => Event::Pause,
                    Action::Resume => Event::Resume,
                };
                let r = self.transition(event);
                if let Err(e) = &r {
                    info!("{action:?} refused: {e}");
                }
                let _ = reply.send(r);
            }
        }
    }
}

fn step_of(phase: rollout::Phase) -> (&'static str, Option<usize>) {
    match phase {
        rollout::Phase::Progressing { step, .. } | rollout::Phase::Paused { step, .. } => {
            (state_of(phase), Some(step))
        }
        _ => (state_of(phase), None),
    }
}

fn state_of(phase: rollout::Phase) -> &'static str {
    match phase {
        rollout::Phase::Steady => "steady",
        rollout::Phase::Progressing { .. } => "progressing",
        rollout::Phase::Paused { .. } => "paused",
        rollout::Phase::Promoted => "promoted",
    }
}

impl Inner {
    /// What the health checks know of each backend of `color`.
    fn statuses(&self, color: &crate::config::Color) -> Vec<Status> {
        color
            .backends
            .iter()
            .map(|b| {
                let target = Target {
                    color: color.name.clone(),
                    addr: b.addr,
                };
                self.health
                    .get(&target)
                    .map_or(Status::Unknown, |h| h.status)
            })
            .collect()
    }

    /// Whether every backend has had its first health check.
    fn all_checked(&self) -> bool {
        self.targets().iter().all(|(t, _)| {
            self.health
                .get(t)
                .is_some_and(|h| h.status != Status::Unknown)
        })
    }
}

#[async_trait]
impl BackgroundService for Supervisor {
    /// The proxy service depends on this one, so it starts accepting only once every backend
    /// had its first health check (or a check timeout passed): a fresh start or a graceful
    /// upgrade never answers 503 just because nothing was probed yet.
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let Some((mut commands, mut probes)) = self.channels.lock().await.take() else {
            return;
        };
        let warm_up = {
            let mut inner = self.inner.lock().await;
            let (targets, tx) = (inner.targets(), inner.probe_tx.clone());
            inner.checks.sync(&targets, &tx);
            let certs = inner.certs.iter().map(|(_, c)| c.info().files).collect();
            crate::control::watch::spawn(inner.path.clone(), certs, self.handle.clone());
            let slowest = inner.policy.colors.iter().map(|c| c.health.timeout).max();
            tokio::time::sleep(slowest.unwrap_or_default() + Duration::from_millis(100))
        };
        tokio::pin!(warm_up);
        let mut ready = Some(ready);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(cmd) = commands.recv() => self.inner.lock().await.on_command(cmd),
                Some(probe) = probes.recv() => {
                    let mut inner = self.inner.lock().await;
                    inner.on_probe(probe);
                    if inner.all_checked() {
                        if let Some(r) = ready.take() {
                            r.notify_ready();
                        }
                    }
                }
                _ = &mut warm_up, if ready.is_some() => {
                    warn!("some backends have not answered a first health check yet; serving anyway");
                    if let Some(r) = ready.take() {
                        r.notify_ready();
                    }
                }
                _ = tick.tick() => self.inner.lock().await.on_tick(),
            }
        }
    }
}
