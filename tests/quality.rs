//! Quality gates end to end: real model servers answering well or badly, the real binary
//! reading their answers, and the rollbacks (or none) that follow.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use blueshift::model_server::Mode;
use common::*;

/// Judges after 50 answers; the error-rate and latency limits stay out of the way.
const GATES: &str =
    "quality:\n  prediction: /prediction\n  score: /confidence\n  min_samples: 50\n";

fn policy(m: &Models, split: (u32, u32), extra: &str) -> String {
    two_colors(&[m.addr(0)], &[m.addr(1)], split, extra)
}

fn rolled_back(s: &serde_json::Value) -> bool {
    s["state"] == "rolled_back"
}

/// Sends `/predict?id=N` requests with distinct inputs until `stop` says so; every answer must be
/// a 200 (clients never see the judging). Returns how many were sent.
fn send_until(p: &Proxy, path: &str, mut stop: impl FnMut(&Proxy) -> bool) -> usize {
    let start = Instant::now();
    for i in 0.. {
        let r = p.get(
            &format!("{path}{}id={i}", if path.contains('?') { "&" } else { "?" }),
            &[],
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        if i % 10 == 9 && stop(p) {
            return i + 1;
        }
        assert!(start.elapsed() < DEADLINE, "gave up after {i} requests");
    }
    unreachable!()
}

fn reason(s: &serde_json::Value) -> String {
    s["rollback"]["reason"].as_str().unwrap_or("").to_owned()
}

fn counted_quality_rollback(p: &Proxy) {
    p.wait_metrics(&[
        "blueshift_rollbacks_total{color=\"green\",reason=\"quality\",route=\"default\"} 1",
    ]);
}

#[test]
fn two_healthy_colors_with_the_same_mix_are_never_rolled_back() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    // Which color answers a request is random, so two equal mixes differ by chance: at 50
    // samples each by 0.09 (one standard deviation of the label shift), which crosses the 0.2
    // limit in a few runs in a hundred; at 200 each, by 0.046.
    let gates = GATES.replace("min_samples: 50", "min_samples: 200");
    let p = Proxy::start(&policy(&m, (50, 50), &gates));
    let mut sent = 0;
    send_until(&p, "/predict", |p| {
        sent += 10;
        assert!(
            !rolled_back(&p.status()),
            "rolled back after {sent}: {}",
            p.status()
        );
        sent >= 600
    });
    // The judge runs five times a second: give it a few ticks over the full window.
    std::thread::sleep(Duration::from_millis(600));
    let s = p.status();
    assert_eq!(s["state"], "steady", "{s}");
    for color in ["blue", "green"] {
        let q = &s["colors"][color]["quality"];
        assert!(q["samples"].as_u64().unwrap() >= 200, "{color}: {q}");
        assert_eq!(q["invalid_rate"], 0.0);
        let positive = q["labels"]["positive"].as_f64().unwrap();
        assert!((0.6..0.8).contains(&positive), "{color}: {q}");
        assert!(q["mean_score"].as_f64().unwrap() > 0.8, "{color}: {q}");
    }
    let metrics = p.metrics();
    assert!(metrics.contains(
        "blueshift_predictions_total{color=\"green\",label=\"positive\",route=\"default\"}"
    ));
    assert!(metrics.contains(
        "blueshift_answers_inspected_total{color=\"blue\",result=\"valid\",route=\"default\"}"
    ));
    assert!(metrics.contains("blueshift_prediction_score_count{color=\"green\",route=\"default\"}"));
    assert!(metrics
        .contains("blueshift_time_to_first_byte_seconds_count{color=\"blue\",route=\"default\"}"));
}

#[test]
fn a_candidate_answering_wrong_labels_is_rolled_back_for_quality_with_no_client_error() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    m.servers[g].controls.set_mode(Mode::Wrong);
    let p = Proxy::start(&policy(&m, (50, 50), GATES));
    // The judge ticks every 200 ms: once both colors have their 50 answers, the rollback comes
    // within a tick or two, however many requests a fast or slow machine sends meanwhile.
    let mut enough: Option<Instant> = None;
    send_until(&p, "/predict", |p| {
        let s = p.status();
        let samples = |c: &str| s["colors"][c]["quality"]["samples"].as_u64().unwrap_or(0);
        if enough.is_none() && samples("blue") >= 50 && samples("green") >= 50 {
            enough = Some(Instant::now());
        }
        rolled_back(&s)
    });
    let waited = enough.map_or(Duration::ZERO, |t| t.elapsed());
    assert!(
        waited < Duration::from_secs(2),
        "judged {waited:?} after both colors had 50 answers"
    );
    let s = p.status();
    assert_eq!(s["rollback"]["color"], "green");
    let why = reason(&s);
    assert!(why.starts_with("label shift 0."), "{why}");
    assert!(why.contains("> 0.2 over 30s ("), "{why}");
    // Each color's mix in the sentence: about 70% positive for blue and 30% for green, give or
    // take what ~60 random requests each give (one standard deviation is 6 points).
    let share = |color: &str| -> u32 {
        let after = why.split(&format!("{color} positive ")).nth(1);
        let digits = after.and_then(|a| a.split('%').next());
        digits
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{why}"))
    };
    let (blue, green) = (share("blue"), share("green"));
    assert!((50..=90).contains(&blue), "{why}");
    assert!((10..=50).contains(&green) && green + 20 <= blue, "{why}");
    counted_quality_rollback(&p);
    assert_eq!(s["weights"]["green"], 0);
    for _ in 0..20 {
        assert_eq!(p.get("/predict?id=1", &[]).color(), "blue");
    }
    // The operator's view: a quality line per color, and the reason in words.
    let out = p.cli_status();
    assert!(out.contains("QUALITY        ANSWERS  LABELS"), "{out}");
    let line = |color: &str| {
        out.lines()
            .find(|l| l.starts_with(color) && l.contains("positive"))
            .unwrap_or_else(|| panic!("no quality line for {color}:\n{out}"))
            .to_owned()
    };
    // Most frequent label first.
    let first = |color: &str| line(color).split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(
        (first("blue"), first("green")),
        ("positive".into(), "negative".into()),
        "{out}"
    );
    assert!(out.contains("rollback  green: label shift 0."), "{out}");
}

#[test]
fn a_candidate_whose_200s_are_not_json_is_rolled_back_on_the_invalid_share() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    m.servers[g].controls.set_mode(Mode::NotJson);
    let p = Proxy::start(&policy(&m, (50, 50), GATES));
    send_until(&p, "/predict", |p| rolled_back(&p.status()));
    let why = reason(&p.status());
    assert!(
        why.starts_with("invalid answers 1.00 > 0.05 over 30s (")
            && why.ends_with("not JSON or without /prediction)"),
        "{why}"
    );
    assert!(p.metrics().contains(
        "blueshift_answers_inspected_total{color=\"green\",result=\"invalid\",route=\"default\"}"
    ));
    counted_quality_rollback(&p);
}

#[test]
fn a_score_shift_alone_rolls_the_candidate_back() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    // Same labels, but far less sure of them.
    m.servers[g].controls.set_score_offset(-0.4);
    let p = Proxy::start(&policy(&m, (50, 50), GATES));
    send_until(&p, "/predict", |p| rolled_back(&p.status()));
    let why = reason(&p.status());
    assert!(why.starts_with("score shift 0.3"), "{why}");
    assert!(
        why.contains(": blue mean 0.8") && why.contains(", green mean 0.5"),
        "{why}"
    );
    counted_quality_rollback(&p);
}

const STREAM_GATES: &str = "quality:\n  prediction: /choices/0/finish_reason\n  min_samples: 20\n";

#[test]
fn a_token_stream_ending_with_the_wrong_finish_reason_is_rolled_back() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    m.servers[g].controls.set_mode(Mode::Wrong);
    let p = Proxy::start(&policy(&m, (50, 50), STREAM_GATES));
    send_until(&p, "/stream?events=3&gap=1", |p| rolled_back(&p.status()));
    let why = reason(&p.status());
    assert!(why.starts_with("label shift 1.00 > 0.2"), "{why}");
    // Blue's streams end with stop, or with length for a tenth of the inputs (listed only when
    // one came by); every one of green's ends with content_filter.
    let green = why
        .split(", green ")
        .nth(1)
        .unwrap_or_else(|| panic!("{why}"));
    assert!(green.starts_with("stop 0% "), "{why}");
    assert!(green.ends_with("content_filter 100%"), "{why}");
}

#[test]
fn healthy_token_streams_are_judged_and_not_rolled_back() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    // A tenth of healthy streams end with length, at random per color: at 20 samples each the
    // two shares differ by more than 0.2 a few times in a hundred, at 40 about once in a
    // thousand.
    let gates = STREAM_GATES.replace("min_samples: 20", "min_samples: 40");
    let p = Proxy::start(&policy(&m, (50, 50), &gates));
    send_until(&p, "/stream?events=3&gap=1", |p| {
        let s = p.status();
        s["colors"]["green"]["quality"]["samples"].as_u64() >= Some(60)
    });
    let s = p.status();
    assert_eq!(s["state"], "steady", "{s}");
    let stop = s["colors"]["green"]["quality"]["labels"]["stop"]
        .as_f64()
        .unwrap();
    assert!(stop > 0.75, "{s}");
}

#[test]
fn answers_over_max_body_pass_byte_exact_and_are_counted_skipped() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let extra = format!("{GATES}  max_body: 64KiB\n");
    let p = Proxy::start(&policy(&m, (100, 0), &extra));
    let path = "/big?bytes=300000";
    let direct = request(m.addr(0), "GET", path, &[], b"").unwrap().body;
    assert_eq!(direct.len(), 300_000);
    let proxied = p.get(path, &[]);
    assert_eq!(proxied.status, 200);
    assert!(proxied.body == direct, "the body changed on the way");
    // Under the limit the same kind of answer is read.
    assert_eq!(p.get("/big?bytes=1000", &[]).body.len(), 1000);
    p.wait_metrics(&[
        "blueshift_answers_inspected_total{color=\"blue\",result=\"skipped\",route=\"default\"} 1",
        "blueshift_answers_inspected_total{color=\"blue\",result=\"valid\",route=\"default\"} 1",
    ]);
    let q = &p.status()["colors"]["blue"]["quality"];
    assert_eq!(
        (q["skipped"].as_u64(), q["samples"].as_u64()),
        (Some(1), Some(1)),
        "{q}"
    );
}

#[test]
fn an_answer_split_across_many_small_chunks_is_read_whole() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&policy(&m, (100, 0), GATES));
    // ~80 bytes in 3-byte chunks, a millisecond apart: each reaches the proxy on its own.
    for i in 0..5 {
        let r = p.get(&format!("/predict?id={i}&chunk=3"), &[]);
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with("{\"prediction\":"), "{}", r.body);
    }
    p.wait_metrics(&[
        "blueshift_answers_inspected_total{color=\"blue\",result=\"valid\",route=\"default\"} 5",
    ]);
    assert!(p.metrics().contains(
        "blueshift_answers_inspected_total{color=\"blue\",result=\"invalid\",route=\"default\"} 0"
    ));
}

/// Reads a chunked event stream from `addr`, noting when each `data:` event arrived.
fn stream_arrivals(addr: SocketAddr, path: &str) -> (Instant, Vec<(Instant, String)>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sent = Instant::now();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let (mut seen, mut out, mut buf) = (0, Vec::new(), [0u8; 4096]);
    let mut text = String::new();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return (sent, out);
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        let now = Instant::now();
        let events: Vec<&str> = text.matches("data: ").collect();
        for _ in seen..events.len() {
            out.push((now, String::new()));
        }
        seen = events.len();
        if text.contains("data: [DONE]") && text.ends_with("0\r\n\r\n") {
            return (sent, out);
        }
    }
}

#[test]
fn streams_still_arrive_event_by_event_with_quality_on() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&policy(&m, (100, 0), STREAM_GATES));
    let gap = Duration::from_millis(300);
    let (sent, arrivals) = stream_arrivals(p.addr, "/stream?events=5&gap=300");
    assert_eq!(arrivals.len(), 7, "5 tokens, the finish and [DONE]");
    // Each event reaches the client as the model sends it, 300 ms apart, not all at the end:
    // the first long before the second is even written, each within 250 ms of its schedule.
    let first = arrivals[0].0;
    assert!(
        first - sent < gap - Duration::from_millis(50),
        "first token after {:?}",
        first - sent
    );
    for (i, (at, _)) in arrivals.iter().enumerate().take(6) {
        let due = gap * i as u32;
        let late = (*at - first).saturating_sub(due);
        assert!(
            *at - first + Duration::from_millis(50) >= due && late < Duration::from_millis(250),
            "event {i} arrived {:?} after the first, due at {due:?}",
            *at - first
        );
    }
    p.wait_metrics(&[
        "blueshift_answers_inspected_total{color=\"blue\",result=\"valid\",route=\"default\"} 1",
    ]);
}

#[test]
fn with_latency_first_byte_a_long_stream_is_no_breach_but_a_slow_start_is() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    let extra = "rollback:\n  max_p99_latency: 300ms\n  min_requests: 5\n  latency: first_byte\n";
    let p = Proxy::start(&policy(&m, (50, 50), extra));
    // Streams of ~800 ms that start at once: judged by their first byte, they are fast.
    for i in 0..12 {
        let r = p.get(&format!("/stream?events=8&gap=100&id={i}"), &[]);
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(p.status()["state"], "steady", "{}", p.status());
    // Green now takes 500 ms to its first token.
    m.servers[g].controls.set_delay(Duration::from_millis(500));
    let s = eventually("green to be rolled back for its first byte", || {
        p.get("/stream?events=1&gap=1", &[]);
        let s = p.status();
        rolled_back(&s).then_some(s)
    });
    assert!(reason(&s).starts_with("p99 latency"), "{s}");
}
