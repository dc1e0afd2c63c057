//! Every Prometheus metric blueshift exports, defined once, in the default registry.
//!
//! The request path never formats a label: [`ColorMetrics`] holds pre-resolved handles for a
//! color, and status codes resolve lazily into a fixed table the first time each is seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::judge::answer::Answer;
use crate::judge::compare::Outcome;
use crate::judge::counts::{AnswerCounts, MAX_LABELS, OTHER_LABEL};

/// The outcomes in the order of [`Outcome`]'s variants.
const SHADOW_OUTCOMES: [Outcome; 4] = [
    Outcome::Match,
    Outcome::Mismatch,
    Outcome::Error,
    Outcome::Skipped,
];
use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    TextEncoder,
};

/// Label used on per-request metrics when no color was chosen (e.g. an unknown override).
pub const NO_COLOR: &str = "none";

/// Latency buckets in seconds, from a fast model to a slow generative one.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

macro_rules! metric {
    ($name:ident: $ty:ty = $reg:ident!($($arg:tt)*)) => {
        static $name: Lazy<$ty> = Lazy::new(|| $reg!($($arg)*).expect("metric registered once"));
    };
}

metric!(REQUESTS: IntCounterVec = register_int_counter_vec!(
    "blueshift_requests_total", "Proxied requests by color and HTTP status (`error` when no response was sent).", &["color", "status"]));
metric!(DURATION: HistogramVec = register_histogram_vec!(
    "blueshift_request_duration_seconds", "Time from request start to the end of the response, by color.", &["color"], DURATION_BUCKETS.to_vec()));
metric!(BACKEND_HEALTHY: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_backend_healthy", "1 if the backend passes its active health checks, else 0.", &["color", "backend"]));
metric!(COLOR_WEIGHT: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_color_weight", "Effective percent of new sessions sent to the color, after health, rollback and rollout.", &["color"]));
metric!(ROLLOUT_STATE: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_rollout_state", "1 on the current rollout state, 0 on the others.", &["state"]));
metric!(ROLLBACKS: IntCounterVec = register_int_counter_vec!(
    "blueshift_rollbacks_total", "Colors rolled back, by color and reason kind.", &["color", "reason"]));
metric!(RELOADS: IntCounterVec = register_int_counter_vec!(
    "blueshift_policy_reloads_total", "Policy reload attempts by result.", &["result"]));
metric!(REVISION: IntGauge = register_int_gauge!(
    "blueshift_policy_revision", "Number of applied policy changes since start."));
metric!(FIRST_BYTE: HistogramVec = register_histogram_vec!(
    "blueshift_time_to_first_byte_seconds", "Time from request start to the first byte of the answer's body (the first token of a stream), by color.", &["color"], DURATION_BUCKETS.to_vec()));
metric!(PREDICTIONS: IntCounterVec = register_int_counter_vec!(
    "blueshift_predictions_total", "Predicted labels read from answers, by color and label (at most 32 labels per color, the rest as `other`).", &["color", "label"]));
metric!(SCORE: HistogramVec = register_histogram_vec!(
    "blueshift_prediction_score", "Scores read from answers, by color.", &["color"], SCORE_BUCKETS.to_vec()));
metric!(INSPECTED: IntCounterVec = register_int_counter_vec!(
    "blueshift_answers_inspected_total", "Answers read by the quality gates, by color and result (valid, invalid, skipped).", &["color", "result"]));
metric!(CERT_EXPIRY: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_tls_certificate_expiry_seconds", "When the certificate a TLS listener serves expires (Unix time).", &["listener"]));
metric!(GRPC: IntCounterVec = register_int_counter_vec!(
    "blueshift_grpc_responses_total", "gRPC calls by color and final grpc-status (OK, UNAVAILABLE, ...).", &["color", "code"]));
metric!(SHADOW: IntCounterVec = register_int_counter_vec!(
    "blueshift_shadow_requests_total", "Mirrored requests by shadow color and outcome (match, mismatch, error, skipped).", &["color", "outcome"]));

/// A color's counters since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Requests answered or failed.
    pub requests: u64,
    /// Of those, 5xx answers and proxy errors.
    pub errors: u64,
    /// Cumulative counts at each of [`DURATION_BUCKETS`], then the total count.
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

/// Score buckets: most models score in 0..1.
const SCORE_BUCKETS: &[f64] = &[
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0,
];

/// The rollout states, in the order the contract lists them.
pub const STATES: [&str; 5] = ["steady", "progressing", "paused", "promoted", "rolled_back"];

/// Pre-resolved per-request handles for one color.
pub struct ColorMetrics {
    name: String,
    by_status: Box<[OnceLock<IntCounter>]>,
    errors: IntCounter,
    duration: Histogram,
    first_byte: Histogram,
    /// `valid`, `invalid`, `skipped`.
    inspected: [IntCounter; 3],
    score: Histogram,
    /// The color's label table: index = position, at most [`MAX_LABELS`].
    labels: RwLock<Vec<(Box<str>, IntCounter)>>,
    other: IntCounter,
    /// `match`, `mismatch`, `error`, `skipped`.
    shadow: [IntCounter; 4],
    /// By gRPC status code, created on first use.
    grpc: [OnceLock<IntCounter>; 17],
}

static COLORS: Lazy<Mutex<HashMap<String, Arc<ColorMetrics>>>> = Lazy::new(Default::default);

impl ColorMetrics {
    /// The handles for `color`, created on first use and shared across reloads.
    pub fn get(color: &str) -> Arc<ColorMetrics> {
        let mut map = COLORS.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(color.to_owned())
            .or_insert_with(|| {
                Arc::new(ColorMetrics {
                    name: color.to_owned(),
                    by_status: (100..600).map(|_| OnceLock::new()).collect(),
                    errors: REQUESTS.with_label_values(&[color, "error"]),
                    duration: DURATION.with_label_values(&[color]),
                    first_byte: FIRST_BYTE.with_label_values(&[color]),
                    inspected: ["valid", "invalid", "skipped"]
                        .map(|r| INSPECTED.with_label_values(&[color, r])),
                    score: SCORE.with_label_values(&[color]),
                    labels: RwLock::new(Vec::new()),
                    other: PREDICTIONS.with_label_values(&[color, OTHER_LABEL]),
                    shadow: SHADOW_OUTCOMES.map(|o| SHADOW.with_label_values(&[color, o.label()])),
                    grpc: Default::default(),
                })
            })
            .clone()
    }

    /// Counts one request: `status` is `None` when no response reached the client.
    pub fn observe(&self, status: Option<u16>, seconds: f64) {
        let counter = match status {
            Some(s @ 100..=599) => self.by_status[usize::from(s - 100)].get_or_init(|| {
                // Once per (color, status): the only place a label is formatted.
                REQUESTS.with_label_values(&[&self.name, &s.to_string()])
            }),
            _ => &self.errors,
        };
        counter.inc();
        self.duration.observe(seconds);
    }

    /// Time to the first byte of an answer's body.
    pub fn observe_first_byte(&self, seconds: f64) {
        self.first_byte.observe(seconds);
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
                    self.score.observe(*s);
                }
                c.score_sum = scores.iter().sum();
                c.scores = scores.len() as u64;
                self.inspected[0].inc();
            }
            Answer::Invalid => {
                c.invalid = 1;
                self.inspected[1].inc();
            }
            Answer::Skipped => {
                c.skipped = 1;
                self.inspected[2].inc();
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
                self.other.inc();
                return MAX_LABELS;
            }
        }
        let mut table = self.labels.write().unwrap_or_else(|e| e.into_inner());
        let i = match find(&table) {
            Some(i) => i,
            None if table.len() < MAX_LABELS => {
                // Once per (color, label), at most 32 times per color.
                let counter = PREDICTIONS.with_label_values(&[&self.name, label]);
                table.push((label.into(), counter));
                table.len() - 1
            }
            None => {
                self.other.inc();
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
            .get_or_init(|| GRPC.with_label_values(&[&self.name, crate::judge::grpc::NAMES[i]]))
            .inc();
    }

    /// Counts how a mirror of this (shadow) color turned out.
    pub fn count_shadow(&self, outcome: Outcome) {
        self.shadow[outcome as usize].inc();
    }

    /// Makes the gRPC series visible from the first scrape (for colors that speak HTTP/2).
    pub fn touch_grpc(&self) {
        self.grpc[0]
            .get_or_init(|| GRPC.with_label_values(&[&self.name, crate::judge::grpc::NAMES[0]]))
            .inc_by(0);
    }

    /// Makes the shadow series visible from the first scrape.
    pub fn touch_shadow(&self) {
        for c in &self.shadow {
            c.inc_by(0);
        }
    }

    /// Makes the quality series visible from the first scrape.
    pub fn touch_answers(&self) {
        for c in &self.inspected {
            c.inc_by(0);
        }
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
            first_byte: cumulative(&self.first_byte),
            labels: labels
                .iter()
                .map(|(l, c)| (l.to_string(), c.get()))
                .collect(),
            invalid: self.inspected[1].get(),
            matched: self.shadow[0].get(),
            mismatched: self.shadow[1].get(),
        }
    }

    /// Makes the color's series visible from the first scrape.
    pub fn touch(&self) {
        self.errors.inc_by(0);
        self.by_status[100].get_or_init(|| REQUESTS.with_label_values(&[&self.name, "200"]));
    }
}

/// Sets the effective weight gauge of a color.
pub fn set_weight(color: &str, percent: u32) {
    COLOR_WEIGHT
        .with_label_values(&[color])
        .set(i64::from(percent));
}

/// Drops the series of a color that a reload removed.
pub fn forget_color(color: &str) {
    let _ = COLOR_WEIGHT.remove_label_values(&[color]);
}

/// Sets a backend's health gauge.
pub fn set_backend_healthy(color: &str, backend: &str, healthy: bool) {
    BACKEND_HEALTHY
        .with_label_values(&[color, backend])
        .set(i64::from(healthy));
}

/// Drops a backend's health series.
pub fn forget_backend(color: &str, backend: &str) {
    let _ = BACKEND_HEALTHY.remove_label_values(&[color, backend]);
}

/// Puts the rollout-state gauge on `state`.
pub fn set_state(state: &str) {
    for s in STATES {
        ROLLOUT_STATE
            .with_label_values(&[s])
            .set(i64::from(s == state));
    }
}

/// Counts a rollback of `color` for a reason kind (`unhealthy`, `error_rate`, `latency`,
/// `quality`, `manual`).
pub fn rolled_back(color: &str, reason: &str) {
    ROLLBACKS.with_label_values(&[color, reason]).inc();
}

/// Makes the rollback counter of a color visible before its first rollback.
pub fn touch_rollbacks(color: &str) {
    for reason in ["unhealthy", "error_rate", "latency", "quality", "manual"] {
        ROLLBACKS.with_label_values(&[color, reason]).inc_by(0);
    }
}

/// Counts a reload attempt.
pub fn reloaded(ok: bool) {
    RELOADS
        .with_label_values(&[if ok { "ok" } else { "error" }])
        .inc();
}

/// Sets when a TLS listener's certificate expires.
pub fn set_certificate_expiry(listener: &str, not_after: std::time::SystemTime) {
    let secs = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CERT_EXPIRY
        .with_label_values(&[listener])
        .set(i64::try_from(secs).unwrap_or(i64::MAX));
}

/// Sets the revision gauge.
pub fn set_revision(revision: u64) {
    REVISION.set(i64::try_from(revision).unwrap_or(i64::MAX));
}

/// Registers every series that should exist before any event happens.
pub fn init() {
    Lazy::force(&REVISION);
    for result in ["ok", "error"] {
        RELOADS.with_label_values(&[result]).inc_by(0);
    }
    ColorMetrics::get(NO_COLOR).errors.inc_by(0);
}

/// The default registry in Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    // Encoding into a Vec only fails on invalid metric families, which `register_*` rejects.
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    out
}
