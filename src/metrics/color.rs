//! The per-request handles of one route's color: every label resolved once, so the request
//! path only increments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use once_cell::sync::Lazy;
use prometheus::{Histogram, IntCounter, IntCounterVec};

use super::{DURATION, FIRST_BYTE, GRPC, INSPECTED, PREDICTIONS, REQUESTS, SCORE, SHADOW};
use crate::judge::answer::Answer;
use crate::judge::compare::Outcome;
use crate::judge::counts::{AnswerCounts, MAX_LABELS, OTHER_LABEL};

/// A color's counters since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Requests answered or failed.
    pub requests: u64,
    /// Of those, 5xx answers and proxy errors.
    pub errors: u64,
    /// Cumulative counts at each of [`super::DURATION_BUCKETS`], then the total count.
    pub duration: Vec<u64>,
    /// The same for time to first byte.
    pub first_byte: Vec<u64>,
    /// Predictions by label.
    pub labels: Vec<(String, u64)>,
    /// Answers the quality gates found invalid.
    pub invalid: u64,
    /// Mirrored copies (of this shadow color) that agreed with the live answer.
    pub matched: u64,
    /// And those that disagreed.
    pub mismatched: u64,
}

/// Pre-resolved per-request handles for one color.
pub struct ColorMetrics {
    route: String,
    name: String,
    by_status: Box<[OnceLock<IntCounter>]>,
    errors: IntCounter,
    duration: Histogram,
    // The series below exist once used (or touched): a color without quality gates or a shadow,
    // and the `none` color of requests that got none, export none of them.
    first_byte: OnceLock<Histogram>,
    /// `valid`, `invalid`, `skipped`.
    inspected: OnceLock<[IntCounter; 3]>,
    score: OnceLock<Histogram>,
    /// The color's label table: index = position, at most [`MAX_LABELS`].
    labels: RwLock<Vec<(Box<str>, IntCounter)>>,
    other: OnceLock<IntCounter>,
    /// `match`, `mismatch`, `error`, `skipped`.
    shadow: OnceLock<[IntCounter; 4]>,
    /// By gRPC status code, created on first use.
    grpc: [OnceLock<IntCounter>; 17],
}

type Registry = HashMap<(String, String), Arc<ColorMetrics>>;

static COLORS: Lazy<Mutex<Registry>> = Lazy::new(Default::default);

impl ColorMetrics {
    /// The handles for a route's color, created on first use and shared across reloads.
    pub fn get(route: &str, color: &str) -> Arc<ColorMetrics> {
        let mut map = COLORS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((route.to_owned(), color.to_owned()))
            .or_insert_with(|| {
                let rc = [route, color];
                let with =
                    |v: &IntCounterVec, last: &str| v.with_label_values(&[route, color, last]);
                Arc::new(ColorMetrics {
                    route: route.to_owned(),
                    name: color.to_owned(),
                    by_status: (100..600).map(|_| OnceLock::new()).collect(),
                    errors: with(&REQUESTS, "error"),
                    duration: DURATION.with_label_values(&rc),
                    first_byte: OnceLock::new(),
                    inspected: OnceLock::new(),
                    score: OnceLock::new(),
                    labels: RwLock::new(Vec::new()),
                    other: OnceLock::new(),
                    shadow: OnceLock::new(),
                    grpc: Default::default(),
                })
            })
            .clone()
    }

    fn labels3(&self) -> [&str; 3] {
        [&self.route, &self.name, ""]
    }

    fn first_byte(&self) -> &Histogram {
        self.first_byte
            .get_or_init(|| FIRST_BYTE.with_label_values(&[&self.route, &self.name]))
    }

    fn inspected(&self) -> &[IntCounter; 3] {
        self.inspected
            .get_or_init(|| ["valid", "invalid", "skipped"].map(|r| self.counter(&INSPECTED, r)))
    }

    fn score(&self) -> &Histogram {
        self.score
            .get_or_init(|| SCORE.with_label_values(&[&self.route, &self.name]))
    }

    fn other(&self) -> &IntCounter {
        self.other
            .get_or_init(|| self.counter(&PREDICTIONS, OTHER_LABEL))
    }

    fn shadow(&self) -> &[IntCounter; 4] {
        self.shadow
            .get_or_init(|| Outcome::ALL.map(|o| self.counter(&SHADOW, o.label())))
    }

    /// This color's series of a counter with one more label.
    fn counter(&self, vec: &IntCounterVec, last: &str) -> IntCounter {
        let mut l = self.labels3();
        l[2] = last;
        vec.with_label_values(&l)
    }

    /// Counts one request: `status` is `None` when no response reached the client.
    pub fn observe(&self, status: Option<u16>, seconds: f64) {
        let counter = match status {
            Some(s @ 100..=599) => self.by_status[usize::from(s - 100)].get_or_init(|| {
                // Once per (color, status): the only place a label is formatted.
                REQUESTS.with_label_values(&[&self.route, &self.name, &s.to_string()])
            }),
            _ => &self.errors,
        };
        counter.inc();
        self.duration.observe(seconds);
    }

    /// Time to the first byte of an answer's body.
    pub fn observe_first_byte(&self, seconds: f64) {
        self.first_byte().observe(seconds);
    }

    /// Counts what an inspected answer said; returns it as window counts, labels by index.
    pub fn count_answer(&self, answer: &Answer) -> AnswerCounts {
        let mut c = AnswerCounts::default();
        match answer {
            Answer::Valid { labels, scores } => {
                c.valid = 1;
                for l in labels {
                    c.labels[self.label(l)] += 1;
                }
                for s in scores {
                    self.score().observe(*s);
                }
                c.score_sum = scores.iter().sum();
                c.scores = scores.len() as u64;
                self.inspected()[0].inc();
            }
            Answer::Invalid => {
                c.invalid = 1;
                self.inspected()[1].inc();
            }
            Answer::Skipped => {
                c.skipped = 1;
                self.inspected()[2].inc();
            }
        }
        c
    }

    /// The index of `label` in the color's table (added if there is room, else [`MAX_LABELS`],
    /// `other`), with its prediction counted.
    fn label(&self, label: &str) -> usize {
        let find = |t: &[(Box<str>, IntCounter)]| t.iter().position(|(l, _)| &**l == label);
        {
            let table = self.labels.read().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = find(&table) {
                table[i].1.inc();
                return i;
            }
            if table.len() >= MAX_LABELS {
                self.other().inc();
                return MAX_LABELS;
            }
        }
        let mut table = self.labels.write().unwrap_or_else(|e| e.into_inner());
        let i = match find(&table) {
            Some(i) => i,
            None if table.len() < MAX_LABELS => {
                // Once per (color, label), at most 32 times per color.
                let counter = PREDICTIONS.with_label_values(&[&self.route, &self.name, label]);
                table.push((label.into(), counter));
                table.len() - 1
            }
            None => {
                self.other().inc();
                return MAX_LABELS;
            }
        };
        table[i].1.inc();
        i
    }

    /// The color's labels, in index order.
    pub fn label_names(&self) -> Vec<String> {
        let table = self.labels.read().unwrap_or_else(|e| e.into_inner());
        table.iter().map(|(l, _)| l.to_string()).collect()
    }

    /// Counts a gRPC call that ended with `code`.
    pub fn count_grpc(&self, code: u8) {
        let i = usize::from(code).min(crate::judge::grpc::NAMES.len() - 1);
        self.grpc[i]
            .get_or_init(|| {
                GRPC.with_label_values(&[&self.route, &self.name, crate::judge::grpc::NAMES[i]])
            })
            .inc();
    }

    /// Counts how a mirror of this (shadow) color turned out.
    pub fn count_shadow(&self, outcome: Outcome) {
        self.shadow()[outcome as usize].inc();
    }

    /// Makes the gRPC series visible from the first scrape (for colors that speak HTTP/2).
    pub fn touch_grpc(&self) {
        self.grpc[0]
            .get_or_init(|| {
                GRPC.with_label_values(&[&self.route, &self.name, crate::judge::grpc::NAMES[0]])
            })
            .inc_by(0);
    }

    /// Makes the shadow series visible from the first scrape.
    pub fn touch_shadow(&self) {
        for c in self.shadow() {
            c.inc_by(0);
        }
    }

    /// Makes the quality series visible from the first scrape.
    pub fn touch_answers(&self) {
        for c in self.inspected() {
            c.inc_by(0);
        }
        self.other().inc_by(0);
        self.score();
    }

    /// The color's counters since start, for the history (read once a second, never on the
    /// request path).
    pub fn totals(&self) -> Totals {
        use prometheus::core::Metric;
        // One pass over the status table: all answers, and the 5xx among them (index = status - 100).
        let (mut all, mut fives) = (0, 0);
        for (i, c) in self.by_status.iter().enumerate() {
            let n = c.get().map_or(0, IntCounter::get);
            all += n;
            if i >= 400 {
                fives += n;
            }
        }
        let cumulative = |h: &Histogram| -> Vec<u64> {
            let m = h.metric();
            let mut v: Vec<u64> = m
                .get_histogram()
                .get_bucket()
                .iter()
                .map(|b| b.cumulative_count())
                .collect();
            v.push(m.get_histogram().get_sample_count());
            v
        };
        let labels = self.labels.read().unwrap_or_else(|e| e.into_inner());
        Totals {
            requests: all + self.errors.get(),
            errors: fives + self.errors.get(),
            duration: cumulative(&self.duration),
            first_byte: cumulative(self.first_byte()),
            labels: labels
                .iter()
                .map(|(l, c)| (l.to_string(), c.get()))
                .collect(),
            invalid: self.inspected.get().map_or(0, |c| c[1].get()),
            matched: self.shadow.get().map_or(0, |c| c[0].get()),
            mismatched: self.shadow.get().map_or(0, |c| c[1].get()),
        }
    }

    /// Makes the color's series visible from the first scrape.
    pub fn touch(&self) {
        self.errors.inc_by(0);
        self.first_byte();
        self.by_status[100]
            .get_or_init(|| REQUESTS.with_label_values(&[&self.route, &self.name, "200"]));
    }

    /// Makes the `error` series visible from the first scrape.
    pub fn touch_errors(&self) {
        self.errors.inc_by(0);
    }
}
