//! The admin API: one match on (method, path).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::control::{Action, Command, Handle, Reply};
use crate::ops::history::History;
use crate::route::snapshot::{Shared, Snapshot};
use subtle::ConstantTimeEq;

/// Environment variable holding the bearer token that admin POSTs must carry.
pub const TOKEN_ENV: &str = "BLUESHIFT_ADMIN_TOKEN";

/// The admin HTTP app.
pub struct Admin {
    state: Shared,
    supervisor: Handle,
    history: std::sync::Arc<History>,
    token: Option<String>,
    /// The proxy listener Pingora binds last, and whether it has accepted a connection yet.
    bound_last: Option<SocketAddr>,
    serving: AtomicBool,
}

impl Admin {
    /// An admin API over the shared snapshot, sending actions to the supervisor; `/healthz`
    /// probes `bound_last`, the proxy listener Pingora binds last. The token comes from
    /// [`TOKEN_ENV`], read once here.
    pub fn new(
        state: Shared,
        supervisor: Handle,
        history: std::sync::Arc<History>,
        bound_last: Option<SocketAddr>,
    ) -> Self {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Admin {
            state,
            supervisor,
            history,
            token,
            bound_last,
            serving: AtomicBool::new(false),
        }
    }

    /// `/healthz`: 503 until the proxy listeners accept connections (the proxy starts
    /// listening only after the first health checks, a moment after this API; Pingora binds
    /// them one after another, so the last one bound stands for all), 200 from then on, so a
    /// readiness probe sends no traffic to a port that would refuse it.
    async fn healthz(&self) -> Response<Vec<u8>> {
        if !self.serving.load(Ordering::Relaxed) {
            if let Some(addr) = self.bound_last {
                if !accepts(addr).await {
                    let why = format!("starting: the proxy does not accept on {addr} yet\n");
                    return text(StatusCode::SERVICE_UNAVAILABLE, &why);
                }
            }
            self.serving.store(true, Ordering::Relaxed);
        }
        text(StatusCode::OK, "ok\n")
    }

    /// Who may POST: the bearer token if one is set, else loopback clients only.
    fn authorize(&self, session: &ServerSession) -> Result<(), Box<Response<Vec<u8>>>> {
        match &self.token {
            Some(token) => {
                let given = session
                    .req_header()
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                // Constant time, so the token cannot be guessed byte by byte from timings.
                if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    Ok(())
                } else {
                    Err(Box::new(error(
                        StatusCode::UNAUTHORIZED,
                        "this action needs Authorization: Bearer <BLUESHIFT_ADMIN_TOKEN>",
                    )))
                }
            }
            None => {
                let loopback = session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .is_some_and(|a| a.ip().is_loopback());
                if loopback {
                    Ok(())
                } else {
                    Err(Box::new(error(StatusCode::FORBIDDEN, "admin actions are only taken from loopback unless BLUESHIFT_ADMIN_TOKEN is set")))
                }
            }
        }
    }

    async fn act(
        &self,
        session: &ServerSession,
        make: impl FnOnce(Reply) -> Command,
    ) -> Response<Vec<u8>> {
        if let Err(denied) = self.authorize(session) {
            return *denied;
        }
        match self.supervisor.call(make).await {
            Ok(()) => json_response(StatusCode::OK, &status(&self.state.load())),
            Err(reason) => error(StatusCode::CONFLICT, &reason),
        }
    }
}

/// Paths that exist, for telling 405 from 404.
const KNOWN: &[&str] = &[
    "/",
    "/history",
    "/healthz",
    "/metrics",
    "/status",
    "/reload",
    "/rollback",
    "/promote",
    "/pause",
    "/resume",
];

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (&method, path.as_str()) {
            (&Method::GET | &Method::HEAD, "/") => page(),
            (&Method::GET | &Method::HEAD, "/history") => {
                match since(session.req_header().uri.query()) {
                    // Compact: five minutes of points add up.
                    Ok(t) => respond(
                        StatusCode::OK,
                        "application/json",
                        self.history.json(t).to_string().into_bytes(),
                    ),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                }
            }
            (&Method::GET | &Method::HEAD, "/healthz") => self.healthz().await,
            (&Method::GET | &Method::HEAD, "/metrics") => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(),
            ),
            (&Method::GET | &Method::HEAD, "/status") => {
                json_response(StatusCode::OK, &status(&self.state.load()))
            }
            (&Method::POST, "/reload") => {
                self.act(session, |r| Command::Reload("admin API", r)).await
            }
            (&Method::POST, "/rollback") => {
                self.act(session, |r| Command::Act(Action::Rollback, r))
                    .await
            }
            (&Method::POST, "/promote") => {
                self.act(session, |r| Command::Act(Action::Promote, r))
                    .await
            }
            (&Method::POST, "/pause") => {
                self.act(session, |r| Command::Act(Action::Pause, r)).await
            }
            (&Method::POST, "/resume") => {
                self.act(session, |r| Command::Act(Action::Resume, r)).await
            }
            (_, p) if KNOWN.contains(&p) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {p}"),
            ),
            (_, p) => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {p}")),
        }
    }
}

/// The live rollout page: one self-contained document (no CDN, no build step).
const PAGE: &str = include_str!("page.html");

fn page() -> Response<Vec<u8>> {
    let mut r = respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        PAGE.as_bytes().to_vec(),
    );
    let h = r.headers_mut();
    // Everything it needs is inline; it talks only to this listener.
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    r
}

/// `?since=<unix ms>` of `/history` (0 without it); other parameters are ignored.
fn since(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="));
    match value {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("since must be a Unix time in milliseconds, not {v:?}")),
    }
}

fn respond(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// Whether a TCP connection to the listener at `addr` (its loopback twin if it listens on
/// every address) is accepted within a second.
async fn accepts(addr: SocketAddr) -> bool {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let connect = tokio::net::TcpStream::connect((ip, addr.port()));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

fn text(code: StatusCode, body: &str) -> Response<Vec<u8>> {
    respond(code, "text/plain; charset=utf-8", body.as_bytes().to_vec())
}

fn json_response(code: StatusCode, v: &Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    respond(code, "application/json", body)
}

fn error(code: StatusCode, message: &str) -> Response<Vec<u8>> {
    json_response(code, &json!({ "error": message }))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `colors.<c>.quality`: what the color answered over the rollback window.
fn quality(s: &Snapshot, i: usize) -> Value {
    let c = &s.colors[i];
    let a = c
        .outcomes
        .answers(std::time::Instant::now(), s.policy.rollback.window)
        .summary(&c.metrics.label_names());
    let labels: serde_json::Map<String, Value> = a
        .shares()
        .into_iter()
        .map(|(l, share)| (l.to_owned(), json!(round(share))))
        .collect();
    json!({
        "samples": a.samples(),
        "valid": a.valid,
        "invalid": a.invalid,
        "skipped": a.skipped,
        "labels": labels,
        "mean_score": a.mean_score.map(round),
        "invalid_rate": round(a.invalid_rate()),
    })
}

/// `shadow`: where live requests are mirrored, and how the copies compare, over the window.
fn shadow(s: &Snapshot) -> Value {
    let Some(m) = s.mirror else {
        return Value::Null;
    };
    let c = &s.colors[m.color];
    let w = c
        .outcomes
        .shadow(std::time::Instant::now(), s.policy.rollback.window);
    json!({
        "color": s.table.names[m.color],
        "percent": m.percent,
        "mirrored": w.mirrored,
        "compared": w.compared(),
        "matched": w.matched,
        "mismatched": w.mismatched,
        "errors": w.errors,
        "skipped": w.skipped,
        "agreement": w.agreement().map(round),
        "min_agreement": s.policy.mirroring.min_agreement,
        "by": if s.policy.quality.is_some() { "label" } else { "status class" },
        "window": humantime::format_duration(s.policy.rollback.window).to_string(),
    })
}

/// Four decimals are plenty for a share, and keep the JSON readable.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The `/status` document.
pub fn status(s: &Snapshot) -> Value {
    let names = &s.table.names;
    let weights: serde_json::Map<String, Value> = names
        .iter()
        .zip(&s.colors)
        .map(|(n, c)| (n.clone(), json!(c.percent)))
        .collect();
    let colors: serde_json::Map<String, Value> = names
        .iter()
        .zip(&s.colors)
        .enumerate()
        .map(|(i, (n, c))| {
            let backends: Vec<Value> = c
                .backends
                .iter()
                .map(|b| {
                    json!({
                        "addr": b.addr.to_string(),
                        "weight": b.weight,
                        "healthy": b.healthy,
                        "health": b.health.as_str(),
                    })
                })
                .collect();
            let mut color = json!({
                "protocol": s.policy.colors[i].protocol.as_str(),
                "backends": backends,
                "split_weight": s.policy.split[i],
                "eligible": s.table.eligible[i],
            });
            if s.policy.quality.is_some() {
                color["quality"] = quality(s, i);
            }
            (n.clone(), color)
        })
        .collect();
    let ctl = &s.control;
    let counted = ctl.rollout.as_ref().and_then(|r| {
        let c = r.counting?;
        Some(c.at(s.colors[r.candidate_index].outcomes.progress()))
    });
    json!({
        "revision": s.revision,
        "pid": std::process::id(),
        "state": ctl.state.as_str(),
        "stable": s.policy.stable_name(),
        "weights": weights,
        "colors": colors,
        "rollout": ctl.rollout.as_ref().map(|r| json!({
            "candidate": r.candidate,
            "step": r.step,
            "steps": r.steps,
            "shadow": r.shadow,
            "step_weights": s.policy.rollout.as_ref().map(|ro| ro.steps.iter().map(|st| st.weight).collect::<Vec<_>>()),
            "step_shadow": s.policy.rollout.as_ref().map(|ro| ro.steps.iter().map(|st| st.shadow).collect::<Vec<_>>()),
            "counted": counted.map(|(n, _)| n),
            "min_requests": counted.map(|(_, m)| m),
            "next_step_at": r.next_at.map(rfc3339),
        })),
        "shadow": shadow(s),
        "rollback": ctl.rollback.as_ref().map(|r| json!({
            "color": r.color,
            "reason": r.reason,
            "at": rfc3339(r.at),
        })),
        "last_reload": {
            "ok": ctl.last_reload.ok,
            "error": ctl.last_reload.error,
            "at": ctl.last_reload.at.map(rfc3339),
        },
        "restart_required": ctl.restart_required,
        "tls": ctl.tls.iter().map(|(addr, info)| json!({
            "listener": addr.to_string(),
            "cert": info.files.cert.display().to_string(),
            "subject": info.subject,
            "expires": rfc3339(info.not_after),
            "error": info.error,
        })).collect::<Vec<_>>(),
    })
}
