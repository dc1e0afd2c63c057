//! The per-request context of the proxy: what a request has decided and seen so far, and what
//! it leaves behind when it ends (metrics, its color's window, what its answer said, and the
//! answer handed to a mirror waiting to compare).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Error;

use super::body::Held;
use crate::config::LatencyMode;
use crate::config::Route;
use crate::judge::answer::{Answer, Tap};
use crate::judge::window::Started;
use crate::proxy::mirror::{Draft, Seen, Served};
use crate::route::snapshot::{RouteRuntime, Snapshot};

/// Per-request context. The proxy holds it boxed: pingora-proxy keeps its `CTX` about three
/// times over in each connection's future, which idles with the connection and is moved whole
/// once per request; boxed, that is 24 bytes instead of ~580 (-550 bytes per connection and -800
/// instructions per request in `benches/instructions.sh`).
pub struct Ctx {
    pub(crate) snap: Option<Arc<Snapshot>>,
    /// The route that took the request, once chosen.
    pub(crate) route: Option<usize>,
    /// The body bytes read to find the model field, to go back in front of the body.
    pub(crate) held: Held,
    /// A `100 Continue` was sent (to read the body early).
    pub(crate) continued: bool,
    /// The color serving the request; may change to stable on connect failures.
    pub(crate) color: Option<usize>,
    /// Whether the response should (re-)issue the affinity cookie.
    pub(crate) assign: bool,
    /// Backends whose connect failed, so a retry goes elsewhere.
    pub(crate) tried: Vec<SocketAddr>,
    pub(crate) started: Instant,
    /// The color this request is counted in flight on, until the context is dropped (or, when
    /// the latency judged is to the first byte, until that byte).
    pub(crate) in_flight: Option<(usize, Started)>,
    /// When the first byte of the answer's body arrived, after `started`.
    pub(crate) first_byte: Option<Duration>,
    /// Reads the answer, with quality gates on (or to compare it with a mirror's); boxed, so
    /// that requests without one move a smaller context around.
    pub(crate) tap: Option<Box<Tap>>,
    /// The copy of this request being made for the shadow color, until its body is read.
    pub(crate) mirror: Option<Draft>,
    /// The mirror in flight, waiting for this request's answer to compare with.
    pub(crate) served: Option<Served>,
    /// A gRPC call: its `grpc-status`, once the headers or trailers said it.
    pub(crate) grpc: Option<Option<u8>>,
    /// Why the last backend given up on failed.
    pub(crate) last_failure: Option<&'static str>,
    /// A connect failed for want of blueshift's own resources: the outcome is not the model's.
    pub(crate) local_failure: bool,
    /// What the request head asked of blueshift (a `100 Continue` it has sent).
    pub(crate) head: crate::proxy::framing::Head,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Dropped at the end of every request, whichever way it ended.
        self.end_in_flight();
    }
}

impl Ctx {
    /// This request no longer waits on its color.
    pub(crate) fn end_in_flight(&mut self) {
        if let (Some(snap), Some(r), Some((color, started))) =
            (&self.snap, self.route, self.in_flight.take())
        {
            snap.routes[r].colors[color].outcomes.finish(started);
        }
    }

    /// Excludes `peer` from this request's retries and counts the failure (`why`) against its
    /// color.
    pub(crate) fn give_up_on(&mut self, peer: &HttpPeer, why: &'static str) {
        self.last_failure = Some(why);
        if let Some(addr) = peer._address.as_inet() {
            self.tried.push(*addr);
        }
        if self.local_failure {
            return;
        }
        if let (Some((_, r)), Some(color)) = (self.route(), self.color) {
            r.colors[color].outcomes.record_failed_attempt();
        }
    }

    /// The route that took the request, as configured and as it runs.
    pub(crate) fn route(&self) -> Option<(&Route, &RouteRuntime)> {
        Some(self.snap.as_ref()?.route(self.route?))
    }
}

impl Ctx {
    /// A context for a request that arrives now.
    pub fn new() -> Ctx {
        Ctx {
            snap: None,
            route: None,
            held: Held::default(),
            continued: false,
            color: None,
            assign: false,
            tried: Vec::new(),
            started: Instant::now(),
            in_flight: None,
            first_byte: None,
            tap: None,
            mirror: None,
            served: None,
            grpc: None,
            last_failure: None,
            local_failure: false,
            head: crate::proxy::framing::Head::default(),
        }
    }

    /// Records the finished request: `status` is what the client got, if anything, and `error`
    /// how it ended early. A client that went away (hung up, stopped reading, sent a broken
    /// body) is not the model's failure: the request counts for the rollback judge with the
    /// time it had waited, as an error only if the model's answer was already a 5xx.
    pub(crate) fn record(&mut self, status: Option<u16>, error: Option<&Error>, elapsed: Duration) {
        let failed = error.is_some();
        let client_left = error.is_some_and(crate::proxy::retry::client_gone);
        let Some(snap) = self.snap.as_ref() else {
            return;
        };
        let Some(i) = self.route else {
            snap.unmatched.observe(status, elapsed.as_secs_f64());
            return;
        };
        let (route, rt) = snap.route(i);
        let Some(c) = self.color else {
            rt.uncolored.observe(status, elapsed.as_secs_f64());
            return;
        };
        let color = &rt.colors[c];
        color.metrics.observe(status, elapsed.as_secs_f64());
        let first_byte = self.first_byte.unwrap_or(elapsed);
        if status.is_some() {
            color.metrics.observe_first_byte(first_byte.as_secs_f64());
        }
        // Read only complete answers, after the client has the whole of it.
        let answer = match (self.tap.take(), &route.quality) {
            (Some(tap), Some(q)) if !failed => Some(tap.finish(q)),
            _ => None,
        };
        let counts = answer
            .as_ref()
            .filter(|_| color.percent > 0)
            .map(|a| color.metrics.count_answer(a));
        if let Some(served) = self.served.take() {
            let _ = served.send(Seen {
                status: status.filter(|_| !failed),
                answer: answer.unwrap_or(Answer::Skipped),
            });
        }
        let mut failed = match client_left {
            true => status.is_some_and(|s| s >= 500),
            false => failed || status.is_none_or(|s| s >= 500),
        };
        if let Some(seen) = self.grpc {
            // A gRPC call fails by its status, whatever the HTTP status said.
            let code = crate::judge::grpc::final_status(seen, client_left);
            color.metrics.count_grpc(code);
            failed |= crate::judge::grpc::is_error(code);
        }
        let latency = match route.rollback.latency {
            LatencyMode::Total => elapsed,
            LatencyMode::FirstByte => first_byte,
        };
        if !(failed && self.local_failure) {
            color.outcomes.record(failed, latency, counts.as_ref());
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}
