//! blueshift: a programmable edge load balancer for shipping new ML models without hurting
//! users. It splits traffic between model versions ("colors") by weight, pins sessions,
//! and is driven by a hot-reloaded YAML policy. Built on Cloudflare's Pingora.
//!
//! # Layout
//! - [`policy`]: the YAML policy: `file` mirrors it, the module root holds validated types.
//! - [`split`]: pure color choice (what a request brings, weights, header hashing, cookie pins,
//!   overrides).
//! - [`affinity`]: the affinity cookie, read and written.
//! - [`state`]: the [`state::Snapshot`] the request path reads, behind one `ArcSwap`.
//! - [`outcomes`]: passive per-color outcome windows (requests, errors, p99, answers).
//! - [`quality`]: the answer tap, what an answer predicted, and the quality judge.
//! - [`shadow`]: mirroring live requests to a shadow color and comparing its answers.
//! - [`proxy`]: the Pingora `ProxyHttp`, one section per phase.
//! - [`context`]: the per-request context, and what a finished request records.
//! - [`framing`]: the request framing rules (Host, Content-Length, Transfer-Encoding) and size
//!   limit an edge enforces before forwarding.
//! - [`forwarded`]: `X-Forwarded-For`/`-Proto` on requests to the models.
//! - [`headers`]: adding headers to requests and answers without Pingora's per-insert cost.
//! - [`replies`]: what blueshift itself answers (refusals, proxy errors).
//! - [`retry`]: whether a request whose attempt failed goes again, and where (a pure rule).
//! - [`grpc`]: a gRPC call's status, and which statuses count as the model failing.
//! - [`upstream`]: Pingora peers that speak each color's protocol (HTTP/1.1, h2c, TLS, h2).
//! - [`health`]: active health checks (HTTP or gRPC, over the color's protocol) and their
//!   consecutive-result counting.
//! - [`rollout`]: the pure rollout/rollback state machine and the rollback judge.
//! - [`persist`]: the state file that keeps rollbacks and pauses across restarts.
//! - [`supervisor`]: the single writer of snapshots, driving all of the above.
//! - [`reload`]: reload triggers (file watch, `SIGHUP`).
//! - [`admin`]: the admin API (`/healthz`, `/status`, `/metrics`, `/history`, actions) and the
//!   live rollout page (`src/page.html`).
//! - [`history`]: the last five minutes per color, one point a second, for the page.
//! - [`metrics`]: every Prometheus metric, defined once.
//! - [`server`]: wiring the services into a Pingora server.
//! - [`logs`]: the process's log, with clients that leave a TLS handshake at debug level.
//! - [`allocator`]: the global allocator (mimalloc, with plain calls where alignment allows).
//! - [`gate`]: a deadline on a new connection's first request head (slow clients).
//! - [`tls`]: listeners' certificate pairs (loaded, checked, swapped live) and upstream CAs.
//! - [`model_server`]: a stand-in model server for the demo, tests and benchmarks.
//! - [`cli`]: `blueshift check`, `status` and the admin actions.
//! - [`client`]: the CLI's small HTTP client for the admin API.
//! - [`demo`]: `blueshift demo`.

pub mod admin;
pub mod affinity;
pub mod allocator;
pub mod cli;
pub mod client;
pub mod context;
pub mod demo;
pub mod forwarded;
pub mod framing;
pub mod gate;
pub mod grpc;
pub mod headers;
pub mod health;
pub mod history;
pub mod logs;
pub mod metrics;
pub mod model_server;
pub mod outcomes;
pub mod persist;
pub mod policy;
pub mod proxy;
pub mod quality;
pub mod reload;
pub mod replies;
pub mod retry;
pub mod rollout;
pub mod server;
pub mod shadow;
pub mod split;
pub mod state;
pub mod supervisor;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Control-plane errors: each displays as one readable sentence (or one line per problem).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file is invalid or unreadable.
    #[error("{}", policy_lines(path, problems))]
    Policy {
        /// The file.
        path: PathBuf,
        /// Everything wrong with it.
        problems: policy::Problems,
    },
    /// A listener cannot be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Pingora refused to start.
    #[error("cannot start the server: {0}")]
    Pingora(String),
    /// Anything else, already phrased for a person.
    #[error("{0}")]
    Other(String),
}

fn policy_lines(path: &std::path::Path, problems: &policy::Problems) -> String {
    problems
        .0
        .iter()
        .map(|p| match p.at {
            Some(_) => format!("{}:{p}", path.display()),
            None => format!("{}: {p}", path.display()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
