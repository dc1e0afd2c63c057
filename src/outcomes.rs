//! Passive outcome tracking per color: requests, errors and a latency histogram over a sliding
//! window of one-second buckets.
//!
//! The request path only locks the current bucket to add one sample; the supervisor rotates
//! buckets once a second and sums the ones inside the window when it judges a color.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(1);

/// Latencies are recorded in microseconds, from 1 µs to one hour, 2 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid")
}

struct Bucket {
    start: Instant,
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Bucket {
    fn new(start: Instant, latency: Histogram<u64>) -> Self {
        Bucket {
            start,
            requests: 0,
            errors: 0,
            latency,
        }
    }
}

/// A sliding window of outcomes for one color.
pub struct Outcomes {
    inner: Mutex<Window>,
}

struct Window {
    current: Bucket,
    past: VecDeque<Bucket>,
}

/// Totals over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Requests that finished in the window.
    pub requests: u64,
    /// Of those, 5xx responses and proxy errors.
    pub errors: u64,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl Summary {
    /// Errors over requests (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

impl Outcomes {
    /// An empty window starting now.
    pub fn new(now: Instant) -> Self {
        Outcomes {
            inner: Mutex::new(Window {
                current: Bucket::new(now, histogram()),
                past: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one finished request.
    pub fn record(&self, error: bool, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut w = self.lock();
        w.current.requests += 1;
        w.current.errors += u64::from(error);
        w.current.latency.saturating_record(micros);
    }

    /// Records an attempt that failed before any response, e.g. a refused connect that another
    /// color then rescued: it counts against this color's error rate, not its latency.
    pub fn record_failed_attempt(&self) {
        let mut w = self.lock();
        w.current.requests += 1;
        w.current.errors += 1;
    }

    /// Closes the current bucket if it is a bucket old, and forgets buckets outside `keep`.
    pub fn rotate(&self, now: Instant, keep: Duration) {
        let mut w = self.lock();
        if now.duration_since(w.current.start) >= BUCKET {
            // Reuse the oldest bucket's histogram when one falls out of the window.
            let mut spare = None;
            while w
                .past
                .front()
                .is_some_and(|b| now.duration_since(b.start) > keep)
            {
                spare = w.past.pop_front().map(|b| b.latency);
            }
            let mut latency = spare.unwrap_or_else(histogram);
            latency.reset();
            let closed = std::mem::replace(&mut w.current, Bucket::new(now, latency));
            w.past.push_back(closed);
        }
    }

    /// Totals over the last `window`, current bucket included.
    pub fn summary(&self, now: Instant, window: Duration) -> Summary {
        let w = self.lock();
        let mut requests = 0;
        let mut errors = 0;
        let mut merged = histogram();
        let inside = w
            .past
            .iter()
            .filter(|b| now.duration_since(b.start) <= window);
        for b in inside.chain(std::iter::once(&w.current)) {
            requests += b.requests;
            errors += b.errors;
            let _ = merged.add(&b.latency);
        }
        let p99 = if merged.is_empty() {
            0
        } else {
            merged.value_at_quantile(0.99)
        };
        Summary {
            requests,
            errors,
            p99: Duration::from_micros(p99),
        }
    }

    /// Forgets everything (a color that was changed or resumed starts with a clean slate).
    pub fn clear(&self, now: Instant) {
        let mut w = self.lock();
        w.past.clear();
        w.current.requests = 0;
        w.current.errors = 0;
        w.current.latency.reset();
        w.current.start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_p99_inside_the_window() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        for i in 0..100 {
            o.record(
                i % 10 == 0,
                Duration::from_millis(if i < 98 { 10 } else { 900 }),
            );
        }
        let s = o.summary(t0, Duration::from_secs(30));
        assert_eq!((s.requests, s.errors), (100, 10));
        assert!((s.error_rate() - 0.1).abs() < 1e-9);
        assert!(s.p99 >= Duration::from_millis(890), "p99 {:?}", s.p99);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        o.record(true, Duration::from_millis(5));
        for s in 1..=40 {
            o.rotate(t0 + Duration::from_secs(s), Duration::from_secs(30));
        }
        o.record(false, Duration::from_millis(5));
        let s = o.summary(t0 + Duration::from_secs(40), Duration::from_secs(30));
        assert_eq!((s.requests, s.errors), (1, 0));
    }

    #[test]
    fn clear_forgets_everything() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        o.record(true, Duration::from_millis(5));
        o.rotate(t0 + Duration::from_secs(1), Duration::from_secs(30));
        o.record(true, Duration::from_millis(5));
        o.clear(t0 + Duration::from_secs(2));
        assert_eq!(
            o.summary(t0 + Duration::from_secs(2), Duration::from_secs(30))
                .requests,
            0
        );
    }
}
