//! The single writer: the only place that builds and stores a new [`Snapshot`].
//!
//! Health probes, admin actions, reload requests and a steady tick arrive over channels; each
//! is handled to the end (state machine, state file, metrics, log line) and then published as
//! one snapshot, so readers always see a consistent generation. Each route has its own rollout
//! machine, outcome windows and quality baseline; health is kept per backend and check, shared
//! by the routes that name the same backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use log::{error, info, warn};
use tokio::sync::{mpsc, Mutex};

mod apply;
mod handle;
pub mod health;
mod judging;
pub mod persist;
mod probe;
mod publish;
pub mod rollout;
mod service;
pub mod watch;

use crate::config::{NoRoute, Policy, Route};
use crate::judge::health::{Counter, Status};
use crate::judge::quality::Baseline;
use crate::judge::window::Outcomes;
use crate::metrics;
use crate::proxy::tls::CertStore;
use crate::route::matcher::Table as Routes;
use crate::route::snapshot::{Control, ReloadView, Shared, Snapshot};
pub use handle::{Action, Command, Handle, Refused, Reply};
use health::{Checks, Probe, Target};
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

/// What the supervisor keeps of one route.
struct RouteState {
    machine: Machine,
    outcomes: HashMap<String, Arc<Outcomes>>,
    /// What the stable color answered, for the quality judge.
    baseline: Option<Baseline>,
}

impl RouteState {
    fn new(machine: Machine) -> RouteState {
        RouteState {
            machine,
            outcomes: HashMap::new(),
            baseline: None,
        }
    }

    fn outcomes_of(&mut self, color: &str) -> Arc<Outcomes> {
        self.outcomes
            .entry(color.to_owned())
            .or_insert_with(|| Arc::new(Outcomes::new(Instant::now())))
            .clone()
    }
}

struct Inner {
    shared: Shared,
    path: PathBuf,
    policy: Arc<Policy>,
    matcher: Arc<Routes>,
    revision: u64,
    /// One per route of `policy`, in its order.
    routes: Vec<RouteState>,
    health: HashMap<Target, Counter>,
    last_reload: ReloadView,
    restart_required: Vec<String>,
    checks: Checks,
    probe_tx: mpsc::Sender<Probe>,
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
        let mut machines: Vec<Machine> =
            policy.routes.iter().map(|r| Machine::new(r, now)).collect();
        if let Some(file) = &policy.state_file {
            match persist::load(file, &policy, now) {
                Ok(restored) => {
                    for ((m, r), back) in machines.iter_mut().zip(&policy.routes).zip(restored) {
                        if let Some(back) = back {
                            let state = back.state().as_str();
                            info!(
                                "{}restored {state} state from {}",
                                tag(&policy, r),
                                file.display()
                            );
                            *m = back;
                        }
                    }
                }
                Err(e) => warn!("ignoring state file {}: {e}", file.display()),
            }
        }
        let (probe_tx, probe_rx) = mpsc::channel(1024);
        let (tx, rx) = mpsc::channel(64);
        let policy = Arc::new(policy);
        // Until the first publish below: no route takes anything.
        let empty = Snapshot::new(
            0,
            policy.clone(),
            Arc::new(Routes::new(&[])),
            Vec::new(),
            Control::default(),
        );
        let mut inner = Inner {
            shared: Arc::new(ArcSwap::from_pointee(empty)),
            path,
            matcher: Arc::new(Routes::new(&policy.routes)),
            policy,
            revision: 1,
            routes: machines.into_iter().map(RouteState::new).collect(),
            health: HashMap::new(),
            last_reload: ReloadView {
                ok: true,
                error: None,
                at: None,
            },
            restart_required: Vec::new(),
            checks: Checks::default(),
            probe_tx,
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

/// What a log line about `r` starts with: nothing for the one route of a policy without
/// `routes:` (its lines read as they always have), else the route's name.
fn tag(p: &Policy, r: &Route) -> String {
    match p.listed_routes {
        true => format!("route {}: ", r.name),
        false => String::new(),
    }
}

impl Inner {
    /// Applies an event to route `i`'s machine; on a change, persists, logs and publishes.
    fn transition(&mut self, i: usize, event: Event) -> Result<(), String> {
        let p = self.policy.clone();
        let state = &mut self.routes[i];
        let before = state.machine.clone();
        let now = Instant::now();
        let result = state
            .machine
            .on(&p.routes[i], event, now, SystemTime::now());
        if state.machine != before {
            self.after_change(i, &before);
        }
        result
    }

    /// Logs and counts what changed on route `i`, writes the state file, publishes.
    fn after_change(&mut self, i: usize, before: &Machine) {
        let p = self.policy.clone();
        let r = &p.routes[i];
        let tag = tag(&p, r);
        let state = &mut self.routes[i];
        for (color, rb) in &state.machine.rolled_back {
            if !before.rolled_back.contains_key(color) {
                warn!("{tag}rolled back {color}: {}", rb.reason);
                metrics::rolled_back(&r.name, color, rb.kind);
            }
        }
        for color in before.rolled_back.keys() {
            if !state.machine.rolled_back.contains_key(color) {
                info!("{tag}{color} is back in traffic");
                // Judge it afresh: the errors that rolled it back are history.
                state.outcomes_of(color).clear(Instant::now());
            }
        }
        // A step's count starting changes the phase too; only a new step or state is news.
        let (was, now) = (before.phase, state.machine.phase);
        if (was.step(), was.state()) != (now.step(), now.state()) {
            match (&r.rollout, now.step()) {
                (Some(ro), Some(step)) => {
                    let s = &ro.steps[step];
                    info!(
                        "{tag}rollout of {}: step {} of {} ({})",
                        r.colors[ro.candidate].name,
                        step + 1,
                        ro.steps.len(),
                        match s.shadow {
                            Some(pct) => format!("shadow, copies of {pct}% of requests"),
                            None => format!("{}%", s.weight),
                        }
                    )
                }
                _ => info!("{tag}rollout is now {}", now.state().as_str()),
            }
        }
        self.save();
        self.publish();
    }

    /// Writes every route's state to the state file, if there is one.
    fn save(&self) {
        if let Some(file) = &self.policy.state_file {
            let routes = self
                .policy
                .routes
                .iter()
                .zip(self.routes.iter().map(|s| &s.machine));
            if let Err(e) = persist::save(file, routes) {
                error!("cannot write state file {}: {e}", file.display());
            }
        }
    }

    fn on_probe(&mut self, probe: Probe) {
        let Some(counter) = self.health.get_mut(&probe.target) else {
            return; // a loop a reload just stopped
        };
        if counter.on_probe(probe.result, &probe.target.health) {
            let why = counter
                .last_error
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let now = match counter.status {
                Status::Healthy => "healthy",
                _ => "unhealthy",
            };
            info!(
                "backend {} of {} is now {now}{why}",
                probe.target.addr,
                self.users(&probe.target)
            );
            self.publish();
            self.judge();
        }
    }

    /// Who checks `target` the way it is checked: `blue`, or `blue (route a), stable (route b)`.
    fn users(&self, target: &Target) -> String {
        let mut out = Vec::new();
        for r in &self.policy.routes {
            for c in &r.colors {
                if c.backends.iter().any(|b| Target::of(c, b) == *target) {
                    out.push(match self.policy.listed_routes {
                        true => format!("{} (route {})", c.name, r.name),
                        false => c.name.clone(),
                    });
                }
            }
        }
        out.join(", ")
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let p = self.policy.clone();
        let progress: Vec<_> = p
            .routes
            .iter()
            .zip(&mut self.routes)
            .map(|(r, state)| {
                // Keep a little more than the window: the oldest bucket may straddle its edge.
                let keep = r.rollback.window + Duration::from_secs(1);
                for o in state.outcomes.values() {
                    o.rotate(now, keep);
                }
                match &r.rollout {
                    Some(ro) => state.outcomes_of(&r.colors[ro.candidate].name).progress(),
                    None => Default::default(),
                }
            })
            .collect();
        for (i, progress) in progress.into_iter().enumerate() {
            let _ = self.transition(i, Event::Tick(progress));
        }
        self.judge();
    }

    /// The route an action names, or the only one.
    fn route_named(&self, name: Option<&str>) -> Result<usize, Refused> {
        self.policy.route_named(name).map_err(|e| match e {
            NoRoute::Unknown(s) => Refused::NoSuchRoute(s),
            NoRoute::Unnamed(s) => Refused::WhichRoute(s),
        })
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reload(source, reply) => {
                let r = self.reload(source).map_err(Refused::Conflict);
                let _ = reply.send(r);
            }
            Command::Certs(reply) => {
                self.reload_certs();
                let _ = reply.send(Ok(()));
            }
            Command::Act(action, route, reply) => {
                let r = self.route_named(route.as_deref()).and_then(|i| {
                    let event = match action {
                        Action::Rollback => Event::Rollback,
                        Action::Promote => Event::Promote,
                        Action::Pause => Event::Pause,
                        Action::Resume => Event::Resume,
                    };
                    let tag = tag(&self.policy, &self.policy.routes[i]);
                    self.transition(i, event).map_err(|e| {
                        info!("{tag}{} refused: {e}", action.as_str());
                        Refused::Conflict(e)
                    })
                });
                let _ = reply.send(r);
            }
        }
    }

    /// What the health checks know of each backend of `color`.
    fn statuses(&self, color: &crate::config::Color) -> Vec<Status> {
        let status = |b| {
            self.health
                .get(&Target::of(color, b))
                .map_or(Status::Unknown, |h| h.status)
        };
        color.backends.iter().map(status).collect()
    }

    /// Whether every backend has had its first health check.
    fn all_checked(&self) -> bool {
        self.health.values().all(|h| h.status != Status::Unknown)
    }
}
