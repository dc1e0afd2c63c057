//! The state file: rollbacks and the rollout's phase, written atomically on every transition
//! and restored at start, so a restart never sends traffic back to a known-bad candidate.
//!
//! Each saved piece carries a fingerprint of the policy it belongs to (a color's backends, the
//! rollout's steps); a piece whose policy changed meanwhile is not restored.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Policy;
use crate::control::rollout::{Machine, Phase, RolledBack};
use crate::judge::Kind;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
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

fn backends_of(p: &Policy, color: &str) -> Option<String> {
    let c = p.colors.iter().find(|c| c.name == color)?;
    Some(
        c.backends
            .iter()
            .map(|b| format!("{}/{}", b.addr, b.weight))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn rollout_of(p: &Policy) -> Option<String> {
    p.rollout.as_ref().map(|r| {
        let steps: Vec<String> = r
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
        format!("{}:{}", p.colors[r.candidate].name, steps.join(","))
    })
}

/// Writes the machine's state to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, m: &Machine, p: &Policy) -> std::io::Result<()> {
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
        .map(|(color, r)| {
            let saved = SavedRollback {
                backends: backends_of(p, color).unwrap_or_default(),
                kind: r.kind.label().to_owned(),
                reason: r.reason.clone(),
                at_unix: r.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            };
            (color.clone(), saved)
        })
        .collect();
    let saved = Saved {
        version: VERSION,
        rollout: rollout_of(p),
        phase,
        rolled_back,
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

/// Reads a state file: `Ok(None)` if there is none, `Err` (to be logged and ignored) if it is corrupt.
pub fn load(path: &Path, p: &Policy, now: Instant) -> Result<Option<Machine>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let saved: Saved =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a blueshift state file ({e})"))?;
    if saved.version != VERSION {
        return Err(format!("unknown state file version {}", saved.version));
    }
    let mut m = Machine::new(p, now);
    if saved.rollout.is_some() && saved.rollout == rollout_of(p) {
        let steps = p.rollout.as_ref().map_or(0, |r| r.steps.len());
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
    for (color, r) in saved.rolled_back {
        if color == p.stable_name()
            || backends_of(p, &color).as_deref() != Some(r.backends.as_str())
        {
            continue;
        }
        let kind = match r.kind.as_str() {
            "unhealthy" => Kind::Unhealthy,
            "error_rate" => Kind::ErrorRate,
            "latency" => Kind::Latency,
            "quality" => Kind::Quality,
            _ => Kind::Manual,
        };
        let at = UNIX_EPOCH + Duration::from_secs(r.at_unix);
        m.rolled_back.insert(
            color,
            RolledBack {
                kind,
                reason: r.reason,
                at,
            },
        );
    }
    Ok(Some(m))
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
        let now = Instant::now();
        let mut m = Machine::new(&p, now);
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
        save(&file, &m, &p).unwrap();
        let back = load(&file, &p, now).unwrap().unwrap();
        assert_eq!(back.phase, m.phase);
        assert_eq!(back.rolled_back["green"].reason, "error rate 0.50 > 0.05");
        assert_eq!(back.rolled_back["green"].kind, Kind::ErrorRate);
    }

    #[test]
    fn a_changed_color_is_not_restored_as_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        let mut m = Machine::new(&p, Instant::now());
        m.rolled_back.insert(
            "green".into(),
            RolledBack {
                kind: Kind::Manual,
                reason: "manual".into(),
                at: SystemTime::now(),
            },
        );
        save(&file, &m, &p).unwrap();
        let mut changed = p.clone();
        changed.colors[1].backends[0].addr = "127.0.0.1:4".parse().unwrap();
        assert!(load(&file, &changed, Instant::now())
            .unwrap()
            .unwrap()
            .rolled_back
            .is_empty());
    }

    #[test]
    fn corrupt_or_missing_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let p = policy(&file);
        assert_eq!(load(&file, &p, Instant::now()), Ok(None));
        std::fs::write(&file, b"{not json").unwrap();
        assert!(load(&file, &p, Instant::now()).is_err());
    }
}
