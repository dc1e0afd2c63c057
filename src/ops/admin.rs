//! The admin API: one match on (method, path).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::config::NoRoute;
use crate::control::{Action, Command, Handle, Refused, Reply};
use crate::ops::history::History;
use crate::ops::status::Status;
use crate::route::snapshot::Shared;
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
            Ok(()) => self.status(),
            Err(refused) => {
                let code = match &refused {
                    Refused::Conflict(_) => StatusCode::CONFLICT,
                    Refused::NoSuchRoute(_) => StatusCode::NOT_FOUND,
                    Refused::WhichRoute(_) => StatusCode::BAD_REQUEST,
                };
                error(code, &refused.to_string())
            }
        }
    }

    /// `/status`, as the last publish left it.
    fn status(&self) -> Response<Vec<u8>> {
        let doc = Status::of(&self.state.load(), std::time::Instant::now());
        let mut body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        body.push(b'\n');
        respond(StatusCode::OK, "application/json", body)
    }

    /// `/history?route=NAME&since=MS`.
    fn history(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let snap = self.state.load();
        let route = match snap.policy.route_named(param(query, "route")) {
            Ok(i) => &snap.policy.routes[i].name,
            Err(NoRoute::Unknown(e)) => return error(StatusCode::NOT_FOUND, &e),
            Err(NoRoute::Unnamed(e)) => return error(StatusCode::BAD_REQUEST, &e),
        };
        match since(query) {
            // Compact: five minutes of points add up.
            Ok(t) => respond(
                StatusCode::OK,
                "application/json",
                self.history.json(route, t).to_string().into_bytes(),
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
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
        let route = param(session.req_header().uri.query(), "route").map(str::to_owned);
        let act = |action| move |r| Command::Act(action, route, r);
        match (&method, path.as_str()) {
            (&Method::GET | &Method::HEAD, "/") => page(),
            (&Method::GET | &Method::HEAD, "/history") => {
                self.history(session.req_header().uri.query())
            }
            (&Method::GET | &Method::HEAD, "/healthz") => self.healthz().await,
            (&Method::GET | &Method::HEAD, "/metrics") => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(),
            ),
            (&Method::GET | &Method::HEAD, "/status") => self.status(),
            (&Method::POST, "/reload") => {
                self.act(session, |r| Command::Reload("admin API", r)).await
            }
            (&Method::POST, "/rollback") => self.act(session, act(Action::Rollback)).await,
            (&Method::POST, "/promote") => self.act(session, act(Action::Promote)).await,
            (&Method::POST, "/pause") => self.act(session, act(Action::Pause)).await,
            (&Method::POST, "/resume") => self.act(session, act(Action::Resume)).await,
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

/// The value of `key` in a query string (route names and numbers need no decoding).
fn param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// `?since=<unix ms>` of `/history` (0 without it); other parameters are ignored.
fn since(query: Option<&str>) -> Result<u64, String> {
    match param(query, "since") {
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
