//! The routing policy: validated types the rest of blueshift works with.
//!
//! `file` mirrors the YAML; [`parse`] turns it into these types or into every problem
//! the file has, each with the `line:column` it was found at. Nothing downstream of this module
//! sees a raw string from the file.

pub mod certs;
mod checker;
mod colors;
mod edge;
pub mod file;
mod gates;
mod load;
mod matching;
mod pointer;
mod problem;
mod route;
mod steps;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

pub use pointer::{visit_pair, NotJson, Pointer};
pub use problem::{NoRoute, Problem, Problems};

pub use load::{check_in, parse, parse_in, read_checked, read_file, Checked};
pub use matching::{covers, header_is, Host, Match};

/// A validated routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Proxy listeners.
    pub listen: Vec<Listener>,
    /// Admin API and `/metrics` listener.
    pub admin: SocketAddr,
    /// Active health checks: the defaults every color's checks start from.
    pub health: Health,
    /// Timeouts towards the backends and the clients.
    pub timeouts: Timeouts,
    /// How a request body's model field is read, for routes that match on it.
    pub routing: Routing,
    /// The routes, tried in order; at least one. A policy without `routes:` has one, named
    /// [`DEFAULT_ROUTE`], that takes every request.
    pub routes: Vec<Route>,
    /// Whether the file listed `routes:` (else its top-level keys made the one route).
    pub listed_routes: bool,
    /// Where rollback/rollout state survives restarts.
    pub state_file: Option<PathBuf>,
    /// Log one line per proxied request.
    pub access_log: bool,
}

/// The name of the one route of a policy without `routes:`.
pub const DEFAULT_ROUTE: &str = "default";

/// How `match.model` reads a request: the JSON body's field, from bodies up to a size.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Where the model's name is in a JSON request body (`/model`, as OpenAI-style clients send).
    pub model_field: Pointer,
    /// Bodies larger than this are not read (and match no `model`).
    pub max_body: usize,
}

/// One model behind the edge: what requests it takes, and its colors, split and rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Matches `[a-z0-9-]+`, unique in the policy.
    pub name: String,
    /// What a request must be for this route to take it (every condition given).
    pub matches: Match,
    /// Colors in file order; indexes into this are used everywhere else.
    pub colors: Vec<Color>,
    /// Index of the stable color.
    pub stable: usize,
    /// Split weight per color (same order as `colors`), before health and rollback.
    pub split: Vec<u32>,
    /// Session affinity, if configured.
    pub affinity: Option<Affinity>,
    /// Header that forces a color, if configured.
    pub override_header: Option<HeaderName>,
    /// Automatic rollback limits.
    pub rollback: RollbackLimits,
    /// Progressive rollout of one candidate, if configured.
    pub rollout: Option<Rollout>,
    /// Quality gates on what the models answer, if configured.
    pub quality: Option<Quality>,
    /// A standing mirror of live requests to a color, if configured.
    pub shadow: Option<Mirror>,
    /// How mirroring works, for the standing mirror and a rollout's shadow steps.
    pub mirroring: Mirroring,
}

/// A proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address.
    pub addr: SocketAddr,
    /// Terminate TLS here with this pair (ALPN h2 and http/1.1); plain HTTP/1.1 and h2c without.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its key, as files (resolved against the policy's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM, leaf first, then its chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A named pool of backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Color {
    /// Matches `[a-z0-9-]+`.
    pub name: String,
    /// At least one.
    pub backends: Vec<BackendSpec>,
    /// How blueshift speaks to the backends.
    pub protocol: Protocol,
    /// TLS to the backends (with `https` and `h2`).
    pub tls: UpstreamTls,
    /// Health checks: the global block with this color's overrides.
    pub health: Health,
}

/// How blueshift speaks to a color's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 in cleartext.
    Http1,
    /// HTTP/2 in cleartext with prior knowledge: gRPC model servers.
    H2c,
    /// HTTP/1.1 over TLS.
    Https,
    /// HTTP/2 over TLS.
    H2,
}

impl Protocol {
    /// The policy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
            Protocol::Https => "https",
            Protocol::H2 => "h2",
        }
    }

    /// Whether it runs over TLS.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::H2)
    }

    /// Whether it is HTTP/2 (what gRPC needs).
    pub fn h2(self) -> bool {
        matches!(self, Protocol::H2c | Protocol::H2)
    }
}

/// TLS settings towards a color's backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Server name to send and verify; default: the backend's host as written.
    pub sni: Option<String>,
    /// DER certificates of a private CA to trust instead of the system's roots.
    pub ca: Option<Vec<Vec<u8>>>,
}

/// One backend of a color.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Resolved address.
    pub addr: SocketAddr,
    /// The host as written (a name or an IP): the default TLS server name.
    pub host: String,
    /// Weight inside the pool, at least 1.
    pub weight: u32,
}

/// Cookie and/or header session affinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Affinity {
    /// Cookie that pins a session to a color.
    pub cookie: Option<String>,
    /// `Max-Age` of that cookie.
    pub max_age: Duration,
    /// Header whose value is hashed to a color (same on every replica).
    pub header: Option<HeaderName>,
}

/// Active health check settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Health {
    /// Path probed with `GET`.
    pub path: String,
    /// Time between probes of one backend.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Consecutive passes to become healthy.
    pub healthy_after: u32,
    /// Consecutive failures to become unhealthy.
    pub unhealthy_after: u32,
    /// Check with gRPC's health protocol, asking about this service (`""`: the server).
    pub grpc: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: 2,
            unhealthy_after: 2,
            grpc: None,
        }
    }
}

/// Limits that roll a non-stable color back.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackLimits {
    /// Share of 5xx and proxy errors over the window, in 0..=1.
    pub max_error_rate: f64,
    /// p99 latency over the window.
    pub max_p99_latency: Duration,
    /// Sliding window length.
    pub window: Duration,
    /// Below this many requests in the window, rates do not judge.
    pub min_requests: u64,
    /// What `max_p99_latency` measures.
    pub latency: LatencyMode,
}

/// What the latency limit of the rollback judge measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyMode {
    /// From the request's arrival to the end of its answer.
    Total,
    /// From the request's arrival to the first byte of the answer's body: for token streams.
    FirstByte,
}

/// Quality gates: what the models answer, judged against the stable color's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// Where the predicted label is in a JSON answer.
    pub prediction: Pointer,
    /// Where a numeric score is, if judged.
    pub score: Option<Pointer>,
    /// Limit on the total variation distance between label shares and stable's, in 0..=1.
    pub max_label_shift: f64,
    /// Limit on |mean score - stable's mean score|.
    pub max_score_shift: f64,
    /// Limit on the share of 2xx answers that are invalid, in 0..=1.
    pub max_invalid_rate: f64,
    /// Inspected answers per color in the window before quality judges.
    pub min_samples: u64,
    /// Larger answers pass uninspected.
    pub max_body: usize,
}

/// A progressive rollout of one candidate color.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Index of the candidate color (never the stable one).
    pub candidate: usize,
    /// At least one step.
    pub steps: Vec<Step>,
}

/// One rollout step: the candidate's percent of live traffic, or of mirrored copies, and how
/// long to hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The candidate's live percent, 0..=100 (0 on a shadow step).
    pub weight: u32,
    /// On a shadow step: the percent of requests mirrored to the candidate, 1..=100.
    pub shadow: Option<u32>,
    /// How long this step lasts at least.
    pub hold: Duration,
    /// Judged requests the step waits for besides its hold (compared answers on a shadow step).
    pub min_requests: u64,
}

/// Copies of live requests sent to a color whose answers are compared, never returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirror {
    /// Index of the color that gets the copies (never the stable one).
    pub color: usize,
    /// Share of requests mirrored, 1..=100.
    pub percent: u32,
}

/// Limits of mirroring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirroring {
    /// Requests with larger bodies are not mirrored.
    pub max_body: usize,
    /// Below this share of agreeing answers (with enough compared), the shadow is rolled back.
    pub min_agreement: f64,
    /// Mirrors in flight at most; past it a mirror is skipped.
    pub max_in_flight: usize,
}

/// Timeouts towards the backends and the clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// TCP connect timeout to a backend.
    pub connect: Duration,
    /// Time to wait for each read from (or write to) a backend.
    pub read: Duration,
    /// Time for a new client connection's first request head to arrive whole.
    pub client_header: Duration,
    /// Time to wait for each read of a request body (and of a later request's head).
    pub client_body: Duration,
    /// Time to wait for each write of an answer to a client that has stopped reading.
    pub client_send: Duration,
    /// How long an idle kept-alive client connection stays open.
    pub keepalive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(60),
            client_header: Duration::from_secs(10),
            client_body: Duration::from_secs(60),
            client_send: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// Index of the route with this name.
    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }

    /// The route an operator names, or the only one when none is named.
    pub fn route_named(&self, name: Option<&str>) -> Result<usize, NoRoute> {
        let names = || {
            let all: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
            all.join(", ")
        };
        match name {
            Some(n) => self.route_index(n).ok_or_else(|| {
                NoRoute::Unknown(format!("there is no route `{n}` (the routes: {})", names()))
            }),
            None if self.routes.len() == 1 => Ok(0),
            None => Err(NoRoute::Unnamed(format!(
                "this policy has {} routes ({}): name one with ?route=NAME",
                self.routes.len(),
                names()
            ))),
        }
    }
}

impl Route {
    /// Index of the color with this name.
    pub fn color_index(&self, name: &str) -> Option<usize> {
        self.colors.iter().position(|c| c.name == name)
    }

    /// Name of the stable color.
    pub fn stable_name(&self) -> &str {
        &self.colors[self.stable].name
    }

    /// Whether the route asks for the request body's model field.
    pub fn reads_model(&self) -> bool {
        self.matches.model.is_some()
    }
}
