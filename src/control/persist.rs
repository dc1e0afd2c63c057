//! The state file: each route's rollbacks and rollout phase, written atomically on every
//! transition and restored at start, so a restart never sends traffic back to a known-bad
//! candidate.
//!
//! Each saved piece carries a fingerprint of the policy it belongs to (a color's backends, the
//! rollout's steps); a piece whose policy changed meanwhile is not restored. Files written before
//! routes (version 1) hold the one route of a policy without `routes:`, `default`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Policy, Route, DEFAULT_ROUTE};
use crate::control::rollout::{Machine, Phase, RolledBack};
use crate::judge::Kind;

const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    routes: BTreeMap<String, SavedRoute>,
}

/// Version 1: one route's state at the top level.
#[derive(Deserialize)]
struct SavedV1 {
    #[serde(flatten)]
    route: SavedRoute,
}

#[derive(Serialize, Deserialize)]
struct SavedRoute {
    /// The rollout it was saved under; the phase only applies to the same rollout.
    rollout: Option<String>,
    phase: SavedPhase,
    rolled_back: BTreeMap<String, SavedRollback>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum SavedPhase {
    Steady,
    Progressing { step: usize },
    Paused { step: usize, remaining_ms: u64 },
    Promoted,
}

#[derive(Serialize, Deserialize)]
struct SavedRollback {
    /// The color's backends when it was rolled back.
    backends: String,
    kind: String,
    reason: String,
    at_unix: u64,
}

fn backends_of(r: &Route, color: &str) -> Option<String> {
    let c = r.colors.iter().find(|c| c.name == color)?;
    Some(
        c.backends
            .iter()
            .map(|b| format!("{}/{}", b.addr, b.weight))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn rollout_of(r: &Route) -> Option<String> {
    r.rollout.as_ref().map(|ro| {
        let steps: Vec<String> = ro
            .steps
            .iter()
            .map(|s| {
                // Steps without the newer keys keep their old spelling: older state files still match.
                let mut step = match s.shadow {
                    Some(pct) => format!("shadow{pct}@{}ms", s.hold.as_millis()),
                    None => format!("{}@{}ms", s.weight, s.hold.as_millis()),
                };
                if s.min_requests > 0 {
                    step.push_str(&format!("/{}", s.min_requests));
                }
                step
            })
            .collect();
        format!("{}:{}", r.colors[ro.candidate].name, steps.join(","))
    })
}

fn saved(m: &Machine, r: &Route) -> SavedRoute {
    let phase = match m.phase {
        Phase::Steady => SavedPhase::Steady,
        Phase::Progressing { step, .. } => SavedPhase::Progressing { step },
        Phase::Paused {
            step, remaining, ..
        } => SavedPhase::Paused {
            step,
            remaining_ms: remaining.as_millis() as u64,
        },
        Phase::Promoted => SavedPhase::Promoted,
    };
    let rolled_back = m
        .rolled_back
        .iter()
        .map(|(color, rb)| {
            let saved = SavedRollback {
                backends: backends_of(r, color).unwrap_or_default(),
                kind: rb.kind.label().to_owned(),
                reason: rb.reason.clone(),
                at_unix: rb.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            };
            (color.clone(), saved)
        })
        .collect();
    SavedRoute {
        rollout: rollout_of(r),
        phase,
        rolled_back,
    }
}

/// Writes every route's machine to `path` atomically (temporary file, fsync, rename).
pub fn save<'a>(
    path: &Path,
    routes: impl IntoIterator<Item = (&'a Route, &'a Machine)>,
) -> std::io::Result<()> {
    let saved = Saved {
        version: VERSION,
        routes: routes
            .into_iter()
            .map(|(r, m)| (r.name.clone(), saved(m, r)))
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&json)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads a state file: a machine per route of `p` that has saved state (`None` for the others),
/// all `None` if there is no file, `Err` (to be logged and ignored) if it is corrupt.
pub fn load(path: &Path, p: &Policy, now: Instant) -> Result<Vec<Option<Machine>>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![None; p.routes.len()])
        }
        Err(e) => return Err(e.to_string()),
    };
    let not_ours = |e: serde_json::Error| format!("not a blueshift state file ({e})");
    let version = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map_err(not_ours)?
        .get("version")
        .and_then(|v| v.as_u64());
    let mut routes = match version {
        Some(1) => {
            let v1: SavedV1 = serde_json::from_slice(&bytes).map_err(not_ours)?;
            BTreeMap::from([(DEFAULT_ROUTE.to_owned(), v1.route)])
        }
        Some(2) => {
            serde_json::from_slice::<Saved>(&bytes)
                .map_err(not_ours)?
                .routes
        }
        other => {
            return Err(format!(
                "unknown state file version {}",
                other.map_or("(none)".to_owned(), |v| v.to_string())
            ))
        }
    };
    Ok(p.routes
        .iter()
        .map(|r| routes.remove(&r.name).map(|s| restore(s, r, now)))
        .collect())
}

fn restore(saved: SavedRoute, r: &Route, now: Instant) -> Machine {
    let mut m = Machine::new(r, now);
    if saved.rollout.is_some() && saved.rollout == rollout_of(r) {
        let steps = r.rollout.as_ref().map_or(0, |ro| ro.steps.len());
        m.phase = match saved.phase {
            // A step's count of judged requests starts again: the counters restart with the process.
            SavedPhase::Progressing { step } if step < steps => Phase::Progressing {
                step,
                since: now,
                from: None,
            },
            SavedPhase::Paused { step, remaining_ms } if step < steps => Phase::Paused {
                step,
                remaining: Duration::from_millis(remaining_ms),
                from: None,
            },
            SavedPhase::Promoted => Phase::Promoted,
            _ => m.phase,
        };
    }
    for (color, rb) in saved.rolled_back {
        if color == r.stable_name()
            || backends_of(r, &color).as_deref() != Some(rb.backends.as_str())
        {
            continue;
        }
        let at = UNIX_EPOCH + Duration::from_secs(rb.at_unix);
        m.rolled_back.insert(
            color,
            RolledBack {
                kind: Kind::parse(&rb.kind).unwrap_or(Kind::Manual),
                reason: rb.reason,
                at,
            },
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn policy(state: &Path) -> Policy {
        crate::config::parse(&format!(
            "listen: 127.0.0.1:1\ncolors:\n  blue: {{backends: [{{addr: 127.0.0.1:2}}]}}\n  green: {{backends: [{{addr: 127.0.0.1:3}}]}}\nstable: blue\nsplit: {{blue: 90, green: 10}}\nrollout: {{candidate: green, steps: [{{weight: 10, hold: 1m}}, {{weight: 50, hold: 1m}}]}}\nstate_file: {}\n",
            state.display()
        ))
        .unwrap()
    }

    #[test]
    fn a_rollback_and_a_pause_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        let r = &p.routes[0];
        let now = Instant::now();
        let mut m = Machine::new(r, now);
        m.phase = Phase::Paused {
            step: 1,
            remaining: Duration::from_secs(20),
            from: None,
        };
        m.rolled_back.insert(
            "green".into(),
            RolledBack {
                kind: Kind::ErrorRate,
                reason: "error rate 0.50 > 0.05".into(),
                at: SystemTime::now(),
            },
        );
        save(&file, [(r, &m)]).unwrap();
        let back = load(&file, &p, now).unwrap().remove(0).unwrap();
        assert_eq!(back.phase, m.phase);
        assert_eq!(back.rolled_back["green"].reason, "error rate 0.50 > 0.05");
        assert_eq!(back.rolled_back["green"].kind, Kind::ErrorRate);
    }

    #[test]
    fn a_changed_color_is_not_restored_as_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        let mut m = Machine::new(&p.routes[0], Instant::now());
        m.rolled_back.insert(
            "green".into(),
            RolledBack {
                kind: Kind::Manual,
                reason: "manual".into(),
                at: SystemTime::now(),
            },
        );
        save(&file, [(&p.routes[0], &m)]).unwrap();
        let mut changed = p.clone();
        changed.routes[0].colors[1].backends[0].addr = "127.0.0.1:4".parse().unwrap();
        let back = load(&file, &changed, Instant::now())
            .unwrap()
            .remove(0)
            .unwrap();
        assert!(back.rolled_back.is_empty());
    }

    #[test]
    fn a_version_1_file_is_the_default_route() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        std::fs::write(
            &file,
            r#"{"version": 1, "rollout": "green:10@60000ms,50@60000ms",
                "phase": {"state": "paused", "step": 1, "remaining_ms": 5000},
                "rolled_back": {"green": {"backends": "127.0.0.1:3/1", "kind": "quality",
                                          "reason": "label shift", "at_unix": 1}}}"#,
        )
        .unwrap();
        let back = load(&file, &p, Instant::now()).unwrap().remove(0).unwrap();
        assert!(matches!(back.phase, Phase::Paused { step: 1, .. }));
        assert_eq!(back.rolled_back["green"].kind, Kind::Quality);
    }

    #[test]
    fn corrupt_or_missing_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        assert!(load(&file, &p, Instant::now()).unwrap()[0].is_none());
        std::fs::write(&file, b"{not json").unwrap();
        assert!(load(&file, &p, Instant::now()).is_err());
        std::fs::write(&file, b"{\"version\": 9}").unwrap();
        assert!(load(&file, &p, Instant::now())
            .unwrap_err()
            .contains("version 9"));
    }
}
