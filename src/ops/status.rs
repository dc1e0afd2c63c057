//! The `/status` document as types: built from a snapshot by the admin API, read back by the
//! CLI, the page's tests and anyone's scripts. Every route is under `routes`; a policy with one
//! route also has that route's fields at the top level, where they always were.

use std::time::{Instant, SystemTime};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::config::{Host, Match, Route};
use crate::judge::Kind;
use crate::judge::StateName;
use crate::route::snapshot::{RouteRuntime, Snapshot};

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Applied policy changes since start.
    pub revision: u64,
    /// The process.
    pub pid: u32,
    /// With one route: its fields, at the top level as before routes.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub single: Option<RouteStatus>,
    /// Every route by name, in policy order.
    pub routes: IndexMap<String, RouteStatus>,
    /// The last reload attempt.
    pub last_reload: ReloadStatus,
    /// Changed settings that need a restart.
    pub restart_required: Vec<String>,
    /// Each TLS listener's certificate.
    pub tls: Vec<TlsStatus>,
}

/// One route: its rollout state, weights, colors and rollbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// What the route takes (absent for a catch-all).
    #[serde(
        rename = "match",
        default,
        skip_serializing_if = "MatchStatus::is_empty"
    )]
    pub matches: MatchStatus,
    /// The rollout state.
    pub state: StateName,
    /// The stable color.
    pub stable: String,
    /// Effective percent per color.
    pub weights: IndexMap<String, u32>,
    /// Each color's pool and what it answers.
    pub colors: IndexMap<String, ColorStatus>,
    /// Where the rollout stands, if there is one.
    pub rollout: Option<RolloutStatus>,
    /// Where live requests are mirrored, and how the copies compare.
    pub shadow: Option<ShadowStatus>,
    /// The last rollback, while it holds.
    pub rollback: Option<RollbackStatus>,
}

/// A route's `match`, as configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchStatus {
    /// `ranker.internal`, or `*.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path's first segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Header values that must be present.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// The body's model field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl MatchStatus {
    /// A route's match as configured.
    pub fn of(m: &Match) -> MatchStatus {
        MatchStatus {
            host: m.host.as_ref().map(|h| match h {
                Host::Exact(h) => h.clone(),
                Host::Suffix(s) => format!("*{s}"),
            }),
            path_prefix: m.path_prefix.clone(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            model: m.model.clone(),
        }
    }

    /// A catch-all.
    pub fn is_empty(&self) -> bool {
        *self == MatchStatus::default()
    }

    /// What the route takes, in words: `path /v1/chat/completions, model llama-3-8b`.
    pub fn describe(&self) -> String {
        let mut what = Vec::new();
        if let Some(h) = &self.host {
            what.push(format!("host {h}"));
        }
        if let Some(p) = &self.path_prefix {
            what.push(format!("path {p}"));
        }
        for (k, v) in &self.headers {
            what.push(format!("{k}: {v}"));
        }
        if let Some(model) = &self.model {
            what.push(format!("model {model}"));
        }
        match what.is_empty() {
            true => "every request".into(),
            false => what.join(", "),
        }
    }
}

/// One color.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorStatus {
    /// `http1`, `h2c`, `https` or `h2`.
    pub protocol: String,
    /// Its backends and their health.
    pub backends: Vec<BackendStatus>,
    /// Its weight in `split`, before health, rollback and rollout.
    pub split_weight: u32,
    /// Whether it may take traffic.
    pub eligible: bool,
    /// What it answered over the window, with quality gates on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityStatus>,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// `host:port`.
    pub addr: String,
    /// Its weight in the pool.
    pub weight: u32,
    /// Passing its health checks.
    pub healthy: bool,
    /// `unknown`, `healthy` or `unhealthy`.
    pub health: String,
}

/// What a color answered over the rollback window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityStatus {
    /// Inspected answers (valid and invalid).
    pub samples: u64,
    /// With a prediction.
    pub valid: u64,
    /// Not JSON, or without the prediction.
    pub invalid: u64,
    /// Not inspected.
    pub skipped: u64,
    /// Each label's share.
    pub labels: IndexMap<String, f64>,
    /// The mean score.
    pub mean_score: Option<f64>,
    /// Invalid over samples.
    pub invalid_rate: f64,
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The candidate color.
    pub candidate: String,
    /// 1-based step (`steps` once promoted).
    pub step: usize,
    /// Number of steps.
    pub steps: usize,
    /// On a shadow step.
    pub shadow: bool,
    /// Each step's live weight.
    pub step_weights: Vec<u32>,
    /// Each step's mirrored percent, on shadow steps.
    pub step_shadow: Vec<Option<u32>>,
    /// What the step has counted, if it waits for requests.
    pub counted: Option<u64>,
    /// What it waits for.
    pub min_requests: Option<u64>,
    /// When the next step begins, if the clock runs.
    pub next_step_at: Option<String>,
}

/// Where live requests are mirrored, and how the copies compared over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowStatus {
    /// The shadow color.
    pub color: String,
    /// Share of requests mirrored.
    pub percent: u32,
    /// Copies sent.
    pub mirrored: u64,
    /// Copies compared.
    pub compared: u64,
    /// Compared and equal.
    pub matched: u64,
    /// Compared and different.
    pub mismatched: u64,
    /// Copies that failed.
    pub errors: u64,
    /// Copies not sent or not compared.
    pub skipped: u64,
    /// Matched over compared.
    pub agreement: Option<f64>,
    /// The limit below which the shadow is rolled back.
    pub min_agreement: f64,
    /// `label` or `status class`.
    pub by: String,
    /// The window, as a duration.
    pub window: String,
}

/// A rollback in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackStatus {
    /// The rolled-back color.
    pub color: String,
    /// `unhealthy`, `error_rate`, `latency`, `quality` or `manual`: for scripts.
    pub kind: Kind,
    /// The sentence, for people.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The last reload attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Applied (or nothing to apply).
    pub ok: bool,
    /// Every problem, when it was refused.
    pub error: Option<String>,
    /// When (RFC 3339), if there was one.
    pub at: Option<String>,
}

/// A TLS listener's certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// Its address.
    pub listener: String,
    /// The certificate file.
    pub cert: String,
    /// The leaf's subject.
    pub subject: String,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// The last load's error, while the old pair keeps serving.
    pub error: Option<String>,
}

/// RFC 3339 to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Four decimals are plenty for a share, and keep the JSON readable.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl Status {
    /// The document for a snapshot, with the windows read `now`.
    pub fn of(s: &Snapshot, now: Instant) -> Status {
        let routes: IndexMap<String, RouteStatus> = s
            .policy
            .routes
            .iter()
            .zip(&s.routes)
            .map(|(r, rt)| (r.name.clone(), RouteStatus::of(r, rt, now)))
            .collect();
        let c = &s.control;
        Status {
            revision: s.revision,
            pid: std::process::id(),
            single: (routes.len() == 1).then(|| routes[0].clone()),
            routes,
            last_reload: ReloadStatus {
                ok: c.last_reload.ok,
                error: c.last_reload.error.clone(),
                at: c.last_reload.at.map(rfc3339),
            },
            restart_required: c.restart_required.clone(),
            tls: c
                .tls
                .iter()
                .map(|(addr, info)| TlsStatus {
                    listener: addr.to_string(),
                    cert: info.files.cert.display().to_string(),
                    subject: info.subject.clone(),
                    expires: rfc3339(info.not_after),
                    error: info.error.clone(),
                })
                .collect(),
        }
    }

    /// The route `name`, or the only one.
    pub fn route(&self, name: Option<&str>) -> Option<(&str, &RouteStatus)> {
        match name {
            Some(n) => self.routes.get_key_value(n).map(|(k, v)| (k.as_str(), v)),
            None if self.routes.len() == 1 => self.routes.first().map(|(k, v)| (k.as_str(), v)),
            None => None,
        }
    }
}

impl RouteStatus {
    /// One route's part of the document.
    pub fn of(r: &Route, rt: &RouteRuntime, now: Instant) -> RouteStatus {
        let window = r.rollback.window;
        let colors = r
            .colors
            .iter()
            .zip(&rt.colors)
            .enumerate()
            .map(|(i, (c, cr))| {
                let quality = r.quality.as_ref().map(|_| {
                    let a = cr
                        .outcomes
                        .answers(now, window)
                        .summary(&cr.metrics.label_names());
                    QualityStatus {
                        samples: a.samples(),
                        valid: a.valid,
                        invalid: a.invalid,
                        skipped: a.skipped,
                        labels: a
                            .shares()
                            .into_iter()
                            .map(|(l, share)| (l.to_owned(), round(share)))
                            .collect(),
                        mean_score: a.mean_score.map(round),
                        invalid_rate: round(a.invalid_rate()),
                    }
                });
                let status = ColorStatus {
                    protocol: c.protocol.as_str().to_owned(),
                    backends: cr
                        .backends
                        .iter()
                        .map(|b| BackendStatus {
                            addr: b.addr.to_string(),
                            weight: b.weight,
                            healthy: b.healthy,
                            health: b.health.as_str().to_owned(),
                        })
                        .collect(),
                    split_weight: r.split[i],
                    eligible: rt.table.eligible[i],
                    quality,
                };
                (c.name.clone(), status)
            })
            .collect();
        let v = &rt.view;
        let rollout = v.rollout.as_ref().map(|ro| {
            let counted = ro
                .counting
                .map(|c| c.at(rt.colors[ro.candidate_index].outcomes.progress()));
            let steps = r
                .rollout
                .as_ref()
                .map(|x| x.steps.as_slice())
                .unwrap_or(&[]);
            RolloutStatus {
                candidate: ro.candidate.clone(),
                step: ro.step,
                steps: ro.steps,
                shadow: ro.shadow,
                step_weights: steps.iter().map(|s| s.weight).collect(),
                step_shadow: steps.iter().map(|s| s.shadow).collect(),
                counted: counted.map(|(n, _)| n),
                min_requests: counted.map(|(_, m)| m),
                next_step_at: ro.next_at.map(rfc3339),
            }
        });
        let shadow = rt.mirror.map(|m| {
            let w = rt.colors[m.color].outcomes.shadow(now, window);
            ShadowStatus {
                color: rt.table.names[m.color].clone(),
                percent: m.percent,
                mirrored: w.mirrored,
                compared: w.compared(),
                matched: w.matched,
                mismatched: w.mismatched,
                errors: w.errors,
                skipped: w.skipped,
                agreement: w.agreement().map(round),
                min_agreement: r.mirroring.min_agreement,
                by: match r.quality.is_some() {
                    true => "label",
                    false => "status class",
                }
                .to_owned(),
                window: humantime::format_duration(window).to_string(),
            }
        });
        RouteStatus {
            matches: MatchStatus::of(&r.matches),
            state: v.state,
            stable: r.stable_name().to_owned(),
            weights: rt
                .table
                .names
                .iter()
                .zip(&rt.colors)
                .map(|(n, c)| (n.clone(), c.percent))
                .collect(),
            colors,
            rollout,
            shadow,
            rollback: v.rollback.as_ref().map(|rb| RollbackStatus {
                color: rb.color.clone(),
                kind: rb.kind,
                reason: rb.reason.clone(),
                at: rfc3339(rb.at),
            }),
        }
    }
}
