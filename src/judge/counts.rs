//! What a color answered, counted per one-second bucket (alongside its requests in
//! the outcome windows, `window.rs`) and summed over the rollback window.

use std::fmt::Write;

/// Distinct labels kept per color; the rest are counted as [`OTHER_LABEL`].
pub const MAX_LABELS: usize = 32;

/// The label counted for labels past the first [`MAX_LABELS`].
pub const OTHER_LABEL: &str = "other";

/// Answer counts of one bucket, or of a whole window once summed. Labels are counted by their
/// index in the color's label table (index [`MAX_LABELS`] is `other`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerCounts {
    /// Answers with a prediction.
    pub valid: u64,
    /// 2xx answers that were not JSON or held no prediction.
    pub invalid: u64,
    /// Answers not inspected.
    pub skipped: u64,
    /// Count per label index.
    pub labels: [u64; MAX_LABELS + 1],
    /// Sum of the scores seen.
    pub score_sum: f64,
    /// Number of scores seen.
    pub scores: u64,
}

impl Default for AnswerCounts {
    fn default() -> Self {
        AnswerCounts {
            valid: 0,
            invalid: 0,
            skipped: 0,
            labels: [0; MAX_LABELS + 1],
            score_sum: 0.0,
            scores: 0,
        }
    }
}

impl AnswerCounts {
    /// Adds another bucket's counts.
    pub fn add(&mut self, o: &AnswerCounts) {
        self.valid += o.valid;
        self.invalid += o.invalid;
        self.skipped += o.skipped;
        for (a, b) in self.labels.iter_mut().zip(o.labels.iter()) {
            *a += b;
        }
        self.score_sum += o.score_sum;
        self.scores += o.scores;
    }

    /// Named counts and means, with `names` the color's label table (index order).
    pub fn summary(&self, names: &[String]) -> QualitySummary {
        let mut labels: Vec<(String, u64)> = self
            .labels
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                let name = match i {
                    MAX_LABELS => OTHER_LABEL.to_owned(),
                    i => names.get(i).cloned().unwrap_or_else(|| format!("#{i}")),
                };
                (name, *n)
            })
            .collect();
        labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        QualitySummary {
            valid: self.valid,
            invalid: self.invalid,
            skipped: self.skipped,
            labels,
            mean_score: (self.scores > 0).then(|| self.score_sum / self.scores as f64),
        }
    }
}

/// What a shadow color's mirrored answers did, compared with the answers the clients got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShadowCounts {
    /// Copies sent.
    pub mirrored: u64,
    /// Compared and equal.
    pub matched: u64,
    /// Compared and different.
    pub mismatched: u64,
    /// The mirror failed: no answer, or a 5xx.
    pub errors: u64,
    /// Not sent (the in-flight bound, a body over `max_body`), or nothing to compare with.
    pub skipped: u64,
}

impl ShadowCounts {
    /// Adds another bucket's counts.
    pub fn add(&mut self, o: &ShadowCounts) {
        self.mirrored += o.mirrored;
        self.matched += o.matched;
        self.mismatched += o.mismatched;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }

    /// Answers compared.
    pub fn compared(&self) -> u64 {
        self.matched + self.mismatched
    }

    /// Share of compared answers that agreed, if any were compared.
    pub fn agreement(&self) -> Option<f64> {
        (self.compared() > 0).then(|| self.matched as f64 / self.compared() as f64)
    }
}

/// A color's answers over a window, with labels by name.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySummary {
    /// Answers with a prediction.
    pub valid: u64,
    /// 2xx answers not JSON or without a prediction.
    pub invalid: u64,
    /// Answers not inspected.
    pub skipped: u64,
    /// Count per label, most frequent first.
    pub labels: Vec<(String, u64)>,
    /// Mean score, if any score was seen.
    pub mean_score: Option<f64>,
}

impl QualitySummary {
    /// Inspected answers: valid and invalid ones.
    pub fn samples(&self) -> u64 {
        self.valid + self.invalid
    }

    /// Share of inspected answers that were invalid (0 with none).
    pub fn invalid_rate(&self) -> f64 {
        match self.samples() {
            0 => 0.0,
            n => self.invalid as f64 / n as f64,
        }
    }

    /// Each label's share of all labels counted.
    pub fn shares(&self) -> Vec<(&str, f64)> {
        let total: u64 = self.labels.iter().map(|(_, n)| n).sum();
        self.labels
            .iter()
            .map(|(l, n)| (l.as_str(), *n as f64 / total.max(1) as f64))
            .collect()
    }

    /// The share of `label` (0 if never seen).
    pub fn share_of(&self, label: &str) -> f64 {
        self.shares()
            .into_iter()
            .find(|(l, _)| *l == label)
            .map_or(0.0, |(_, s)| s)
    }

    /// `positive 71% negative 29%` for the given labels, in that order.
    pub fn describe(&self, order: &[&str]) -> String {
        let mut s = String::new();
        for (i, l) in order.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{l} {:.0}%", self.share_of(l) * 100.0);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_labels_and_average_scores() {
        let mut a = AnswerCounts {
            valid: 3,
            invalid: 1,
            score_sum: 2.4,
            scores: 3,
            ..Default::default()
        };
        a.labels[0] = 2;
        a.labels[1] = 1;
        let mut b = AnswerCounts {
            valid: 1,
            ..Default::default()
        };
        b.labels[MAX_LABELS] = 1;
        a.add(&b);
        let s = a.summary(&["pos".into(), "neg".into()]);
        assert_eq!(s.samples(), 5);
        assert!((s.invalid_rate() - 0.2).abs() < 1e-9);
        assert_eq!(
            s.labels,
            vec![("pos".into(), 2), ("neg".into(), 1), ("other".into(), 1)]
        );
        assert!((s.mean_score.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(s.describe(&["pos", "neg", "cat"]), "pos 50% neg 25% cat 0%");
    }
}
