//! `blueshift check`'s one-screen description of a valid policy: what is process-wide, then each
//! route (for a policy without `routes:`, its one route in full, as before routes).

use std::fmt::Write;
use std::path::Path;

use crate::config::{Health, LatencyMode, Policy, Protocol, Route};
use crate::ops::status::MatchStatus;

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `262144` → `256 KiB`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `GET /health every 1s, timeout 1s, healthy after 2, unhealthy after 2`.
fn health_line(h: &Health) -> String {
    let what = match &h.grpc {
        Some(service) if service.is_empty() => "gRPC health check of the server".to_owned(),
        Some(service) => format!("gRPC health check of {service}"),
        None => format!("GET {}", h.path),
    };
    format!(
        "{what} every {}, timeout {}, healthy after {}, unhealthy after {}",
        human(h.interval),
        human(h.timeout),
        h.healthy_after,
        h.unhealthy_after
    )
}

/// A one-screen description of a valid policy.
pub fn summary(path: &Path, p: &Policy) -> String {
    let mut s = String::new();
    let listen: Vec<String> = p
        .listen
        .iter()
        .map(|l| match &l.tls {
            Some(t) => format!("{} (TLS: {}, h2 and http/1.1)", l.addr, t.cert.display()),
            None => format!("{} (HTTP/1.1 and h2c)", l.addr),
        })
        .collect();
    let _ = writeln!(s, "{}: ok", path.display());
    let _ = writeln!(s, "  listen     {}", listen.join(", "));
    let _ = writeln!(s, "  admin      {}", p.admin);
    if p.listed_routes {
        let _ = writeln!(s, "  health     {}", health_line(&p.health));
        if p.routes.iter().any(Route::reads_model) {
            let _ = writeln!(
                s,
                "  routing    model from {} of JSON bodies up to {}",
                p.routing.model_field,
                size(p.routing.max_body)
            );
        }
        for r in &p.routes {
            let _ = writeln!(s, "  route      {}", route_line(r));
        }
    } else {
        one_route(&mut s, p, &p.routes[0]);
    }
    let t = &p.timeouts;
    let _ = writeln!(
        s,
        "  timeouts   backends: connect {}, read {}; clients: first head {}, body reads {}, writes {}, keep-alive {}",
        human(t.connect),
        human(t.read),
        human(t.client_header),
        human(t.client_body),
        human(t.client_send),
        human(t.keepalive)
    );
    if let Some(f) = &p.state_file {
        let _ = writeln!(s, "  state file {}", f.display());
    }
    s
}

/// `sentiment  path /v1/sentiment  blue 90% stable, green 10%  rollout green: 10% -> 100%`.
fn route_line(r: &Route) -> String {
    let takes = MatchStatus::of(&r.matches).describe();
    let total: u32 = r.split.iter().sum();
    let colors: Vec<String> = r
        .colors
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let share = f64::from(r.split[i]) * 100.0 / f64::from(total.max(1));
            let stable = if i == r.stable { " stable" } else { "" };
            format!("{} {share:.0}%{stable}", c.name)
        })
        .collect();
    let mut line = format!("{:<14} {takes}  ->  {}", r.name, colors.join(", "));
    if let Some(ro) = &r.rollout {
        let _ = write!(
            line,
            "  rollout {}: {}",
            r.colors[ro.candidate].name,
            steps(r)
        );
    }
    if r.quality.is_some() {
        line.push_str("  quality gates");
    }
    line
}

fn steps(r: &Route) -> String {
    let Some(ro) = &r.rollout else {
        return String::new();
    };
    let steps: Vec<String> = ro
        .steps
        .iter()
        .map(|st| match st.shadow {
            Some(pct) => format!("shadow {pct}%"),
            None => format!("{}%", st.weight),
        })
        .collect();
    steps.join(" -> ")
}

/// The one route of a policy without `routes:`, key by key.
fn one_route(s: &mut String, p: &Policy, r: &Route) {
    let total: u32 = r.split.iter().sum();
    for (i, c) in r.colors.iter().enumerate() {
        let backends: Vec<String> = c
            .backends
            .iter()
            .map(|b| format!("{} (w{})", b.addr, b.weight))
            .collect();
        let share = if total > 0 {
            f64::from(r.split[i]) * 100.0 / f64::from(total)
        } else {
            0.0
        };
        let protocol = match c.protocol {
            Protocol::Http1 => String::new(),
            other => format!(" ({})", other.as_str()),
        };
        let _ = writeln!(
            s,
            "  color      {:<10} {:>5.1}%{}  {}{protocol}",
            c.name,
            share,
            if i == r.stable { " stable" } else { "       " },
            backends.join(", ")
        );
        if c.health != p.health {
            let _ = writeln!(s, "  health     {:<10} {}", c.name, health_line(&c.health));
        }
    }
    match &r.affinity {
        Some(a) => {
            let mut parts = Vec::new();
            if let Some(c) = &a.cookie {
                parts.push(format!("cookie {c} (max-age {})", human(a.max_age)));
            }
            if let Some(h) = &a.header {
                parts.push(format!("header {h}"));
            }
            let _ = writeln!(s, "  affinity   {}", parts.join(", "));
        }
        None => {
            let _ = writeln!(s, "  affinity   none (every request is split on its own)");
        }
    }
    if let Some(h) = &r.override_header {
        let _ = writeln!(s, "  override   {h}");
    }
    let _ = writeln!(s, "  health     {}", health_line(&p.health));
    let rb = &r.rollback;
    let _ = writeln!(
        s,
        "  rollback   error rate > {} or p99{} > {} over {} (min {} requests)",
        rb.max_error_rate,
        match rb.latency {
            LatencyMode::Total => "",
            LatencyMode::FirstByte => " (to the first byte)",
        },
        human(rb.max_p99_latency),
        human(rb.window),
        rb.min_requests
    );
    if let Some(q) = &r.quality {
        let score = q
            .score
            .as_ref()
            .map(|s| format!(", score {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  quality    label {}{score}: label shift > {}, score shift > {}, invalid > {} (min {} answers, bodies up to {})",
            q.prediction,
            q.max_label_shift,
            q.max_score_shift,
            q.max_invalid_rate,
            q.min_samples,
            size(q.max_body)
        );
    }
    match &r.rollout {
        Some(ro) => {
            let steps: Vec<String> = ro
                .steps
                .iter()
                .map(|st| {
                    let what = match st.shadow {
                        Some(pct) => format!("shadow {pct}%"),
                        None => format!("{}%", st.weight),
                    };
                    let min = match (st.min_requests, st.shadow) {
                        (0, _) => String::new(),
                        (n, Some(_)) => format!(" and {n} compared answers"),
                        (n, None) => format!(" and {n} requests"),
                    };
                    format!("{what} for {}{min}", human(st.hold))
                })
                .collect();
            let _ = writeln!(
                s,
                "  rollout    {}: {}",
                r.colors[ro.candidate].name,
                steps.join(" -> ")
            );
        }
        None => {
            let _ = writeln!(s, "  rollout    none");
        }
    }
    if let Some(m) = &r.shadow {
        let _ = writeln!(
            s,
            "  shadow     {}: copies of {}% of requests (bodies up to {}), rolled back below {} agreement, {} in flight at most",
            r.colors[m.color].name,
            m.percent,
            size(r.mirroring.max_body),
            r.mirroring.min_agreement,
            r.mirroring.max_in_flight
        );
    }
}
