//! The operator's commands that are not the server itself: `check` and, later, the admin client.

use std::path::Path;

pub mod client;
mod render;

pub use render::{render, Style};

use crate::config::{self, Policy};
use crate::Error;

/// `blueshift check FILE`: prints a summary of a valid policy, or every problem.
pub fn check(path: &Path) -> Result<(), Error> {
    let policy = config::read_file(path).map_err(|problems| {
        let n = problems.0.len();
        let mut e = Error::Policy {
            path: path.to_path_buf(),
            problems,
        }
        .to_string();
        e.push_str(&format!(
            "\n{} is invalid: {n} problem{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        ));
        Error::Other(e)
    })?;
    print!("{}", summary(path, &policy));
    Ok(())
}

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
fn health_line(h: &crate::config::Health) -> String {
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
    use std::fmt::Write;
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
    let total: u32 = p.split.iter().sum();
    for (i, c) in p.colors.iter().enumerate() {
        let backends: Vec<String> = c
            .backends
            .iter()
            .map(|b| format!("{} (w{})", b.addr, b.weight))
            .collect();
        let share = if total > 0 {
            f64::from(p.split[i]) * 100.0 / f64::from(total)
        } else {
            0.0
        };
        let protocol = match c.protocol {
            crate::config::Protocol::Http1 => String::new(),
            other => format!(" ({})", other.as_str()),
        };
        let _ = writeln!(
            s,
            "  color      {:<10} {:>5.1}%{}  {}{protocol}",
            c.name,
            share,
            if i == p.stable { " stable" } else { "       " },
            backends.join(", ")
        );
        if c.health != p.health {
            let _ = writeln!(s, "  health     {:<10} {}", c.name, health_line(&c.health));
        }
    }
    match &p.affinity {
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
    if let Some(h) = &p.override_header {
        let _ = writeln!(s, "  override   {h}");
    }
    let _ = writeln!(s, "  health     {}", health_line(&p.health));
    let r = &p.rollback;
    let _ = writeln!(
        s,
        "  rollback   error rate > {} or p99{} > {} over {} (min {} requests)",
        r.max_error_rate,
        match r.latency {
            crate::config::LatencyMode::Total => "",
            crate::config::LatencyMode::FirstByte => " (to the first byte)",
        },
        human(r.max_p99_latency),
        human(r.window),
        r.min_requests
    );
    if let Some(q) = &p.quality {
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
    match &p.rollout {
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
                p.colors[ro.candidate].name,
                steps.join(" -> ")
            );
        }
        None => {
            let _ = writeln!(s, "  rollout    none");
        }
    }
    if let Some(m) = &p.shadow {
        let _ = writeln!(
            s,
            "  shadow     {}: copies of {}% of requests (bodies up to {}), rolled back below {} agreement, {} in flight at most",
            p.colors[m.color].name,
            m.percent,
            size(p.mirroring.max_body),
            p.mirroring.min_agreement,
            p.mirroring.max_in_flight
        );
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

/// Default admin address when neither `--admin` nor `BLUESHIFT_ADMIN` says otherwise.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// `blueshift status`: the live state as a table, or the raw JSON.
pub fn status(admin: &str, raw_json: bool) -> Result<(), Error> {
    let a = crate::ops::cli::client::call(admin, "GET", "/status", None)?;
    if a.status != 200 {
        return Err(Error::Other(server_reason(&a)));
    }
    if raw_json {
        print!("{}", a.body);
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&a.body).map_err(|_| {
        Error::Other(format!(
            "the admin API at {admin} did not answer with blueshift status JSON"
        ))
    })?;
    print!(
        "{}",
        render(admin, &v, Style::detect(), std::time::SystemTime::now())
    );
    Ok(())
}

/// `blueshift rollback|promote|pause|resume|reload`: POSTs the action, prints the new state.
pub fn action(admin: &str, name: &str) -> Result<(), Error> {
    let token = std::env::var(crate::ops::admin::TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let a = crate::ops::cli::client::call(admin, "POST", &format!("/{name}"), token.as_deref())?;
    if a.status != 200 {
        return Err(Error::Other(format!(
            "{name} refused: {}",
            server_reason(&a)
        )));
    }
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    print!(
        "{}",
        render(admin, &v, Style::detect(), std::time::SystemTime::now())
    );
    Ok(())
}

/// The server's `{"error": "..."}`, or the status code if there is none.
fn server_reason(a: &crate::ops::cli::client::Answer) -> String {
    serde_json::from_str::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the admin API answered {}", a.status))
}
