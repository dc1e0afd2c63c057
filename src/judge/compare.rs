//! Comparing a mirrored answer with the one the client got: a pure function.

use crate::judge::answer::Answer;

/// What the client got, as far as a comparison needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Status of the answer, `None` when no answer was given (an error or a client gone).
    pub status: Option<u16>,
    /// What the answer predicted, when it was read (`Skipped` stands for not read).
    pub answer: Answer,
}

/// How a mirror turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shadow answered as the client was answered.
    Match,
    /// It answered otherwise.
    Mismatch,
    /// It failed: no answer, or a 5xx.
    Error,
    /// Not compared: nothing to compare with, or not sent at all.
    Skipped,
}

impl Outcome {
    /// Every outcome, in the order of the variants.
    pub const ALL: [Outcome; 4] = [
        Outcome::Match,
        Outcome::Mismatch,
        Outcome::Error,
        Outcome::Skipped,
    ];

    /// The `outcome` label of `blueshift_shadow_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Compares the shadow's answer with the served one: by label when `by_label` (the quality
/// gates' `prediction`) and the served answer has one, else by status class (2xx, 4xx, ...).
pub fn compare(served: Option<&Seen>, shadow: Option<&Seen>, by_label: bool) -> Outcome {
    let Some(shadow) = shadow.filter(|s| s.status.is_some_and(|c| c < 500)) else {
        return Outcome::Error;
    };
    let Some(served) = served.filter(|s| s.status.is_some_and(|c| c < 500)) else {
        // The client got no answer, or an error: nothing says what the right answer was.
        return Outcome::Skipped;
    };
    let class = |s: &Seen| s.status.map(|c| c / 100);
    if by_label {
        if let Answer::Valid { labels: want, .. } = &served.answer {
            return match &shadow.answer {
                Answer::Valid { labels: got, .. } if same_labels(want, got) => Outcome::Match,
                Answer::Skipped if class(shadow) == class(served) => Outcome::Skipped,
                _ => Outcome::Mismatch,
            };
        }
    }
    match class(served) == class(shadow) {
        true => Outcome::Match,
        false => Outcome::Mismatch,
    }
}

/// Labels equal one for one; numbers equal within 1e-6.
fn same_labels(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x == y
                || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(x), Ok(y)) if (x - y).abs() <= 1e-6)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: u16, labels: &[&str]) -> Seen {
        Seen {
            status: Some(status),
            answer: match labels.is_empty() {
                true => Answer::Invalid,
                false => Answer::Valid {
                    labels: labels.iter().map(|s| s.to_string()).collect(),
                    scores: vec![],
                },
            },
        }
    }

    #[test]
    fn labels_decide_when_the_served_answer_has_one() {
        let served = seen(200, &["positive"]);
        assert_eq!(
            compare(Some(&served), Some(&seen(200, &["positive"])), true),
            Outcome::Match
        );
        assert_eq!(
            compare(Some(&served), Some(&seen(200, &["negative"])), true),
            Outcome::Mismatch
        );
        assert_eq!(
            compare(Some(&served), Some(&seen(200, &[])), true),
            Outcome::Mismatch,
            "an invalid answer disagrees"
        );
        assert_eq!(
            compare(Some(&served), Some(&seen(404, &[])), true),
            Outcome::Mismatch
        );
        let batch = seen(200, &["cat", "dog"]);
        assert_eq!(
            compare(Some(&batch), Some(&seen(200, &["cat", "dog"])), true),
            Outcome::Match
        );
        assert_eq!(
            compare(Some(&batch), Some(&seen(200, &["dog", "cat"])), true),
            Outcome::Mismatch
        );
    }

    #[test]
    fn numbers_agree_within_a_millionth() {
        let served = seen(200, &["0.5"]);
        assert_eq!(
            compare(Some(&served), Some(&seen(200, &["0.5000004"])), true),
            Outcome::Match
        );
        assert_eq!(
            compare(Some(&served), Some(&seen(200, &["0.50001"])), true),
            Outcome::Mismatch
        );
        assert_eq!(
            compare(Some(&seen(200, &["3"])), Some(&seen(200, &["3.0"])), true),
            Outcome::Match
        );
    }

    #[test]
    fn without_labels_status_classes_decide() {
        let ok = seen(200, &[]);
        assert_eq!(
            compare(Some(&ok), Some(&seen(201, &[])), false),
            Outcome::Match
        );
        assert_eq!(
            compare(Some(&ok), Some(&seen(404, &[])), false),
            Outcome::Mismatch
        );
        assert_eq!(
            compare(Some(&seen(404, &[])), Some(&seen(404, &[])), true),
            Outcome::Match
        );
        // With labels asked for but none in the served answer, classes decide too.
        assert_eq!(
            compare(Some(&ok), Some(&seen(200, &["x"])), true),
            Outcome::Match
        );
    }

    #[test]
    fn failures_are_errors_and_a_failed_served_answer_is_no_reference() {
        let ok = seen(200, &["a"]);
        assert_eq!(compare(Some(&ok), None, true), Outcome::Error);
        assert_eq!(
            compare(Some(&ok), Some(&seen(503, &[])), true),
            Outcome::Error
        );
        assert_eq!(compare(None, Some(&ok), true), Outcome::Skipped);
        assert_eq!(
            compare(Some(&seen(502, &[])), Some(&ok), true),
            Outcome::Skipped
        );
        let unread = Seen {
            status: Some(200),
            answer: Answer::Skipped,
        };
        assert_eq!(
            compare(Some(&ok), Some(&unread), true),
            Outcome::Skipped,
            "too large to read"
        );
    }
}
