//! The operator's commands that are not the server itself: `check` and, later, the admin client.

use std::path::Path;

use crate::policy::{self, Policy};
use crate::Error;

/// `blueshift check FILE`: prints a summary of a valid policy, or every problem.
pub fn check(path: &Path) -> Result<(), Error> {
    let policy = policy::read_file(path).map_err(|problems| {
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

/// A one-screen description of a valid policy.
pub fn summary(path: &Path, p: &Policy) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let listen: Vec<String> = p.listen.iter().map(|a| a.to_string()).collect();
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
        let _ = writeln!(
            s,
            "  color      {:<10} {:>5.1}%{}  {}",
            c.name,
            share,
            if i == p.stable { " stable" } else { "       " },
            backends.join(", ")
        );
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
    let h = &p.health;
    let _ = writeln!(
        s,
        "  health     GET {} every {}, timeout {}, healthy after {}, unhealthy after {}",
        h.path,
        human(h.interval),
        human(h.timeout),
        h.healthy_after,
        h.unhealthy_after
    );
    let r = &p.rollback;
    let _ = writeln!(
        s,
        "  rollback   error rate > {} or p99 > {} over {} (min {} requests)",
        r.max_error_rate,
        human(r.max_p99_latency),
        human(r.window),
        r.min_requests
    );
    match &p.rollout {
        Some(ro) => {
            let steps: Vec<String> = ro
                .steps
                .iter()
                .map(|st| format!("{}% for {}", st.weight, human(st.hold)))
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
    let _ = writeln!(
        s,
        "  timeouts   connect {}, read {}",
        human(p.timeouts.connect),
        human(p.timeouts.read)
    );
    if let Some(f) = &p.state_file {
        let _ = writeln!(s, "  state file {}", f.display());
    }
    s
}
