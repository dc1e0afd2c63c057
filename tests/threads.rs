//! The proxy's threads: one by default, as many as a Pingora conf says when it says, client
//! connections spread over all of them, and pooled upstream connections reused across them
//! (with more than one thread blueshift runs one work-stealing runtime, where Pingora 0.9's
//! pool does not miss connections as it does with a runtime per thread; see `src/server.rs`),
//! and timeouts on tokio's timer wheel rather than Pingora's own timer thread unless the conf
//! asks for it.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;

use common::*;

/// Pingora names the threads of a service after it; `comm` keeps 15 bytes, all of these.
const PROXY_THREAD: &str = "blueshift proxy";

/// Process `pid`'s threads: each one's name and its directory under `/proc`.
fn threads(pid: u32) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            (comm.trim_end().to_owned(), task)
        })
        .collect()
}

/// The proxy threads of process `pid`, each with the nanoseconds it has run so far.
fn proxy_threads(pid: u32) -> Vec<u64> {
    threads(pid)
        .into_iter()
        .filter(|(name, _)| name == PROXY_THREAD)
        .map(|(_, task)| {
            let ran = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
            ran.split_whitespace()
                .next()
                .and_then(|ns| ns.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Sends `requests` requests on each of `connections` kept-alive connections at once.
fn keep_alive_load(p: &Proxy, connections: usize, requests: usize) {
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let addr = p.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                for _ in 0..requests {
                    let (r, open) =
                        exchange(s, b"GET /predict HTTP/1.1\r\nhost: m\r\n\r\n").unwrap();
                    assert_eq!(r.status, 200, "{r:?}");
                    s = open.expect("the proxy closed a kept-alive connection");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

/// A proxy in front of one model, with a Pingora conf of that text if given, and its log.
fn start_logged(m: &Models, conf: Option<&str>) -> (Proxy, PathBuf) {
    Proxy::start_logged(&two_colors(&[m.addr(0)], &[m.addr(0)], (100, 0), ""), conf)
}

const POOL_WARNING: &str = "cloudflare/pingora#998";

/// What Pingora logs when a request misses a pooled connection (and opens a new one).
const POOL_MISS: &str = "failed to acquire reusable stream";

#[test]
fn one_proxy_thread_by_default() {
    let mut m = Models::new();
    m.start("v1");
    let (p, log) = start_logged(&m, None);
    eventually("the proxy thread", || {
        (proxy_threads(p.pid()).len() == 1).then_some(())
    });
    keep_alive_load(&p, 4, 5);
    assert_eq!(proxy_threads(p.pid()).len(), 1);
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains(POOL_WARNING), "{text}");
}

#[test]
fn a_pingora_conf_sets_the_number_of_proxy_threads_and_connections_use_them_all() {
    let mut m = Models::new();
    m.start("v1");
    let (p, log) = start_logged(&m, Some("---\nversion: 1\nthreads: 3\n"));
    let before = eventually("the three proxy threads the conf asks for", || {
        let t = proxy_threads(p.pid());
        (t.len() == 3).then_some(t)
    });
    // 32 connections at once, 640 requests: the threads steal work from each other, and the
    // connections each request releases to the pool are taken again without a miss (with a
    // runtime per thread, Pingora 0.9 missed up to one in a hundred: `benches/threads.sh`).
    keep_alive_load(&p, 32, 20);
    let after = proxy_threads(p.pid());
    assert_eq!(after.len(), 3);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        // 640 requests at tens of microseconds each: every thread ran for milliseconds.
        assert!(
            a - b > 1_000_000,
            "proxy thread {i} ran {} ns for 640 requests over 32 connections",
            a - b
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(POOL_MISS), "{text}");
    assert!(!text.contains(POOL_WARNING), "{text}");
}

#[test]
fn more_threads_without_work_stealing_are_warned_about_once() {
    let mut m = Models::new();
    m.start("v1");
    let conf = "---\nversion: 1\nthreads: 3\nwork_stealing: false\n";
    let (p, log) = start_logged(&m, Some(conf));
    eventually("the three proxy threads the conf asks for", || {
        (proxy_threads(p.pid()).len() == 3).then_some(())
    });
    keep_alive_load(&p, 8, 5);
    // The operator is told what a runtime per thread costs in Pingora 0.9, once, at start.
    let text = std::fs::read_to_string(&log).unwrap();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains(POOL_WARNING)).collect();
    assert!(
        warned.len() == 1
            && warned[0].contains(" WARN ")
            && warned[0].contains("threads: 3 with work_stealing: false"),
        "{text}"
    );
}

/// The thread Pingora starts for its own ("fast") timers the first time one is set.
const FAST_TIMER_THREAD: &str = "Timer thread";

#[test]
fn timeouts_run_on_tokios_timer_wheel_by_default() {
    let mut m = Models::new();
    m.start("v1");
    let (p, _log) = start_logged(&m, None);
    // Every kept-alive connection waits under the client timeouts, and every request under the
    // model's read timeout: all seconds long, so none of them starts Pingora's timer thread.
    keep_alive_load(&p, 4, 5);
    let names: Vec<String> = threads(p.pid()).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == PROXY_THREAD), "{names:?}");
    assert!(!names.iter().any(|n| n == FAST_TIMER_THREAD), "{names:?}");
}

#[test]
fn a_pingora_conf_can_keep_pingoras_own_timers() {
    let mut m = Models::new();
    m.start("v1");
    let conf = "---\nversion: 1\nfast_timeout_to_tokio_threshold_seconds: 900\n";
    let (p, _log) = start_logged(&m, Some(conf));
    keep_alive_load(&p, 4, 5);
    eventually("Pingora's timer thread, as the conf asks", || {
        threads(p.pid())
            .iter()
            .any(|(n, _)| n == FAST_TIMER_THREAD)
            .then_some(())
    });
}
