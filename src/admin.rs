//! The admin API: one match on (method, path).

use std::time::SystemTime;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::state::{Shared, Snapshot};
use crate::supervisor::Handle;

/// The admin HTTP app.
pub struct Admin {
    state: Shared,
    #[allow(dead_code)]
    supervisor: Handle,
}

impl Admin {
    /// An admin API over the shared snapshot, sending actions to the supervisor.
    pub fn new(state: Shared, supervisor: Handle) -> Self {
        Admin { state, supervisor }
    }
}

/// Paths that exist, for telling 405 from 404.
const KNOWN: &[&str] = &["/healthz", "/metrics", "/status"];

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        match (&method, path.as_str()) {
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/metrics") => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .body(crate::metrics::render())
                .unwrap_or_default(),
            (&Method::GET | &Method::HEAD, "/status") => {
                json_response(StatusCode::OK, &status(&self.state.load()))
            }
            (_, p) if KNOWN.contains(&p) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {p}"),
            ),
            (_, p) => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {p}")),
        }
    }
}

fn text(code: StatusCode, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(code)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.as_bytes().to_vec())
        .unwrap_or_default()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_default()
}

fn error(code: StatusCode, message: &str) -> Response<Vec<u8>> {
    json_response(code, &json!({ "error": message }))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
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
                .map(|b| json!({"addr": b.addr.to_string(), "weight": b.weight, "healthy": b.healthy}))
                .collect();
            (
                n.clone(),
                json!({
                    "backends": backends,
                    "split_weight": s.policy.split[i],
                    "eligible": s.table.eligible[i],
                }),
            )
        })
        .collect();
    let ctl = &s.control;
    json!({
        "revision": s.revision,
        "state": ctl.state.as_str(),
        "stable": s.policy.stable_name(),
        "weights": weights,
        "colors": colors,
        "rollout": ctl.rollout.as_ref().map(|r| json!({
            "candidate": r.candidate,
            "step": r.step,
            "steps": r.steps,
            "next_step_at": r.next_at.map(rfc3339),
        })),
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
    })
}
