//! Health, passive tracking and the rollback machine end to end, over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use blueshift::model_server::Mode;
use common::*;

const FAST_HEALTH: &str =
    "health:\n  interval: 200ms\n  timeout: 200ms\n  healthy_after: 2\n  unhealthy_after: 2\n";

fn rolled_back(s: &serde_json::Value) -> bool {
    s["state"] == "rolled_back"
}

/// Asserts that `blueshift_rollbacks_total` counted one rollback of green for `reason`.
fn counted_once(p: &Proxy, reason: &str) {
    let line = format!(
        "blueshift_rollbacks_total{{color=\"green\",reason=\"{reason}\",route=\"default\"}} 1"
    );
    assert!(p.metrics().contains(&line), "missing {line}");
}

#[test]
fn killing_the_candidate_rolls_it_back_in_time_with_no_client_errors() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(
        &[m.addr(b)],
        &[m.addr(g)],
        (50, 50),
        FAST_HEALTH,
    ));
    let load = Load::start(p.addr, Duration::from_millis(5));
    eventually("green to serve some traffic", || {
        (m.servers[g].controls.predictions() > 10).then_some(())
    });
    let killed = Instant::now();
    m.servers[g].stop();
    let s = p.wait_status("green to be rolled back", rolled_back);
    let took = killed.elapsed();
    // interval x unhealthy_after + 1 s
    assert!(
        took <= Duration::from_millis(400) + Duration::from_secs(1),
        "rollback took {took:?}"
    );
    assert_eq!(s["rollback"]["color"], "green");
    // Refused connects count against green's error rate, so that may judge before the health
    // checks do; either way the reason says which.
    let reason = s["rollback"]["reason"].as_str().unwrap();
    let kind = if reason.starts_with("no healthy backend") {
        "unhealthy"
    } else {
        assert!(reason.starts_with("error rate "), "{s}");
        "error_rate"
    };
    assert_eq!(s["weights"]["green"], 0);
    assert_eq!(s["weights"]["blue"], 100);
    std::thread::sleep(Duration::from_millis(300));
    let samples = load.stop();
    let errors: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        errors.is_empty(),
        "{} of {} requests failed: {errors:?}",
        errors.len(),
        samples.len()
    );
    let after: Vec<_> = samples.iter().filter(|x| x.at > killed + took).collect();
    assert!(
        !after.is_empty() && after.iter().all(|x| x.color == "blue"),
        "after the rollback everything goes to blue"
    );
    counted_once(&p, kind);
}

#[test]
fn a_candidate_answering_500s_is_rolled_back_after_min_requests() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    m.servers[g].controls.set_mode(Mode::Failing);
    let extra = "rollback:\n  max_error_rate: 0.05\n  window: 30s\n  min_requests: 20\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), extra));
    let mut failed = 0;
    let s = eventually("green to be rolled back for its errors", || {
        let r = p.get("/predict", &[]);
        failed += usize::from(r.status == 500);
        let s = p.status();
        rolled_back(&s).then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("error rate 1.00 > 0.05 over 30s ("),
        "{reason}"
    );
    assert!(
        failed >= 20,
        "judged after {failed} failures, before min_requests"
    );
    assert!(
        failed <= 40,
        "{failed} clients saw a 500 before the rollback"
    );
    for _ in 0..50 {
        assert_eq!(p.get("/predict", &[]).color(), "blue");
    }
    counted_once(&p, "error_rate");
}

#[test]
fn a_slow_candidate_is_rolled_back_on_p99() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    m.servers[g].controls.set_delay(Duration::from_millis(250));
    let extra = "rollback:\n  max_p99_latency: 100ms\n  min_requests: 5\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), extra));
    let s = eventually("green to be rolled back for latency", || {
        p.get("/predict", &[]);
        let s = p.status();
        rolled_back(&s).then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap();
    // "p99 latency 2xxms > 100ms over 30s (n requests)": at least the model's 250 ms; or, with
    // a request still waiting past 100 ms at the time, the form that counts it.
    let waiting = reason.starts_with("p99 latency > 100ms over 30s: 1 requests waiting longer");
    let p99 = reason
        .strip_prefix("p99 latency ")
        .and_then(|r| r.split_once(" > 100ms over 30s"))
        .and_then(|(p99, _)| humantime::parse_duration(p99).ok());
    assert!(
        waiting || p99.is_some_and(|d| d >= Duration::from_millis(245)),
        "{reason}"
    );
}

#[test]
fn a_hung_candidate_is_rolled_back_long_before_its_requests_time_out() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    // /predict never answers; /health still passes, as with a stuck inference queue.
    m.servers[g].controls.set_delay(Duration::from_secs(3600));
    let extra = "rollback:\n  max_p99_latency: 1s\n  min_requests: 20\ntimeouts:\n  read: 30s\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), extra));
    // Concurrent clients, as in production: a hung request holds only its own connection.
    let started = Instant::now();
    let mut clients = Vec::new();
    let s = eventually(
        "green to be rolled back while its requests still hang",
        || {
            // Bounded: 400 requests at most, whatever happens.
            for _ in 0..5.min(400 - clients.len()) {
                let addr = p.addr;
                clients.push(std::thread::spawn(move || get(addr, "/predict", &[])));
            }
            let s = p.status();
            rolled_back(&s).then_some(s)
        },
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "rolled back after {took:?}; the read timeout is 30 s"
    );
    let reason = s["rollback"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("p99 latency > 1s over 30s: "),
        "{reason}"
    );
    counted_once(&p, "latency");
    for _ in 0..20 {
        assert_eq!(p.get("/predict", &[]).color(), "blue");
    }
}

const ROLLOUT: &str = "rollout:\n  candidate: green\n  steps:\n    - {weight: 10, hold: 1s}\n    - {weight: 50, hold: 1s}\n    - {weight: 100, hold: 1s}\n";

#[test]
fn a_rollout_walks_three_steps_to_promoted() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (90, 10), ROLLOUT));
    let mut seen = Vec::new();
    let s = eventually("the rollout to be promoted", || {
        let s = p.status();
        let step = (
            s["rollout"]["step"].as_u64()?,
            s["weights"]["green"].as_u64()?,
        );
        if seen.last() != Some(&step) {
            seen.push(step);
        }
        (s["state"] == "promoted").then_some(s)
    });
    assert!(
        seen.contains(&(1, 10)) && seen.contains(&(2, 50)),
        "steps seen: {seen:?}"
    );
    assert_eq!(s["weights"]["green"], 100);
    assert_eq!(s["rollout"]["next_step_at"], serde_json::Value::Null);
    assert!(p
        .metrics()
        .contains("blueshift_rollout_state{route=\"default\",state=\"promoted\"} 1"));
    for _ in 0..20 {
        assert_eq!(p.get("/predict", &[]).color(), "green");
    }
}

#[test]
fn pause_holds_the_step_promote_jumps_and_409s_say_why() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (90, 10), ROLLOUT));
    let r = p.admin_post("/pause", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let s: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["rollout"]["step"].as_u64()),
        (Some("paused"), Some(1))
    );
    assert_eq!(p.admin_post("/pause", &[]).status, 409);
    // A paused step outlives its hold.
    std::thread::sleep(Duration::from_millis(1500));
    let s = p.status();
    assert_eq!(
        (s["state"].as_str(), s["rollout"]["step"].as_u64()),
        (Some("paused"), Some(1))
    );
    let r = p.admin_post("/promote", &[]);
    assert_eq!(r.status, 200);
    let s: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["weights"]["green"].as_u64()),
        (Some("promoted"), Some(100))
    );
    let r = p.admin_post("/promote", &[]);
    assert_eq!(r.status, 409);
    let e: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["error"], "green is already promoted");
}

#[test]
fn manual_rollback_and_resume() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(
        &[m.addr(b)],
        &[m.addr(g)],
        (50, 50),
        "affinity:\n  cookie: blueshift\n",
    ));
    let r = p.admin_post("/rollback", &[]);
    assert_eq!(r.status, 200);
    let s: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["rollback"]["color"].as_str()),
        (Some("rolled_back"), Some("green"))
    );
    assert_eq!(s["rollback"]["reason"], "manual");
    // Pinned green sessions move to blue and are re-pinned.
    let r = p.get("/predict", &[("cookie", "blueshift=green")]);
    assert_eq!(
        (r.color(), r.pinned("blueshift").as_deref()),
        ("blue", Some("blue"))
    );
    assert_eq!(p.admin_post("/rollback", &[]).status, 409);
    let r = p.admin_post("/resume", &[]);
    assert_eq!(r.status, 200);
    let s: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (s["state"].as_str(), s["weights"]["green"].as_u64()),
        (Some("steady"), Some(50))
    );
    assert_eq!(p.admin_post("/resume", &[]).status, 409);
    counted_once(&p, "manual");
}

#[test]
fn a_restart_with_a_state_file_stays_rolled_back() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let policy = two_colors(
        &[m.addr(b)],
        &[m.addr(g)],
        (50, 50),
        &format!("state_file: {}\n", state.display()),
    );
    let first = Proxy::start(&policy);
    assert_eq!(first.admin_post("/rollback", &[]).status, 200);
    drop(first);
    let second = Proxy::start(&policy);
    let s = second.status();
    assert_eq!(s["state"], "rolled_back", "{s}");
    assert_eq!(s["rollback"]["reason"], "manual");
    assert_eq!(s["weights"]["green"], 0);
    for _ in 0..30 {
        assert_eq!(second.get("/predict", &[]).color(), "blue");
    }
    // A corrupt state file is reported and ignored, never fatal.
    drop(second);
    std::fs::write(&state, "{ not json").unwrap();
    let third = Proxy::start(&policy);
    assert_eq!(third.status()["state"], "steady");
}

#[test]
fn admin_posts_need_the_token_when_one_is_set() {
    let mut m = Models::new();
    let b = m.start("v1");
    let p = Proxy::start_with_env(
        &two_colors(&[m.addr(b)], &[m.addr(b)], (50, 50), ""),
        &[("BLUESHIFT_ADMIN_TOKEN", "s3cret")],
    );
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "s3cret")],
        vec![("authorization", "Bearer s3cret2")],
    ] {
        let r = p.admin_post("/rollback", &headers);
        assert_eq!(r.status, 401, "{headers:?}");
        assert!(r.body.contains("\"error\""), "{}", r.body);
    }
    assert_eq!(
        p.status()["state"],
        "steady",
        "refused actions change nothing"
    );
    assert_eq!(
        p.admin_post("/rollback", &[("authorization", "Bearer s3cret")])
            .status,
        200
    );
    // Reads need no token.
    assert_eq!(get(p.admin, "/status", &[]).unwrap().status, 200);
}

#[test]
fn admin_unknown_paths_are_404_and_wrong_methods_405() {
    let mut m = Models::new();
    let b = m.start("v1");
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(b)], (50, 50), ""));
    let r = get(p.admin, "/nope", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.contains("\"error\""));
    assert_eq!(get(p.admin, "/rollback", &[]).unwrap().status, 405);
    assert_eq!(post(p.admin, "/status", &[]).unwrap().status, 405);
    let r = get(p.admin, "/healthz", &[]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
}

/// Sends `GET path` and hangs up as soon as `gone` says so, given what has arrived so far.
fn hang_up(addr: SocketAddr, path: &str, gone: impl Fn(&[u8]) -> bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: m\r\n\r\n").unwrap();
    let mut got = Vec::new();
    eventually("the moment to hang up", || {
        let mut buf = [0; 4096];
        if let Ok(n) = s.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        gone(&got).then_some(())
    });
}

#[test]
fn clients_that_hang_up_are_not_held_against_the_model() {
    // Impatient clients (a timeout shorter than the model's time, a user who stops a token
    // stream) are not the model's errors: their requests are not sent again to another backend
    // for nobody, and they do not roll the model back. What the model answers still counts.
    let mut m = Models::new();
    let b = m.start("v1");
    let (g1, g2) = (m.start("v2"), m.start("v2"));
    for g in [g1, g2] {
        m.servers[g].controls.set_delay(Duration::from_millis(300));
    }
    let extra = "rollback:\n  max_error_rate: 0.05\n  max_p99_latency: 10s\n  window: 30s\n  min_requests: 5\n";
    let green = [m.addr(g1), m.addr(g2)];
    let (p, log) = Proxy::start_logged(&two_colors(&[m.addr(b)], &green, (0, 100), extra), None);
    let predictions =
        || m.servers[g1].controls.predictions() + m.servers[g2].controls.predictions();
    for _ in 0..6 {
        // Gone while the model is still thinking.
        let before = predictions();
        hang_up(p.addr, "/predict", |_| predictions() > before);
    }
    for _ in 0..4 {
        // Gone after the first token of a stream.
        hang_up(p.addr, "/stream?events=50&gap=50", |got| {
            String::from_utf8_lossy(got).contains("data: ")
        });
    }
    p.wait_metrics(&[
        "blueshift_requests_total{color=\"green\",route=\"default\",status=\"error\"} 6",
        "blueshift_requests_total{color=\"green\",route=\"default\",status=\"200\"} 4",
    ]);
    assert_eq!(
        predictions(),
        10,
        "a request of a client gone was sent again"
    );
    assert!(!rolled_back(&p.status()), "{}", p.status());
    // Counted, and not logged as blueshift's error.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("ERROR"), "{logged}");

    // Now the model fails: the judge sees its errors among requests that include the 10.
    for g in [g1, g2] {
        m.servers[g].controls.set_delay(Duration::ZERO);
        m.servers[g].controls.set_mode(Mode::Failing);
    }
    let s = eventually("green to be rolled back for its errors", || {
        p.get("/predict", &[]);
        let s = p.status();
        rolled_back(&s).then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap();
    let (errors, n) = reason_errors(reason);
    assert_eq!(errors, n - 10.0, "{reason}");
}
