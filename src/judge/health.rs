//! What the active health checks know of a backend, and the consecutive-result rule that flips it.
//!
//! A backend starts `Unknown` and takes no traffic until its first probe passes (unlike
//! Pingora's load balancer, where backends start healthy). After that it flips only after
//! `healthy_after` passes or `unhealthy_after` failures in a row.

use crate::config::Health;

/// What a backend is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not probed yet: no traffic.
    Unknown,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl Status {
    /// `unknown`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// Counts consecutive probe results for one backend.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    /// Current status.
    pub status: Status,
    passes: u32,
    failures: u32,
    /// Why the last probe failed, if it did.
    pub last_error: Option<&'static str>,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            status: Status::Unknown,
            passes: 0,
            failures: 0,
            last_error: None,
        }
    }
}

impl Counter {
    /// Takes one probe result; returns whether the status changed.
    pub fn on_probe(&mut self, result: Result<(), &'static str>, h: &Health) -> bool {
        let before = self.status;
        match result {
            Ok(()) => {
                self.passes += 1;
                self.failures = 0;
                self.last_error = None;
                if self.status == Status::Unknown || self.passes >= h.healthy_after {
                    self.status = Status::Healthy;
                }
            }
            Err(why) => {
                self.failures += 1;
                self.passes = 0;
                self.last_error = Some(why);
                if self.status == Status::Unknown || self.failures >= h.unhealthy_after {
                    self.status = Status::Unhealthy;
                }
            }
        }
        self.status != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(up: u32, down: u32) -> Health {
        Health {
            healthy_after: up,
            unhealthy_after: down,
            ..Health::default()
        }
    }

    #[test]
    fn first_result_decides_an_unknown_backend() {
        let mut c = Counter::default();
        assert!(c.on_probe(Ok(()), &h(3, 3)));
        assert_eq!(c.status, Status::Healthy);
        let mut c = Counter::default();
        assert!(c.on_probe(Err("x"), &h(3, 3)));
        assert_eq!(c.status, Status::Unhealthy);
    }

    #[test]
    fn flips_need_consecutive_results() {
        let settings = h(2, 3);
        let mut c = Counter::default();
        c.on_probe(Ok(()), &settings);
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(
            !c.on_probe(Ok(()), &settings),
            "a pass resets the failure count"
        );
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(!c.on_probe(Err("x"), &settings));
        assert!(c.on_probe(Err("x"), &settings));
        assert_eq!(c.status, Status::Unhealthy);
        assert!(!c.on_probe(Ok(()), &settings));
        assert!(c.on_probe(Ok(()), &settings));
        assert_eq!(c.status, Status::Healthy);
    }
}
