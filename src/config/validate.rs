//! The semantic checks: from [`PolicyFile`] to [`Policy`], recording every problem found.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::{Span, Spanned};

use super::checker::{valid_cookie_name, Checker};

use super::file::{self, PolicyFile};
use super::{Affinity, Color, Health, LatencyMode, Policy, Problem, RollbackLimits, Timeouts};

/// Returns the policy if the file made one; problems are appended either way.
pub(super) fn validate(f: PolicyFile, base: &Path, problems: &mut Vec<Problem>) -> Option<Policy> {
    let mut c = Checker { problems, base };
    // Missing keys have no position of their own.
    let top = Span::new_blank();

    let admin = match &f.admin {
        Some(a) => c.socket_addr("admin", a, a.span()),
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
    };
    let listen = super::edge::listeners(&mut c, f.listen.as_ref(), admin, f.admin.as_ref());
    let health = super::colors::health(&mut c, "health", f.health.as_ref(), &Health::default());

    let mut colors = Vec::new();
    match &f.colors {
        None => c.report(
            &top,
            "`colors` is required: name at least one pool of backends".into(),
        ),
        Some(map) if map.is_empty() => {
            c.report(map.span(), "colors: name at least one color".into())
        }
        Some(map) => {
            for (name, color) in map.iter() {
                colors.push(super::colors::color(&mut c, name, color, &health));
            }
        }
    }
    let index = |name: &str| colors.iter().position(|col: &Color| col.name == name);

    let stable = match (&f.stable, colors.len()) {
        (Some(s), _) => match index(s.trim()) {
            Some(i) => Some(i),
            None => {
                c.report(s.span(), format!("stable: there is no color `{}`", &**s));
                None
            }
        },
        (None, 1) => Some(0),
        (None, 0) => None,
        (None, _) => {
            c.report(&top, "`stable` is required with 2 or more colors: name the color that takes the traffic of a rolled-back one".into());
            None
        }
    };

    let mut split = vec![0u32; colors.len()];
    match &f.split {
        Some(map) => {
            for (name, w) in map.iter() {
                let i = index(name.trim());
                if i.is_none() {
                    c.report(
                        name.span(),
                        format!("split: there is no color `{}`", &**name),
                    );
                }
                let w = match u32::try_from(**w) {
                    Ok(w) => w,
                    Err(_) => {
                        c.report(
                            w.span(),
                            format!(
                                "split: weight of `{}` must be a whole number >= 0, not {}",
                                &**name, **w
                            ),
                        );
                        continue;
                    }
                };
                if let Some(i) = i {
                    split[i] = w;
                }
            }
            if !map.is_empty() && map.values().all(|w| **w == 0) {
                c.report(
                    map.span(),
                    "split: at least one color needs a weight above 0".into(),
                );
            }
            if map.is_empty() {
                c.report(map.span(), "split: give each color a weight".into());
            }
        }
        None if colors.len() == 1 => split[0] = 100,
        None if colors.len() > 1 => c.report(
            &top,
            "`split` is required with 2 or more colors (e.g. split: {blue: 90, green: 10})".into(),
        ),
        None => {}
    }

    let affinity = f.affinity.as_ref().map(|a| affinity(&mut c, a));
    let override_header = f
        .override_header
        .as_ref()
        .and_then(|h| c.header("override_header", h));
    let rollback = rollback(&mut c, f.rollback.as_ref());
    let rollout = f
        .rollout
        .as_ref()
        .and_then(|r| super::steps::rollout(&mut c, r, &colors, stable));
    let t = f.timeouts.as_ref();
    let d = Timeouts::default();
    // Each key of `timeouts`: its value if given (and valid), else the default.
    let mut timeout =
        |key: &str, pick: fn(&super::file::TimeoutsFile) -> Option<&super::file::Text>, default| {
            c.duration(key, t.and_then(pick), default)
        };
    let timeouts = Timeouts {
        connect: timeout("timeouts.connect", |t| t.connect.as_ref(), d.connect),
        read: timeout("timeouts.read", |t| t.read.as_ref(), d.read),
        client_header: timeout(
            "timeouts.client_header",
            |t| t.client_header.as_ref(),
            d.client_header,
        ),
        client_body: timeout(
            "timeouts.client_body",
            |t| t.client_body.as_ref(),
            d.client_body,
        ),
        client_send: timeout(
            "timeouts.client_send",
            |t| t.client_send.as_ref(),
            d.client_send,
        ),
        keepalive: timeout("timeouts.keepalive", |t| t.keepalive.as_ref(), d.keepalive),
    };
    let quality = f
        .quality
        .as_ref()
        .and_then(|q| super::gates::quality(&mut c, q));
    let has_shadow_step = f
        .rollout
        .as_ref()
        .is_some_and(|r| r.steps.iter().any(|s| s.shadow.is_some()));
    let (shadow, mirroring) =
        super::gates::shadow(&mut c, f.shadow.as_ref(), &colors, stable, has_shadow_step);
    let state_file = f.state_file.as_ref().and_then(|s| {
        if s.trim().is_empty() {
            c.report(s.span(), "state_file: give a path".into());
            None
        } else {
            Some(PathBuf::from(s.trim()))
        }
    });

    Some(Policy {
        listen,
        admin: admin?,
        stable: stable?,
        colors,
        split,
        affinity: affinity.flatten(),
        override_header,
        health,
        rollback,
        rollout,
        timeouts,
        quality,
        shadow,
        mirroring,
        state_file,
        access_log: f.access_log.map(|b| *b).unwrap_or(false),
    })
}

fn affinity(c: &mut Checker, a: &Spanned<file::AffinityFile>) -> Option<Affinity> {
    let cookie = a.cookie.as_ref().and_then(|k| {
        if valid_cookie_name(k.trim()) {
            Some(k.trim().to_owned())
        } else {
            c.report(
                k.span(),
                format!("affinity.cookie: `{}` is not a valid cookie name", &**k),
            );
            None
        }
    });
    let header = a
        .header
        .as_ref()
        .and_then(|h| c.header("affinity.header", h));
    let max_age = c.duration(
        "affinity.max_age",
        a.max_age.as_ref(),
        Duration::from_secs(3600),
    );
    if a.cookie.is_none() && a.header.is_none() {
        c.report(a.span(), "affinity: set `cookie`, `header` or both".into());
        return None;
    }
    Some(Affinity {
        cookie,
        max_age,
        header,
    })
}

fn rollback(c: &mut Checker, r: Option<&file::RollbackFile>) -> RollbackLimits {
    let max_error_rate = c.share(
        "rollback.max_error_rate",
        r.and_then(|r| r.max_error_rate.as_ref()),
        0.05,
    );
    let min_requests = c.count(
        "rollback.min_requests",
        r.and_then(|r| r.min_requests.as_ref()),
        20,
        1,
    );
    let latency = match r.and_then(|r| r.latency.as_ref()) {
        None => LatencyMode::Total,
        Some(v) => match v.trim() {
            "total" => LatencyMode::Total,
            "first_byte" => LatencyMode::FirstByte,
            other => {
                c.report(
                    v.span(),
                    format!("rollback.latency: `{other}` is not total or first_byte"),
                );
                LatencyMode::Total
            }
        },
    };
    RollbackLimits {
        max_error_rate,
        max_p99_latency: c.duration(
            "rollback.max_p99_latency",
            r.and_then(|r| r.max_p99_latency.as_ref()),
            Duration::from_secs(2),
        ),
        window: c.duration(
            "rollback.window",
            r.and_then(|r| r.window.as_ref()),
            Duration::from_secs(30),
        ),
        min_requests: u64::from(min_requests),
        latency,
    }
}
