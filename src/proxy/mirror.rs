//! Shadow traffic: copies of live requests sent to a color whose answers are compared with the
//! served ones and never returned to anyone.
//!
//! A request chosen for mirroring carries a [`Draft`]: the request head as the serving model got
//! it, and its body (at most `max_body`; only mirrored requests are buffered). Once the body is
//! read, [`Mirrors::send`] starts the copy on its own task, through Pingora's connector and
//! connection pool, within a bound on mirrors in flight (past it the copy is skipped and
//! counted). The client's request goes on untouched and never waits: the mirror reads the
//! shadow's answer with the quality gates' tap, then waits for the client's answer to be over
//! (the client's `logging` hands over what it was) and compares the two ([`crate::judge::compare`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header;
use pingora_core::connectors::http::Connector;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use tokio::sync::oneshot;

pub use crate::judge::compare::{Outcome, Seen};

use crate::config::LatencyMode;
use crate::judge::answer::{Answer, Tap};
use crate::judge::counts::ShadowCounts;
use crate::route::snapshot::{ColorRuntime, RouteRuntime, Snapshot};

/// The header that marks a mirrored request.
pub const SHADOW_HEADER: &str = "x-blueshift-shadow";

/// Where the client's answer goes once it is over.
pub type Served = oneshot::Sender<Seen>;

/// Headers of one connection, not of the request: a copy gets its own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A request being copied: its head as the serving model got it, and its body so far.
#[derive(Debug, Default)]
pub struct Draft {
    header: Option<Box<RequestHeader>>,
    body: Vec<u8>,
    too_large: bool,
}

impl Draft {
    /// A draft for this request if it is to be mirrored: a mirror runs, the request is served by
    /// another color, it falls in the mirrored share, and it is not a protocol upgrade.
    pub fn choose(route: &RouteRuntime, color: usize, req: &RequestHeader) -> Option<Draft> {
        let m = route.mirror?;
        let upgrade = req.headers.contains_key(header::UPGRADE);
        (m.color != color && !upgrade && fastrand::u32(0..100) < m.percent).then(Draft::default)
    }

    /// Takes the request head as it goes upstream (again, on a retry: its body starts over).
    pub fn start(&mut self, req: &RequestHeader, max_body: usize) {
        let announced = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
        self.too_large = announced.is_some_and(|n| n > max_body);
        self.body.clear();
        let mut copy = Box::new(req.clone());
        for h in HOP_BY_HOP {
            copy.remove_header(h);
        }
        // Always valid: the name and value are static ASCII.
        let _ = copy.insert_header(SHADOW_HEADER, "1");
        self.header = Some(copy);
    }

    /// Takes the next piece of the request body.
    pub fn feed(&mut self, chunk: &[u8], max_body: usize) {
        if self.too_large || self.body.len() + chunk.len() > max_body {
            self.too_large = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
    }
}

/// The mirrors of one process: Pingora's connector (with its pool) and the count in flight.
pub struct Mirrors {
    connector: Connector,
    in_flight: AtomicUsize,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            connector: Connector::new(None),
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// A place among the mirrors in flight, given back when the mirror ends.
struct Slot(Arc<Mirrors>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One copy on its way.
struct Job {
    snap: Arc<Snapshot>,
    route: usize,
    color: usize,
    peer: HttpPeer,
    header: Box<RequestHeader>,
    body: Bytes,
}

impl Mirrors {
    /// Mirrors in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Sends the copy the draft holds, unless it cannot go (the bound is reached, the body was
    /// larger than `max_body`, no backend is healthy): then it is counted as skipped. Returns
    /// where the client's answer should go. Mirrors of every route count towards the route's
    /// `max_in_flight`: the bound is on the process's memory.
    pub fn send(
        self: &Arc<Self>,
        snap: &Arc<Snapshot>,
        route: usize,
        draft: Draft,
    ) -> Option<Served> {
        let (config, rt) = snap.route(route);
        let m = rt.mirror?;
        let c = &rt.colors[m.color];
        let limit = config.mirroring.max_in_flight;
        let peer = c.pick(&[], fastrand::u32(..));
        let header = draft.header.filter(|_| !draft.too_large);
        let (Some(peer), Some(mut header)) = (peer, header) else {
            return skip(c);
        };
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= limit {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return skip(c);
        }
        let slot = Slot(self.clone());
        let had_length = header.headers.contains_key(header::CONTENT_LENGTH);
        if had_length || !draft.body.is_empty() {
            let _ = header.insert_header(header::CONTENT_LENGTH, draft.body.len().to_string());
        }
        c.outcomes.record_shadow(&ShadowCounts {
            mirrored: 1,
            ..Default::default()
        });
        let (tx, rx) = oneshot::channel();
        let job = Job {
            snap: snap.clone(),
            route,
            color: m.color,
            peer: peer.peer.clone(),
            header,
            body: Bytes::from(draft.body),
        };
        tokio::spawn(run(slot, job, rx));
        Some(tx)
    }
}

/// Counts a copy that was not sent.
fn skip(c: &ColorRuntime) -> Option<Served> {
    c.outcomes.record_shadow(&ShadowCounts {
        skipped: 1,
        ..Default::default()
    });
    c.metrics.count_shadow(Outcome::Skipped);
    None
}

/// The mirror's life: send, read the answer, wait for the client's, compare, count.
async fn run(slot: Slot, job: Job, served: oneshot::Receiver<Seen>) {
    let (p, rt) = job.snap.route(job.route);
    let c = &rt.colors[job.color];
    let started = Instant::now();
    let mut waiting = Some(c.outcomes.start(started));
    let mut first_byte = None;
    let shadow = {
        let mut on_first_byte = || {
            first_byte = Some(started.elapsed());
            if p.rollback.latency == LatencyMode::FirstByte {
                // A stream that has started is no longer waiting, however long it runs.
                if let Some(w) = waiting.take() {
                    c.outcomes.finish(w);
                }
            }
        };
        exchange(&slot.0.connector, &job, &mut on_first_byte).await
    };
    if let Some(w) = waiting {
        c.outcomes.finish(w);
    }
    drop(slot);
    let elapsed = started.elapsed();
    let latency = match p.rollback.latency {
        LatencyMode::Total => elapsed,
        LatencyMode::FirstByte => first_byte.unwrap_or(elapsed),
    };
    let failed = shadow
        .as_ref()
        .is_none_or(|s| s.status.is_none_or(|code| code >= 500));
    let counts = match &shadow {
        Some(Seen { answer, status }) if p.quality.is_some() && is_2xx(*status) => {
            Some(c.metrics.count_answer(answer))
        }
        _ => None,
    };
    c.outcomes.record_mirrored(failed, latency, counts.as_ref());
    // The client's answer may still be streaming: its logging hands it over when it is done.
    let served = served.await.ok();
    let outcome =
        crate::judge::compare::compare(served.as_ref(), shadow.as_ref(), p.quality.is_some());
    let mut counts = ShadowCounts::default();
    match outcome {
        Outcome::Match => counts.matched = 1,
        Outcome::Mismatch => counts.mismatched = 1,
        Outcome::Error => counts.errors = 1,
        Outcome::Skipped => counts.skipped = 1,
    }
    c.outcomes.record_shadow(&counts);
    c.metrics.count_shadow(outcome);
}

fn is_2xx(status: Option<u16>) -> bool {
    status.is_some_and(|s| (200..300).contains(&s))
}

/// Sends the copy and reads the answer; `None` if the shadow gave none. A reused pooled
/// connection that turns out dead before answering is tried once more on another.
async fn exchange(
    connector: &Connector,
    job: &Job,
    on_first_byte: &mut impl FnMut(),
) -> Option<Seen> {
    for _ in 0..2 {
        match attempt(connector, job, on_first_byte).await {
            Attempt::Answered(seen) => return Some(seen),
            Attempt::Failed { stale: true } => continue,
            Attempt::Failed { stale: false } => return None,
        }
    }
    None
}

enum Attempt {
    Answered(Seen),
    /// `stale`: a reused connection failed before any answer, so another may succeed.
    Failed {
        stale: bool,
    },
}

async fn attempt(connector: &Connector, job: &Job, on_first_byte: &mut impl FnMut()) -> Attempt {
    let Ok((mut s, reused)) = connector.get_http_session(&job.peer).await else {
        return Attempt::Failed { stale: false };
    };
    let o = &job.peer.options;
    s.set_read_timeout(o.read_timeout);
    s.set_write_timeout(o.write_timeout);
    let sent = async {
        s.write_request_header(job.header.clone()).await?;
        if !job.body.is_empty() {
            s.write_request_body(job.body.clone(), true).await?;
        }
        s.finish_request_body().await?;
        loop {
            s.read_response_header().await?;
            match s.response_header().map(|h| h.status) {
                Some(st) if st.is_informational() && st.as_u16() != 101 => continue,
                _ => return Ok::<(), Box<pingora_core::Error>>(()),
            }
        }
    };
    if sent.await.is_err() {
        return Attempt::Failed { stale: reused };
    }
    let Some(head) = s.response_header().cloned() else {
        return Attempt::Failed { stale: false };
    };
    let q = job.snap.policy.routes[job.route].quality.as_ref();
    let is_head = job.header.method == http::Method::HEAD;
    let mut tap = q.and_then(|q| Tap::for_response(&head, is_head, q));
    let mut first = true;
    while !s.response_done() {
        match s.read_response_body().await {
            Ok(Some(chunk)) => {
                if first && !chunk.is_empty() {
                    first = false;
                    on_first_byte();
                }
                if let (Some(t), Some(q)) = (tap.as_mut(), q) {
                    t.feed(&chunk, q);
                }
            }
            Ok(None) => break,
            Err(_) => return Attempt::Failed { stale: false },
        }
    }
    connector
        .release_http_session(s, &job.peer, o.idle_timeout)
        .await;
    let answer = match (tap, q) {
        (Some(t), Some(q)) => t.finish(q),
        _ => Answer::Skipped,
    };
    Attempt::Answered(Seen {
        status: Some(head.status.as_u16()),
        answer,
    })
}
