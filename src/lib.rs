//! blueshift: a programmable edge load balancer for shipping new ML models without hurting
//! users. It splits traffic between model versions ("colors") by weight, pins sessions,
//! and is driven by a hot-reloaded YAML policy. Built on Cloudflare's Pingora.
//!
//! # Layout
//! The folders are layers; each imports only the ones above it in this list (a test,
//! `tests/layers.rs`, keeps it so).
//! - [`model_server`]: a stand-in model server for the demo, tests and benchmarks (imports nothing).
//! - [`config`]: the policy file: `file` mirrors the YAML, `load` and `validate` turn it into the
//!   validated types of the module root, every problem with `line:column`; `certs` reads the
//!   certificate files it names; `pointer` is its JSON Pointer.
//! - [`judge`]: pure windows and verdicts: outcome windows, answer counts, the error/latency,
//!   quality and agreement judges, health counting, gRPC statuses, reading answers.
//! - [`metrics`]: every Prometheus metric, defined once, with handles resolved in advance.
//! - [`route`]: the snapshot the request path reads, the split, affinity, and Pingora peers.
//! - [`proxy`]: the Pingora `ProxyHttp`, one section per phase, and its per-request helpers.
//! - [`control`]: the single writer: the rollout machine, health checks, reloads, the state file.
//! - [`ops`]: the operator's surfaces: admin API, `/status`, history, the CLI, the page.
//! - [`app`]: the process: wiring the services into Pingora, the demo, logs, the allocator.

pub mod app;
pub mod config;
pub mod control;
pub mod judge;
pub mod metrics;
pub mod model_server;
pub mod ops;
pub mod proxy;
pub mod route;

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
        problems: config::Problems,
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

fn policy_lines(path: &std::path::Path, problems: &config::Problems) -> String {
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
