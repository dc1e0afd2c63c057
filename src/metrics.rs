//! Every Prometheus metric blueshift exports, defined once, in the default registry.
//!
//! The request path never formats a label: [`ColorMetrics`] holds pre-resolved handles for a
//! color, and status codes resolve lazily into a fixed table the first time each is seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    TextEncoder,
};

/// Label used on per-request metrics when no color was chosen (e.g. an unknown override).
pub const NO_COLOR: &str = "none";

/// Latency buckets in seconds, from a fast model to a slow generative one.
const DURATION_BUCKETS: &[f64] = &[
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

/// The rollout states, in the order the contract lists them.
pub const STATES: [&str; 5] = ["steady", "progressing", "paused", "promoted", "rolled_back"];

/// Pre-resolved per-request handles for one color.
pub struct ColorMetrics {
    name: String,
    by_status: Box<[OnceLock<IntCounter>]>,
    errors: IntCounter,
    duration: Histogram,
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

/// Counts a rollback of `color` for a reason kind (`unhealthy`, `error_rate`, `latency`, `manual`).
pub fn rolled_back(color: &str, reason: &str) {
    ROLLBACKS.with_label_values(&[color, reason]).inc();
}

/// Makes the rollback counter of a color visible before its first rollback.
pub fn touch_rollbacks(color: &str) {
    for reason in ["unhealthy", "error_rate", "latency", "manual"] {
        ROLLBACKS.with_label_values(&[color, reason]).inc_by(0);
    }
}

/// Counts a reload attempt.
pub fn reloaded(ok: bool) {
    RELOADS
        .with_label_values(&[if ok { "ok" } else { "error" }])
        .inc();
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
