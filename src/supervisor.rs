//! The single writer: the only place that builds and stores a new [`Snapshot`].
//!
//! Admin actions and reload requests arrive as [`Command`]s over a channel; each handled
//! event ends in one `publish`, so readers always see a consistent generation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::info;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::metrics;
use crate::outcomes::Outcomes;
use crate::policy::Policy;
use crate::state::{self, Control, ReloadView, Shared, Snapshot, StateName};

/// What an admin action answers: `Ok` or a one-sentence reason it does not apply.
pub type Reply = oneshot::Sender<Result<(), String>>;

/// Requests to the supervisor.
#[derive(Debug)]
pub enum Command {
    /// Re-read the policy file.
    Reload(Reply),
}

/// A cloneable handle to send commands.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
}

impl Handle {
    /// Sends a command and waits for its answer.
    pub async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| "blueshift is shutting down".to_string())?;
        rx.await
            .map_err(|_| "blueshift is shutting down".to_string())?
    }
}

/// Owns the control-plane state.
pub struct Supervisor {
    shared: Shared,
    rx: Mutex<Option<mpsc::Receiver<Command>>>,
    inner: Mutex<Inner>,
}

struct Inner {
    shared: Option<Shared>,
    path: PathBuf,
    policy: Arc<Policy>,
    revision: u64,
    healthy: Vec<Vec<bool>>,
    outcomes: Vec<Arc<Outcomes>>,
    last_reload: ReloadView,
}

impl Supervisor {
    /// Builds and publishes the first snapshot from an already validated policy.
    pub fn new(path: PathBuf, policy: Policy) -> (Supervisor, Handle) {
        metrics::init();
        let now = Instant::now();
        let policy = Arc::new(policy);
        let mut inner = Inner {
            healthy: policy
                .colors
                .iter()
                .map(|c| vec![true; c.backends.len()])
                .collect(),
            outcomes: policy
                .colors
                .iter()
                .map(|_| Arc::new(Outcomes::new(now)))
                .collect(),
            path,
            policy,
            revision: 1,
            last_reload: ReloadView {
                ok: true,
                error: None,
                at: None,
            },
            shared: None,
        };
        let shared: Shared = Arc::new(ArcSwap::from_pointee(inner.snapshot()));
        inner.shared = Some(shared.clone());
        inner.publish();
        let (tx, rx) = mpsc::channel(64);
        let sup = Supervisor {
            shared,
            rx: Mutex::new(Some(rx)),
            inner: Mutex::new(inner),
        };
        (sup, Handle { tx })
    }

    /// The snapshot the proxy and admin API read.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }
}

fn control(state: StateName, last_reload: ReloadView) -> Control {
    Control {
        state,
        rollout: None,
        rollback: None,
        last_reload,
        restart_required: Vec::new(),
    }
}

impl Inner {
    fn snapshot(&self) -> Snapshot {
        Snapshot::build(state::Inputs {
            revision: self.revision,
            policy: self.policy.clone(),
            base_weights: &self.policy.split,
            rolled_back: &vec![false; self.policy.colors.len()],
            healthy: &self.healthy,
            outcomes: &self.outcomes,
            control: control(StateName::Steady, self.last_reload.clone()),
        })
    }

    fn publish(&mut self) {
        let snap = self.snapshot();
        for (name, c) in snap.table.names.iter().zip(&snap.colors) {
            metrics::set_weight(name, c.percent);
            c.metrics.touch();
        }
        metrics::set_revision(snap.revision);
        metrics::set_state(snap.control.state.as_str());
        if let Some(shared) = &self.shared {
            shared.store(Arc::new(snap));
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Reload(reply) => {
                info!("reload of {} requested", self.path.display());
                let _ = reply.send(Err("reloading is not available yet".into()));
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Supervisor {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().await.take() else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.inner.lock().await.handle(cmd),
                    None => break,
                },
            }
        }
    }
}
