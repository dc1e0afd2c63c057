//! `rollout:`: the candidate and its steps, each a live weight or a shadow percent.

use std::time::Duration;

use marked_yaml::Spanned;

use super::checker::Checker;
use super::file;
use super::{Color, Rollout, Step};

/// `rollout:`; `None` when it has problems (they are reported).
pub(super) fn rollout(
    c: &mut Checker,
    r: &Spanned<file::RolloutFile>,
    colors: &[Color],
    stable: Option<usize>,
) -> Option<Rollout> {
    let candidate = colors.iter().position(|col| col.name == r.candidate.trim());
    match candidate {
        None => c.report(
            r.candidate.span(),
            format!("rollout.candidate: there is no color `{}`", &*r.candidate),
        ),
        Some(i) if Some(i) == stable => c.report(
            r.candidate.span(),
            format!(
                "rollout.candidate: `{}` is the stable color; the candidate must be another one",
                &*r.candidate
            ),
        ),
        Some(_) => {}
    }
    if r.steps.is_empty() {
        c.report(
            r.steps.span(),
            "rollout.steps: give at least one step".into(),
        );
    }
    let mut steps = Vec::new();
    for (i, s) in r.steps.iter().enumerate() {
        let key = format!("rollout.steps[{i}]");
        let (weight, shadow) = match (&s.weight, &s.shadow) {
            (Some(w), None) => (c.percent(&format!("{key}.weight"), w, 0), None),
            (None, Some(m)) => (0, Some(c.percent(&format!("{key}.shadow"), m, 1))),
            (Some(w), Some(_)) => {
                c.report(
                    w.span(),
                    format!("{key}: give `weight` (live traffic) or `shadow` (mirrored copies), not both"),
                );
                (0, None)
            }
            (None, None) => {
                c.report(
                    s.span(),
                    format!("{key}: give `weight` (live traffic) or `shadow` (mirrored copies)"),
                );
                (0, None)
            }
        };
        let hold = c.duration(
            &format!("{key}.hold"),
            Some(&s.hold),
            Duration::from_secs(30),
        );
        let min_requests = c.count(
            &format!("{key}.min_requests"),
            s.min_requests.as_ref(),
            0,
            1,
        );
        steps.push(Step {
            weight,
            shadow,
            hold,
            min_requests: u64::from(min_requests),
        });
    }
    let candidate = candidate.filter(|i| Some(*i) != stable)?;
    (!steps.is_empty()).then_some(Rollout { candidate, steps })
}
