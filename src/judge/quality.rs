//! The quality judge: a pure function from a color's answers and the stable color's to a
//! breach sentence, and the baseline it compares against.

use std::time::Duration;

use super::counts::{QualitySummary, ShadowCounts};
use crate::config::Quality;

/// What a candidate's answers are compared with: the stable color's answers over the window, or,
/// when stable serves too few (the candidate near 100%), the last window that had enough.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// The answers.
    pub answers: QualitySummary,
    /// True when these are an earlier window's answers, kept because stable's current ones are too few.
    pub frozen: bool,
}

impl Baseline {
    /// The baseline after a tick: stable's answers now if there are `min_samples` of them, else
    /// the previous baseline, frozen (none if there never were enough).
    pub fn update(
        previous: Option<Baseline>,
        stable_now: QualitySummary,
        min_samples: u64,
    ) -> Option<Baseline> {
        if stable_now.samples() >= min_samples {
            return Some(Baseline {
                answers: stable_now,
                frozen: false,
            });
        }
        previous.map(|b| Baseline { frozen: true, ..b })
    }
}

/// Total variation distance between two label distributions: half the sum of the absolute
/// differences of their shares, 0 (the same mix) to 1 (nothing in common).
pub fn label_shift(a: &QualitySummary, b: &QualitySummary) -> f64 {
    let (sa, sb) = (a.shares(), b.shares());
    let mut sum: f64 = sa.iter().map(|(l, x)| (x - b.share_of(l)).abs()).sum();
    sum += sb
        .iter()
        .filter(|(l, _)| !sa.iter().any(|(m, _)| m == l))
        .map(|(_, y)| y)
        .sum::<f64>();
    sum / 2.0
}

/// Judges `color`'s answers against the baseline; `Some` is the reason for a rollback.
pub fn judge(
    q: &Quality,
    window: Duration,
    color: &str,
    answers: &QualitySummary,
    stable: &str,
    baseline: Option<&Baseline>,
) -> Option<String> {
    let n = answers.samples();
    if n < q.min_samples {
        return None;
    }
    let over = humantime::format_duration(window);
    if answers.invalid_rate() > q.max_invalid_rate {
        return Some(format!(
            "invalid answers {:.2} > {} over {over} ({n} answers, {} not JSON or without {})",
            answers.invalid_rate(),
            q.max_invalid_rate,
            answers.invalid,
            q.prediction
        ));
    }
    let base = baseline?;
    let stable_name = match base.frozen {
        true => format!("{stable} (frozen baseline)"),
        false => stable.to_owned(),
    };
    let shift = label_shift(answers, &base.answers);
    if answers.valid > 0 && base.answers.valid > 0 && shift > q.max_label_shift {
        // The labels in the sentence: stable's in its order, then any only the candidate has.
        let mut order: Vec<&str> = base
            .answers
            .labels
            .iter()
            .map(|(l, _)| l.as_str())
            .collect();
        for (l, _) in &answers.labels {
            if !order.contains(&l.as_str()) {
                order.push(l);
            }
        }
        order.truncate(6);
        return Some(format!(
            "label shift {shift:.2} > {} over {over} ({n} answers): {stable_name} {}, {color} {}",
            q.max_label_shift,
            base.answers.describe(&order),
            answers.describe(&order)
        ));
    }
    if let (Some(mine), Some(theirs)) = (answers.mean_score, base.answers.mean_score) {
        let diff = (mine - theirs).abs();
        if diff > q.max_score_shift {
            return Some(format!(
                "score shift {diff:.2} > {} over {over} ({n} answers): {stable_name} mean {theirs:.2}, {color} mean {mine:.2}",
                q.max_score_shift
            ));
        }
    }
    None
}

/// Judges a shadow color's agreement with the served answers; `Some` is the reason for a
/// rollback. `by_label`: answers were compared by label, else by status class.
pub fn agreement(
    min_agreement: f64,
    min_samples: u64,
    window: Duration,
    shadow: &ShadowCounts,
    by_label: bool,
) -> Option<String> {
    let n = shadow.compared();
    let share = shadow.agreement()?;
    if n < min_samples || share >= min_agreement {
        return None;
    }
    Some(format!(
        "agreement {share:.2} < {min_agreement} over {} ({n} compared answers): {} of the mirrored answers' {} differed from the served ones",
        humantime::format_duration(window),
        shadow.mismatched,
        if by_label { "labels" } else { "status classes" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pointer;

    fn q(min_samples: u64) -> Quality {
        Quality {
            prediction: Pointer::parse("/prediction").unwrap(),
            score: Pointer::parse("/confidence").ok(),
            max_label_shift: 0.2,
            max_score_shift: 0.1,
            max_invalid_rate: 0.05,
            min_samples,
            max_body: 1 << 20,
        }
    }

    fn answers(pos: u64, neg: u64, invalid: u64, score: Option<f64>) -> QualitySummary {
        let mut labels = vec![("positive".into(), pos), ("negative".into(), neg)];
        labels.retain(|(_, n)| *n > 0);
        labels.sort_by_key(|l| std::cmp::Reverse(l.1));
        QualitySummary {
            valid: pos + neg,
            invalid,
            skipped: 0,
            labels,
            mean_score: score,
        }
    }

    fn live(a: QualitySummary) -> Baseline {
        Baseline {
            answers: a,
            frozen: false,
        }
    }

    const W: Duration = Duration::from_secs(30);

    #[test]
    fn the_same_mix_passes_and_a_flipped_one_is_a_label_shift() {
        let stable = live(answers(71, 29, 0, Some(0.87)));
        let same = answers(68, 32, 0, Some(0.9));
        assert_eq!(
            judge(&q(100), W, "green", &same, "blue", Some(&stable)),
            None
        );
        let flipped = answers(12, 88, 0, Some(0.87));
        let why = judge(&q(100), W, "green", &flipped, "blue", Some(&stable)).unwrap();
        assert_eq!(
            why,
            "label shift 0.59 > 0.2 over 30s (100 answers): blue positive 71% negative 29%, green positive 12% negative 88%"
        );
    }

    #[test]
    fn labels_only_one_side_has_count_fully() {
        let a = answers(50, 50, 0, None);
        let mut b = answers(50, 0, 0, None);
        b.labels.push(("neutral".into(), 50));
        b.valid = 100;
        assert!((label_shift(&a, &b) - 0.5).abs() < 1e-9);
        assert!((label_shift(&b, &a) - 0.5).abs() < 1e-9);
        assert_eq!(label_shift(&a, &a), 0.0);
    }

    #[test]
    fn a_score_shift_alone_triggers() {
        let stable = live(answers(70, 30, 0, Some(0.87)));
        let why = judge(
            &q(100),
            W,
            "green",
            &answers(70, 30, 0, Some(0.55)),
            "blue",
            Some(&stable),
        );
        assert_eq!(
            why.unwrap(),
            "score shift 0.32 > 0.1 over 30s (100 answers): blue mean 0.87, green mean 0.55"
        );
        // No score on either side: nothing to compare.
        let no_score = live(answers(70, 30, 0, None));
        assert_eq!(
            judge(
                &q(100),
                W,
                "green",
                &answers(70, 30, 0, Some(0.1)),
                "blue",
                Some(&no_score)
            ),
            None
        );
    }

    #[test]
    fn invalid_answers_need_no_baseline() {
        let why = judge(&q(100), W, "green", &answers(60, 0, 40, None), "blue", None).unwrap();
        assert_eq!(
            why,
            "invalid answers 0.40 > 0.05 over 30s (100 answers, 40 not JSON or without /prediction)"
        );
        assert_eq!(
            judge(&q(100), W, "green", &answers(96, 0, 4, None), "blue", None),
            None
        );
    }

    #[test]
    fn below_min_samples_nothing_judges() {
        let stable = live(answers(71, 29, 0, None));
        assert_eq!(
            judge(
                &q(100),
                W,
                "green",
                &answers(0, 60, 39, None),
                "blue",
                Some(&stable)
            ),
            None
        );
        assert!(judge(
            &q(99),
            W,
            "green",
            &answers(0, 60, 39, None),
            "blue",
            Some(&stable)
        )
        .is_some());
    }

    #[test]
    fn agreement_below_the_limit_with_enough_compared_answers_is_a_breach() {
        let counts = |matched, mismatched| ShadowCounts {
            mirrored: matched + mismatched + 7,
            matched,
            mismatched,
            errors: 5,
            skipped: 2,
        };
        assert_eq!(agreement(0.9, 100, W, &counts(95, 5), true), None);
        assert_eq!(
            agreement(0.9, 100, W, &counts(50, 49), true),
            None,
            "99 < min_samples"
        );
        assert_eq!(
            agreement(0.9, 100, W, &counts(42, 58), true).unwrap(),
            "agreement 0.42 < 0.9 over 30s (100 compared answers): 58 of the mirrored answers' labels differed from the served ones"
        );
        assert!(agreement(0.9, 100, W, &counts(0, 100), false)
            .unwrap()
            .contains("status classes"));
        assert_eq!(
            agreement(0.9, 1, W, &ShadowCounts::default(), true),
            None,
            "nothing compared"
        );
    }

    #[test]
    fn the_baseline_freezes_when_stable_serves_too_little_and_thaws_when_it_serves_again() {
        let enough = answers(70, 30, 0, None);
        let b = Baseline::update(None, enough.clone(), 100).unwrap();
        assert_eq!(b, live(enough.clone()));
        // The candidate goes to 100%: stable's window empties, the last good one is kept.
        let frozen = Baseline::update(Some(b), answers(3, 1, 0, None), 100).unwrap();
        assert!(frozen.frozen);
        assert_eq!(frozen.answers, enough);
        let still = Baseline::update(Some(frozen), answers(0, 0, 0, None), 100).unwrap();
        assert_eq!(still.answers, enough);
        // A flipped candidate is still judged against it, and the sentence says so.
        let why = judge(
            &q(100),
            W,
            "green",
            &answers(10, 90, 0, None),
            "blue",
            Some(&still),
        )
        .unwrap();
        assert!(why.contains("blue (frozen baseline) positive 70%"), "{why}");
        // Stable serves enough again: its live answers replace the frozen ones.
        let fresh = answers(50, 50, 0, None);
        assert_eq!(
            Baseline::update(Some(still), fresh.clone(), 100),
            Some(live(fresh))
        );
        // Never enough: no baseline, so only the invalid share can judge.
        assert_eq!(Baseline::update(None, answers(1, 1, 0, None), 100), None);
    }
}
