//! The rollback judge of a color's outcome window: error rate and p99 latency.

use std::time::Duration;

use super::Kind;
use crate::config::RollbackLimits;
use crate::judge::window::Summary;

/// Judges one color's recent outcomes; `Some` is a breach worth a rollback.
pub fn judge(limits: &RollbackLimits, s: &Summary) -> Option<(Kind, String)> {
    let window = humantime::format_duration(limits.window);
    let limit = humantime::format_duration(limits.max_p99_latency);
    if s.requests >= limits.min_requests {
        if s.error_rate() > limits.max_error_rate {
            return Some((
                Kind::ErrorRate,
                format!(
                    "error rate {:.2} > {} over {window} ({} requests)",
                    s.error_rate(),
                    limits.max_error_rate,
                    s.requests
                ),
            ));
        }
        if s.p99 > limits.max_p99_latency {
            return Some((
                Kind::Latency,
                format!(
                    "p99 latency {} > {limit} over {window} ({} requests)",
                    humantime::format_duration(Duration::from_millis(s.p99.as_millis() as u64)),
                    s.requests
                ),
            ));
        }
    }
    // A hung model answers nothing to judge: the requests waiting on it past the limit count as
    // slower than it, so more than 1% of them (with the slow answers) is a p99 over the limit.
    let total = s.requests + s.stuck;
    if s.stuck > 0 && total >= limits.min_requests && (s.slow + s.stuck) * 100 > total {
        return Some((
            Kind::Latency,
            format!(
                "p99 latency > {limit} over {window}: {} requests waiting longer, {} answered slower ({total} requests)",
                s.stuck, s.slow,
            ),
        ));
    }
    None
}
