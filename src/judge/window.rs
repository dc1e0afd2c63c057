//! Passive outcome tracking per color: requests, errors, a latency histogram and, with quality
//! gates, what the answers said, over a sliding window of one-second buckets; and the requests
//! still in flight by when they started.
//!
//! The request path only locks the current bucket to add one sample; the supervisor rotates
//! buckets once a second and sums the ones inside the window when it judges a color. A model that
//! hangs answers nothing to sample, so the requests waiting on it are counted too: one that has
//! waited longer than the latency limit is known to be slower than it, answer or not.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::judge::counts::{AnswerCounts, ShadowCounts};
use crate::judge::Progress;

/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(1);

/// Latencies are recorded in microseconds, from 1 µs to one hour, 2 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 2).expect("static histogram bounds are valid")
}

const HIGHEST_MICROS: u64 = 3_600_000_000;

struct Bucket {
    start: Instant,
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
    answers: AnswerCounts,
    shadow: ShadowCounts,
}

impl Bucket {
    fn new(start: Instant, latency: Histogram<u64>) -> Self {
        Bucket {
            start,
            requests: 0,
            errors: 0,
            latency,
            answers: AnswerCounts::default(),
            shadow: ShadowCounts::default(),
        }
    }

    /// One finished request: its error, latency and, if it was inspected, what its answer said.
    fn add(&mut self, error: bool, latency: Duration, answer: Option<&AnswerCounts>) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.requests += 1;
        self.errors += u64::from(error);
        self.latency.saturating_record(micros);
        if let Some(a) = answer {
            self.answers.add(a);
        }
    }
}

/// Width of one slot of in-flight requests.
pub const SLOT: Duration = Duration::from_millis(100);

/// A sliding window of outcomes for one color.
pub struct Outcomes {
    inner: Mutex<Window>,
    /// Requests in flight, counted per [`SLOT`] they started in, oldest first.
    in_flight: Mutex<VecDeque<(Instant, u64)>>,
}

/// Where a request in flight was counted; hand it back to [`Outcomes::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started(Instant);

struct Window {
    current: Bucket,
    past: VecDeque<Bucket>,
    /// Since start, for rollout steps that wait for requests: never cleared.
    progress: Progress,
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
    /// Finished requests slower than the latency limit asked about.
    pub slow: u64,
    /// Requests still in flight that started longer than the latency limit ago.
    pub stuck: u64,
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
                progress: Progress::default(),
            }),
            in_flight: Mutex::new(VecDeque::new()),
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, u64)>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request that started at `at` as in flight until [`Outcomes::finish`].
    pub fn start(&self, at: Instant) -> Started {
        let mut f = self.in_flight();
        match f.back_mut() {
            Some((slot, n)) if at.saturating_duration_since(*slot) < SLOT => {
                *n += 1;
                Started(*slot)
            }
            _ => {
                f.push_back((at, 1));
                Started(at)
            }
        }
    }

    /// A request counted by [`Outcomes::start`] is over, answered or not.
    pub fn finish(&self, started: Started) {
        let mut f = self.in_flight();
        if let Some((_, n)) = f.iter_mut().rev().find(|(slot, _)| *slot == started.0) {
            *n = n.saturating_sub(1);
        }
        while f.front().is_some_and(|(_, n)| *n == 0) {
            f.pop_front();
        }
    }

    /// Requests in flight that started more than `longer_than` before `now`.
    pub fn stuck(&self, now: Instant, longer_than: Duration) -> u64 {
        self.in_flight()
            .iter()
            .take_while(|(slot, _)| now.saturating_duration_since(*slot + SLOT) > longer_than)
            .map(|(_, n)| n)
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one finished live request, and what its answer said if it was inspected.
    pub fn record(&self, error: bool, latency: Duration, answer: Option<&AnswerCounts>) {
        let mut w = self.lock();
        w.progress.requests += 1;
        w.current.add(error, latency, answer);
    }

    /// Records a mirrored request: judged like a live one, but not a live request of a step.
    pub fn record_mirrored(&self, error: bool, latency: Duration, answer: Option<&AnswerCounts>) {
        self.lock().current.add(error, latency, answer);
    }

    /// Counts mirrors of this (shadow) color: sent, compared, failed or skipped.
    pub fn record_shadow(&self, c: &ShadowCounts) {
        let mut w = self.lock();
        w.current.shadow.add(c);
        w.progress.compared += c.compared();
    }

    /// Live requests answered and mirrored answers compared, since start.
    pub fn progress(&self) -> Progress {
        self.lock().progress
    }

    /// Sums `part` of the buckets inside the last `window`, current bucket included.
    fn sum<T: Default>(&self, now: Instant, window: Duration, add: impl Fn(&mut T, &Bucket)) -> T {
        let w = self.lock();
        let mut total = T::default();
        let inside = w
            .past
            .iter()
            .filter(|b| now.duration_since(b.start) <= window);
        for b in inside.chain(std::iter::once(&w.current)) {
            add(&mut total, b);
        }
        total
    }

    /// What the answers said over the last `window`.
    pub fn answers(&self, now: Instant, window: Duration) -> AnswerCounts {
        self.sum(now, window, |t: &mut AnswerCounts, b| t.add(&b.answers))
    }

    /// What the mirrors did over the last `window`.
    pub fn shadow(&self, now: Instant, window: Duration) -> ShadowCounts {
        self.sum(now, window, |t: &mut ShadowCounts, b| t.add(&b.shadow))
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

    /// Totals over the last `window`, current bucket included, with the requests finished or
    /// still waiting beyond `limit`.
    pub fn summary(&self, now: Instant, window: Duration, limit: Duration) -> Summary {
        let stuck = self.stuck(now, limit);
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
        let (p99, slow) = match merged.is_empty() {
            true => (0, 0),
            false => {
                // Samples in buckets wholly above the limit's (to the histogram's 1%).
                let limit = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
                let slow = match limit < HIGHEST_MICROS {
                    true => merged.count_between(merged.next_non_equivalent(limit), u64::MAX),
                    false => 0,
                };
                (merged.value_at_quantile(0.99), slow)
            }
        };
        Summary {
            requests,
            errors,
            p99: Duration::from_micros(p99),
            slow,
            stuck,
        }
    }

    /// Forgets everything (a color that was changed or resumed starts with a clean slate), the
    /// requests in flight included: they finish uncounted.
    pub fn clear(&self, now: Instant) {
        self.in_flight().clear();
        let mut w = self.lock();
        w.past.clear();
        w.current.requests = 0;
        w.current.errors = 0;
        w.current.latency.reset();
        w.current.answers = AnswerCounts::default();
        w.current.shadow = ShadowCounts::default();
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
                None,
            );
        }
        let s = o.summary(t0, Duration::from_secs(30), Duration::from_secs(2));
        assert_eq!((s.requests, s.errors), (100, 10));
        assert!((s.error_rate() - 0.1).abs() < 1e-9);
        assert!(s.p99 >= Duration::from_millis(890), "p99 {:?}", s.p99);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        o.record(true, Duration::from_millis(5), None);
        for s in 1..=40 {
            o.rotate(t0 + Duration::from_secs(s), Duration::from_secs(30));
        }
        o.record(false, Duration::from_millis(5), None);
        let s = o.summary(
            t0 + Duration::from_secs(40),
            Duration::from_secs(30),
            Duration::from_secs(2),
        );
        assert_eq!((s.requests, s.errors), (1, 0));
    }

    #[test]
    fn slow_counts_finished_requests_over_the_limit() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        for ms in [10, 1990, 2000, 2100, 2500, 9000] {
            o.record(false, Duration::from_millis(ms), None);
        }
        let s = o.summary(t0, Duration::from_secs(30), Duration::from_secs(2));
        assert_eq!(s.slow, 3, "2.1 s, 2.5 s and 9 s are over 2 s");
    }

    #[test]
    fn requests_waiting_longer_than_the_limit_are_stuck_until_they_finish() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        let a = o.start(t0);
        let b = o.start(t0 + Duration::from_millis(50));
        let c = o.start(t0 + Duration::from_millis(1000));
        assert_eq!(a, b, "one slot per 100 ms");
        assert_ne!(a, c);
        let limit = Duration::from_secs(2);
        assert_eq!(o.stuck(t0 + Duration::from_millis(2000), limit), 0);
        assert_eq!(o.stuck(t0 + Duration::from_millis(2200), limit), 2);
        assert_eq!(o.stuck(t0 + Duration::from_millis(3200), limit), 3);
        o.finish(a);
        assert_eq!(o.stuck(t0 + Duration::from_millis(3200), limit), 2);
        o.finish(b);
        o.finish(c);
        assert_eq!(o.stuck(t0 + Duration::from_secs(60), limit), 0);
        let s = o.summary(t0 + Duration::from_secs(60), Duration::from_secs(30), limit);
        assert_eq!(
            (s.requests, s.stuck),
            (0, 0),
            "finishing records nothing by itself"
        );
    }

    #[test]
    fn clear_forgets_requests_in_flight_and_their_finish_is_harmless() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        let a = o.start(t0);
        o.clear(t0 + Duration::from_secs(1));
        let b = o.start(t0 + Duration::from_secs(1));
        o.finish(a);
        assert_eq!(
            o.stuck(t0 + Duration::from_secs(10), Duration::from_secs(2)),
            1
        );
        o.finish(b);
        assert_eq!(
            o.stuck(t0 + Duration::from_secs(10), Duration::from_secs(2)),
            0
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let t0 = Instant::now();
        let o = Outcomes::new(t0);
        o.record(true, Duration::from_millis(5), None);
        o.rotate(t0 + Duration::from_secs(1), Duration::from_secs(30));
        o.record(true, Duration::from_millis(5), None);
        o.clear(t0 + Duration::from_secs(2));
        assert_eq!(
            o.summary(
                t0 + Duration::from_secs(2),
                Duration::from_secs(30),
                Duration::from_secs(2)
            )
            .requests,
            0
        );
    }
}
