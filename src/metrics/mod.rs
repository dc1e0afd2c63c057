//! Every Prometheus metric blueshift exports, defined once, in the default registry. Every
//! series about a color carries its `route` too.
//!
//! The request path never formats a label: [`ColorMetrics`] holds pre-resolved handles for a
//! route's color, and status codes resolve lazily into a fixed table the first time each is seen.

mod color;

pub use color::{ColorMetrics, Totals};

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    Encoder, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, TextEncoder,
};

use crate::judge::Kind;

/// The `route` of requests no route took, and the `color` of requests that got none (an
/// unknown override, say).
pub const NONE: &str = "none";

/// Latency buckets in seconds, from a fast model to a slow generative one.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Score buckets: most models score in 0..1.
const SCORE_BUCKETS: &[f64] = &[
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0,
];

macro_rules! metric {
    ($name:ident: $ty:ty = $reg:ident!($($arg:tt)*)) => {
        static $name: Lazy<$ty> = Lazy::new(|| $reg!($($arg)*).expect("metric registered once"));
    };
}

metric!(REQUESTS: IntCounterVec = register_int_counter_vec!(
    "blueshift_requests_total", "Proxied requests by route, color and HTTP status (`error` when no response was sent).", &["route", "color", "status"]));
metric!(DURATION: HistogramVec = register_histogram_vec!(
    "blueshift_request_duration_seconds", "Time from request start to the end of the response, by route and color.", &["route", "color"], DURATION_BUCKETS.to_vec()));
metric!(BACKEND_HEALTHY: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_backend_healthy", "1 if the backend passes its active health checks, else 0.", &["route", "color", "backend"]));
metric!(COLOR_WEIGHT: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_color_weight", "Effective percent of new sessions sent to the color, after health, rollback and rollout.", &["route", "color"]));
metric!(ROLLOUT_STATE: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_rollout_state", "1 on the route's current rollout state, 0 on the others.", &["route", "state"]));
metric!(ROLLBACKS: IntCounterVec = register_int_counter_vec!(
    "blueshift_rollbacks_total", "Colors rolled back, by route, color and reason kind.", &["route", "color", "reason"]));
metric!(RELOADS: IntCounterVec = register_int_counter_vec!(
    "blueshift_policy_reloads_total", "Policy reload attempts by result.", &["result"]));
metric!(REVISION: IntGauge = register_int_gauge!(
    "blueshift_policy_revision", "Number of applied policy changes since start."));
metric!(FIRST_BYTE: HistogramVec = register_histogram_vec!(
    "blueshift_time_to_first_byte_seconds", "Time from request start to the first byte of the answer's body (the first token of a stream), by route and color.", &["route", "color"], DURATION_BUCKETS.to_vec()));
metric!(PREDICTIONS: IntCounterVec = register_int_counter_vec!(
    "blueshift_predictions_total", "Predicted labels read from answers, by route, color and label (at most 32 labels per color, the rest as `other`).", &["route", "color", "label"]));
metric!(SCORE: HistogramVec = register_histogram_vec!(
    "blueshift_prediction_score", "Scores read from answers, by route and color.", &["route", "color"], SCORE_BUCKETS.to_vec()));
metric!(INSPECTED: IntCounterVec = register_int_counter_vec!(
    "blueshift_answers_inspected_total", "Answers read by the quality gates, by route, color and result (valid, invalid, skipped).", &["route", "color", "result"]));
metric!(CERT_EXPIRY: IntGaugeVec = register_int_gauge_vec!(
    "blueshift_tls_certificate_expiry_seconds", "When the certificate a TLS listener serves expires (Unix time).", &["listener"]));
metric!(GRPC: IntCounterVec = register_int_counter_vec!(
    "blueshift_grpc_responses_total", "gRPC calls by route, color and final grpc-status (OK, UNAVAILABLE, ...).", &["route", "color", "code"]));
metric!(SHADOW: IntCounterVec = register_int_counter_vec!(
    "blueshift_shadow_requests_total", "Mirrored requests by route, shadow color and outcome (match, mismatch, error, skipped).", &["route", "color", "outcome"]));

/// Sets the effective weight gauge of a route's color.
pub fn set_weight(route: &str, color: &str, percent: u32) {
    COLOR_WEIGHT
        .with_label_values(&[route, color])
        .set(i64::from(percent));
}

/// Drops the weight series of a color that a reload removed.
pub fn forget_color(route: &str, color: &str) {
    let _ = COLOR_WEIGHT.remove_label_values(&[route, color]);
}

/// Sets a backend's health gauge.
pub fn set_backend_healthy(route: &str, color: &str, backend: &str, healthy: bool) {
    BACKEND_HEALTHY
        .with_label_values(&[route, color, backend])
        .set(i64::from(healthy));
}

/// Drops a backend's health series.
pub fn forget_backend(route: &str, color: &str, backend: &str) {
    let _ = BACKEND_HEALTHY.remove_label_values(&[route, color, backend]);
}

/// Puts a route's rollout-state gauge on `state`.
pub fn set_state(route: &str, state: crate::judge::StateName) {
    for s in crate::judge::StateName::ALL {
        ROLLOUT_STATE
            .with_label_values(&[route, s.as_str()])
            .set(i64::from(s == state));
    }
}

/// Drops the rollout-state series of a route that a reload removed.
pub fn forget_route(route: &str) {
    for s in crate::judge::StateName::ALL {
        let _ = ROLLOUT_STATE.remove_label_values(&[route, s.as_str()]);
    }
}

/// Counts a rollback of a route's color for a reason kind.
pub fn rolled_back(route: &str, color: &str, kind: Kind) {
    ROLLBACKS
        .with_label_values(&[route, color, kind.label()])
        .inc();
}

/// Makes the rollback counter of a color visible before its first rollback.
pub fn touch_rollbacks(route: &str, color: &str) {
    for kind in Kind::ALL {
        ROLLBACKS
            .with_label_values(&[route, color, kind.label()])
            .inc_by(0);
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
    ColorMetrics::get(NONE, NONE).touch_errors();
}

/// The default registry in Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    // Encoding into a Vec only fails on invalid metric families, which `register_*` rejects.
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    out
}
