//! The `blueshift status` table, from a `/status` document: a block per route (for one route,
//! the table it always was), then what is process-wide.

use std::fmt::Write;
use std::time::SystemTime;

use crate::judge::StateName;
use crate::ops::status::{RolloutStatus, RouteStatus, ShadowStatus, Status};

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

/// The `status` table for a `/status` document: every route, or only the one named.
pub fn render(
    admin: &str,
    doc: &Status,
    only: Option<&str>,
    style: Style,
    now: SystemTime,
) -> String {
    let mut s = String::new();
    let paint_state = |state: StateName| {
        let code = match state {
            StateName::RolledBack => "1;31",
            StateName::Paused => "1;33",
            _ => "1;32",
        };
        style.paint(code, state.as_str())
    };
    if doc.routes.len() == 1 {
        let (_, r) = doc.routes.first().expect("one route");
        let _ = writeln!(
            s,
            "blueshift at {admin}   revision {}   state {}   stable {}",
            doc.revision,
            paint_state(r.state),
            r.stable
        );
        route_block(&mut s, r, style, now);
    } else {
        let _ = writeln!(
            s,
            "blueshift at {admin}   revision {}   {} routes",
            doc.revision,
            doc.routes.len()
        );
        for (name, r) in doc
            .routes
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == *n))
        {
            let _ = writeln!(
                s,
                "\nroute {}   state {}   stable {}   takes {}",
                style.paint("1", name),
                paint_state(r.state),
                r.stable,
                r.matches.describe()
            );
            route_block(&mut s, r, style, now);
        }
    }
    let reload = &doc.last_reload;
    let at = reload
        .at
        .as_deref()
        .map(|a| format!(" at {a}"))
        .unwrap_or_default();
    let reload = if !reload.ok {
        style.paint(
            "31",
            &format!("error{at}: {}", reload.error.as_deref().unwrap_or("?")),
        )
    } else if reload.at.is_none() {
        "none since start".into()
    } else {
        format!("ok{at}")
    };
    if doc.routes.len() > 1 {
        s.push('\n');
    }
    let _ = writeln!(s, "reload    {reload}");
    for t in &doc.tls {
        let left = humantime::parse_rfc3339(&t.expires)
            .ok()
            .and_then(|e| e.duration_since(now).ok())
            .map(|d| format!(" (in {}d)", d.as_secs() / 86_400))
            .unwrap_or_else(|| " (expired)".into());
        let mut line = format!("{} {}, expires {}{left}", t.listener, t.subject, t.expires);
        if let Some(e) = &t.error {
            line.push_str(&style.paint("31", &format!("; last load failed: {e}")));
        }
        let _ = writeln!(s, "tls       {line}");
    }
    for r in &doc.restart_required {
        let _ = writeln!(s, "restart   {}", style.paint("33", r));
    }
    s
}

/// One route: its colors and backends, what they answer, the rollout, shadow and rollback.
fn route_block(s: &mut String, r: &RouteStatus, style: Style, now: SystemTime) {
    let _ = writeln!(s, "\n{:<14} {:>6}  BACKENDS", "COLOR", "WEIGHT");
    for (name, c) in &r.colors {
        let backends: Vec<String> = c
            .backends
            .iter()
            .map(|b| {
                let code = match b.health.as_str() {
                    "healthy" => "32",
                    "unknown" => "33",
                    _ => "31",
                };
                format!("{} {}", b.addr, style.paint(code, &b.health))
            })
            .collect();
        let protocol = match c.protocol.as_str() {
            "http1" => String::new(),
            p => format!("  ({p})"),
        };
        let _ = writeln!(
            s,
            "{:<14} {:>5}%  {}{protocol}",
            name,
            r.weights.get(name).copied().unwrap_or(0),
            backends.join(", ")
        );
    }
    quality_lines(s, r);
    s.push('\n');
    let rollout = match &r.rollout {
        Some(ro) => rollout_line(ro, style, now),
        None => "none".into(),
    };
    let _ = writeln!(s, "rollout   {rollout}");
    if let Some(sh) = &r.shadow {
        let _ = writeln!(s, "shadow    {}", shadow_line(sh, style));
    }
    let rollback = match &r.rollback {
        Some(rb) => style.paint("31", &format!("{}: {} (at {})", rb.color, rb.reason, rb.at)),
        None => "none".into(),
    };
    let _ = writeln!(s, "rollback  {rollback}");
}

/// One line per color with quality gates on: answers, label shares, mean score, invalid share.
fn quality_lines(s: &mut String, r: &RouteStatus) {
    let mut header = false;
    for (name, c) in &r.colors {
        let Some(q) = &c.quality else {
            continue;
        };
        if !header {
            let _ = writeln!(
                s,
                "\n{:<14} {:>7}  {:<32} {:>5}  {:>7}  {:>7}",
                "QUALITY", "ANSWERS", "LABELS", "SCORE", "INVALID", "SKIPPED"
            );
            header = true;
        }
        let mut labels: Vec<(&String, f64)> = q.labels.iter().map(|(k, v)| (k, *v)).collect();
        labels.sort_by(|a, b| b.1.total_cmp(&a.1));
        let labels: Vec<String> = labels
            .iter()
            .take(4)
            .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
            .collect();
        let labels = match labels.is_empty() {
            true => "-".to_owned(),
            false => labels.join(" "),
        };
        let score = q.mean_score.map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            s,
            "{:<14} {:>7}  {:<32} {:>5}  {:>6.1}%  {:>7}",
            name,
            q.samples,
            labels,
            score,
            q.invalid_rate * 100.0,
            q.skipped
        );
    }
}

fn rollout_line(r: &RolloutStatus, style: Style, now: SystemTime) -> String {
    let (done, todo) = match style {
        Style::Terminal => ("█", "░"),
        Style::Plain => ("#", "-"),
    };
    let bar: String = (1..=r.steps)
        .map(|i| if i <= r.step { done } else { todo })
        .collect();
    let path: Vec<String> = r
        .step_weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let label = match r.step_shadow.get(i).copied().flatten() {
                Some(pct) => format!("shadow {pct}%"),
                None => format!("{w}%"),
            };
            if i + 1 == r.step {
                format!("[{label}]")
            } else {
                label
            }
        })
        .collect();
    let counted = match (r.counted, r.min_requests) {
        (Some(n), Some(min)) => {
            let what = match r.shadow {
                true => "compared answers",
                false => "requests",
            };
            format!("   {n}/{min} {what}")
        }
        _ => String::new(),
    };
    let next = r
        .next_step_at
        .as_deref()
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
        "{}  {bar}  step {} of {}: {}{counted}{next}",
        r.candidate,
        r.step,
        r.steps,
        path.join(" > ")
    )
}

/// `green  copies of 100%  312 compared, agreement 97% (min 90%), 4 errors, 0 skipped`.
fn shadow_line(v: &ShadowStatus, style: Style) -> String {
    let agreement = match v.agreement {
        Some(a) => {
            let text = format!("agreement {:.0}%", a * 100.0);
            match a < v.min_agreement {
                true => style.paint("31", &text),
                false => text,
            }
        }
        None => "agreement -".to_owned(),
    };
    format!(
        "{}  copies of {}%  {} compared by {}, {agreement} (min {:.0}%), {} errors, {} skipped",
        v.color,
        v.percent,
        v.compared,
        v.by,
        v.min_agreement * 100.0,
        v.errors,
        v.skipped,
    )
}
