//! The `blueshift status` table, from a `/status` document.

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
            let protocol = match c["protocol"].as_str() {
                Some("http1") | None => String::new(),
                Some(p) => format!("  ({p})"),
            };
            let _ = writeln!(
                s,
                "{:<14} {:>5}%  {}{protocol}",
                name,
                v["weights"][name].as_u64().unwrap_or(0),
                backends.join(", ")
            );
        }
    }
    quality_lines(&mut s, v);
    s.push('\n');
    let _ = writeln!(s, "rollout   {}", rollout_line(&v["rollout"], style, now));
    if let Some(line) = shadow_line(&v["shadow"], style) {
        let _ = writeln!(s, "shadow    {line}");
    }
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
    for t in v["tls"].as_array().into_iter().flatten() {
        let left = t["expires"]
            .as_str()
            .and_then(|e| humantime::parse_rfc3339(e).ok())
            .and_then(|e| e.duration_since(now).ok())
            .map(|d| format!(" (in {}d)", d.as_secs() / 86_400))
            .unwrap_or_else(|| " (expired)".into());
        let mut line = format!(
            "{} {}, expires {}{left}",
            t["listener"].as_str().unwrap_or("?"),
            t["subject"].as_str().unwrap_or("?"),
            t["expires"].as_str().unwrap_or("?"),
        );
        if let Some(e) = t["error"].as_str() {
            line.push_str(&style.paint("31", &format!("; last load failed: {e}")));
        }
        let _ = writeln!(s, "tls       {line}");
    }
    for r in v["restart_required"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "restart   {}",
            style.paint("33", r.as_str().unwrap_or(""))
        );
    }
    s
}

/// One line per color with quality gates on: answers, label shares, mean score, invalid share.
fn quality_lines(s: &mut String, v: &serde_json::Value) {
    use std::fmt::Write;
    let Some(colors) = v["colors"].as_object() else {
        return;
    };
    let mut header = false;
    for (name, c) in colors {
        let q = &c["quality"];
        if !q.is_object() {
            continue;
        }
        if !header {
            let _ = writeln!(
                s,
                "\n{:<14} {:>7}  {:<32} {:>5}  {:>7}  {:>7}",
                "QUALITY", "ANSWERS", "LABELS", "SCORE", "INVALID", "SKIPPED"
            );
            header = true;
        }
        let labels: Vec<String> = q["labels"]
            .as_object()
            .map(|l| {
                let mut l: Vec<(&String, f64)> = l
                    .iter()
                    .map(|(k, v)| (k, v.as_f64().unwrap_or(0.0)))
                    .collect();
                l.sort_by(|a, b| b.1.total_cmp(&a.1));
                l.iter()
                    .take(4)
                    .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
                    .collect()
            })
            .unwrap_or_default();
        let labels = match labels.is_empty() {
            true => "-".to_owned(),
            false => labels.join(" "),
        };
        let score = q["mean_score"]
            .as_f64()
            .map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            s,
            "{:<14} {:>7}  {:<32} {:>5}  {:>6.1}%  {:>7}",
            name,
            q["samples"].as_u64().unwrap_or(0),
            labels,
            score,
            q["invalid_rate"].as_f64().unwrap_or(0.0) * 100.0,
            q["skipped"].as_u64().unwrap_or(0)
        );
    }
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
    let shadows: Vec<Option<u64>> = r
        .get("step_shadow")
        .and_then(|w| w.as_array())
        .map(|w| w.iter().map(|x| x.as_u64()).collect())
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
            let label = match shadows.get(i).copied().flatten() {
                Some(pct) => format!("shadow {pct}%"),
                None => format!("{w}%"),
            };
            if i + 1 == step {
                format!("[{label}]")
            } else {
                label
            }
        })
        .collect();
    let counted = match (
        r.get("counted").and_then(|c| c.as_u64()),
        r.get("min_requests").and_then(|c| c.as_u64()),
    ) {
        (Some(n), Some(min)) => {
            let what = match r.get("shadow").and_then(|s| s.as_bool()) {
                Some(true) => "compared answers",
                _ => "requests",
            };
            format!("   {n}/{min} {what}")
        }
        _ => String::new(),
    };
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
        "{}  {bar}  step {step} of {steps}: {}{counted}{next}",
        r.get("candidate").and_then(|c| c.as_str()).unwrap_or("?"),
        path.join(" > ")
    )
}

/// `green  copies of 100%  312 compared, agreement 97% (min 90%), 4 errors, 0 skipped`.
fn shadow_line(v: &serde_json::Value, style: Style) -> Option<String> {
    let v = v.as_object()?;
    let num = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let min = v
        .get("min_agreement")
        .and_then(|x| x.as_f64())
        .unwrap_or(0.0);
    let agreement = match v.get("agreement").and_then(|x| x.as_f64()) {
        Some(a) => {
            let text = format!("agreement {:.0}%", a * 100.0);
            match a < min {
                true => style.paint("31", &text),
                false => text,
            }
        }
        None => "agreement -".to_owned(),
    };
    Some(format!(
        "{}  copies of {}%  {} compared by {}, {agreement} (min {:.0}%), {} errors, {} skipped",
        v.get("color").and_then(|c| c.as_str()).unwrap_or("?"),
        num("percent"),
        num("compared"),
        v.get("by").and_then(|c| c.as_str()).unwrap_or("label"),
        min * 100.0,
        num("errors"),
        num("skipped"),
    ))
}
