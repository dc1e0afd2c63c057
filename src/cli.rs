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

/// Default admin address when neither `--admin` nor `BLUESHIFT_ADMIN` says otherwise.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// `blueshift status`: the live state as a table, or the raw JSON.
pub fn status(admin: &str, raw_json: bool) -> Result<(), Error> {
    let a = crate::client::call(admin, "GET", "/status", None)?;
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
    let token = std::env::var(crate::admin::TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let a = crate::client::call(admin, "POST", &format!("/{name}"), token.as_deref())?;
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
fn server_reason(a: &crate::client::Answer) -> String {
    serde_json::from_str::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the admin API answered {}", a.status))
}

/// Terminal styling: colors and box characters only when stdout is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// ANSI colors and Unicode bars.
    Terminal,
    /// Plain ASCII, for pipes and files.
    Plain,
}

impl Style {
    /// Terminal when stdout is one and `NO_COLOR` is unset.
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Style::Terminal
        } else {
            Style::Plain
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Style::Terminal => format!("\x1b[{code}m{text}\x1b[0m"),
            Style::Plain => text.to_owned(),
        }
    }
}

/// The `status` table for a `/status` document.
pub fn render(
    admin: &str,
    v: &serde_json::Value,
    style: Style,
    now: std::time::SystemTime,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let state = v["state"].as_str().unwrap_or("?");
    let state_code = match state {
        "rolled_back" => "1;31",
        "paused" => "1;33",
        _ => "1;32",
    };
    let _ = writeln!(
        s,
        "blueshift at {admin}   revision {}   state {}   stable {}",
        v["revision"],
        style.paint(state_code, state),
        v["stable"].as_str().unwrap_or("?")
    );
    let _ = writeln!(s, "\n{:<14} {:>6}  BACKENDS", "COLOR", "WEIGHT");
    if let Some(colors) = v["colors"].as_object() {
        for (name, c) in colors {
            let backends: Vec<String> = c["backends"]
                .as_array()
                .map(|bs| {
                    bs.iter()
                        .map(|b| {
                            let health = b["health"].as_str().unwrap_or(if b["healthy"] == true {
                                "healthy"
                            } else {
                                "unhealthy"
                            });
                            let code = match health {
                                "healthy" => "32",
                                "unknown" => "33",
                                _ => "31",
                            };
                            format!(
                                "{} {}",
                                b["addr"].as_str().unwrap_or("?"),
                                style.paint(code, health)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<14} {:>5}%  {}",
                name,
                v["weights"][name].as_u64().unwrap_or(0),
                backends.join(", ")
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "rollout   {}", rollout_line(&v["rollout"], style, now));
    let rollback = match v["rollback"].as_object() {
        Some(r) => style.paint(
            "31",
            &format!(
                "{}: {} (at {})",
                r.get("color").and_then(|c| c.as_str()).unwrap_or("?"),
                r.get("reason").and_then(|c| c.as_str()).unwrap_or("?"),
                r.get("at").and_then(|c| c.as_str()).unwrap_or("?")
            ),
        ),
        None => "none".into(),
    };
    let _ = writeln!(s, "rollback  {rollback}");
    let reload = &v["last_reload"];
    let at = reload["at"]
        .as_str()
        .map(|a| format!(" at {a}"))
        .unwrap_or_default();
    let reload = if reload["ok"] == false {
        style.paint(
            "31",
            &format!("error{at}: {}", reload["error"].as_str().unwrap_or("?")),
        )
    } else if reload["at"].is_null() {
        "none since start".into()
    } else {
        format!("ok{at}")
    };
    let _ = writeln!(s, "reload    {reload}");
    for r in v["restart_required"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "restart   {}",
            style.paint("33", r.as_str().unwrap_or(""))
        );
    }
    s
}

fn rollout_line(r: &serde_json::Value, style: Style, now: std::time::SystemTime) -> String {
    let Some(r) = r.as_object() else {
        return "none".into();
    };
    let step = r.get("step").and_then(|x| x.as_u64()).unwrap_or(0) as usize;
    let steps = r.get("steps").and_then(|x| x.as_u64()).unwrap_or(0) as usize;
    let weights: Vec<u64> = r
        .get("step_weights")
        .and_then(|w| w.as_array())
        .map(|w| w.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default();
    let (done, todo) = match style {
        Style::Terminal => ("█", "░"),
        Style::Plain => ("#", "-"),
    };
    let bar: String = (1..=steps)
        .map(|i| if i <= step { done } else { todo })
        .collect();
    let path: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i + 1 == step {
                format!("[{w}%]")
            } else {
                format!("{w}%")
            }
        })
        .collect();
    let next = r
        .get("next_step_at")
        .and_then(|n| n.as_str())
        .and_then(|n| humantime::parse_rfc3339(n).ok())
        .map(|at| {
            let left = at.duration_since(now).unwrap_or_default();
            format!(
                "   next step in {}",
                humantime::format_duration(std::time::Duration::from_secs(left.as_secs()))
            )
        })
        .unwrap_or_default();
    format!(
        "{}  {bar}  step {step} of {steps}: {}{next}",
        r.get("candidate").and_then(|c| c.as_str()).unwrap_or("?"),
        path.join(" > ")
    )
}
