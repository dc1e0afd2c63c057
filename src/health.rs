//! Active health checks: one probe loop per backend address, reporting every result to the
//! supervisor, which counts them with [`Counter`].
//!
//! A backend starts `Unknown` and takes no traffic until its first probe passes (unlike
//! Pingora's load balancer, where backends start healthy). After that it flips only after
//! `healthy_after` passes or `unhealthy_after` failures in a row.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policy::Health;

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

/// One probe result, sent to the supervisor.
#[derive(Debug)]
pub struct Probe {
    /// Backend probed.
    pub addr: SocketAddr,
    /// Pass, or a short reason.
    pub result: Result<(), &'static str>,
}

/// The running probe loops, one per address.
#[derive(Default)]
pub struct Checks {
    tasks: HashMap<SocketAddr, JoinHandle<()>>,
    settings: Option<Health>,
}

impl Checks {
    /// Makes the running loops match `addrs` and `settings`: starts new ones, stops removed
    /// ones, restarts all if the settings changed. Must run inside a tokio runtime.
    pub fn sync(&mut self, addrs: &[SocketAddr], settings: &Health, tx: &mpsc::Sender<Probe>) {
        if self.settings.as_ref() != Some(settings) {
            for (_, t) in self.tasks.drain() {
                t.abort();
            }
            self.settings = Some(settings.clone());
        }
        self.tasks.retain(|addr, t| {
            let keep = addrs.contains(addr);
            if !keep {
                t.abort();
            }
            keep
        });
        for addr in addrs {
            if !self.tasks.contains_key(addr) {
                let task = tokio::spawn(probe_loop(*addr, settings.clone(), tx.clone()));
                self.tasks.insert(*addr, task);
            }
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }
}

async fn probe_loop(addr: SocketAddr, h: Health, tx: mpsc::Sender<Probe>) {
    let mut tick = tokio::time::interval(h.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(h.timeout, probe(addr, &h.path)).await {
            Ok(r) => r,
            Err(_) => Err("timed out"),
        };
        if tx.send(Probe { addr, result }).await.is_err() {
            return;
        }
    }
}

/// One `GET path`; 2xx and 3xx pass.
pub async fn probe(addr: SocketAddr, path: &str) -> Result<(), &'static str> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|_| "connection refused")?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: blueshift-health\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|_| "write failed")?;
    let mut buf = Vec::with_capacity(512);
    loop {
        if s.read_buf(&mut buf).await.map_err(|_| "read failed")? == 0 {
            return Err("closed before answering");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return match resp.code {
                    Some(200..=399) => Ok(()),
                    _ => Err("unhealthy status"),
                }
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => continue,
            _ => return Err("invalid HTTP response"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(up: u32, down: u32) -> Health {
        Health {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: up,
            unhealthy_after: down,
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
