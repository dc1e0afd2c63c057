//! Shadow traffic end to end: live requests mirrored to a real shadow model server, its answers
//! compared with the served ones, and the rollbacks and rollout steps that follow.

mod common;

use std::time::{Duration, Instant};

use blueshift::model_server::{Mode, Recorded};
use common::*;

/// Blue serves everyone; green gets copies.
fn shadowed(m: &Models, extra: &str) -> String {
    two_colors(&[m.addr(0)], &[m.addr(1)], (100, 0), extra)
}

const GATES: &str = "quality:\n  prediction: /prediction\n  min_samples: 30\n";

fn send(p: &Proxy, n: usize) {
    for i in 0..n {
        let r = p.get(&format!("/predict?id={i}"), &[]);
        assert_eq!((r.status, r.color()), (200, "blue"), "{r:?}");
    }
}

fn metric(p: &Proxy, line_start: &str) -> u64 {
    p.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Headers that are the connection's, not the request's: a copy need not carry them.
const HOP: [&str; 4] = ["connection", "keep-alive", "te", "transfer-encoding"];

fn without(r: &Recorded, drop: &[&str]) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()) && !HOP.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_mirrored_request_reaches_the_shadow_as_the_serving_model_got_it() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    for s in &m.servers {
        s.controls.record_requests();
    }
    let p = Proxy::start(&shadowed(&m, "shadow:\n  color: green\n"));
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            format!(
                "{{\"text\":\"review {i}\",\"bytes\":\"{}\"}}",
                "\u{e9}\u{1f600}".repeat(i)
            )
            .into_bytes()
        })
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        let r = request(
            p.addr,
            "POST",
            &format!("/predict?id={i}"),
            &[
                ("content-type", "application/json"),
                ("x-request-id", &format!("req-{i}")),
                ("te", "trailers"),
            ],
            body,
        )
        .unwrap();
        assert_eq!((r.status, r.color()), (200, "blue"), "{r:?}");
        assert!(r.pinned("blueshift").is_none() && r.all("set-cookie").is_empty());
    }
    for i in 0..5 {
        assert_eq!(p.get(&format!("/predict?get={i}"), &[]).color(), "blue");
    }
    let green = eventually("25 copies at green", || {
        let g = m.servers[1].controls.recorded();
        (g.len() == 25).then_some(g)
    });
    let blue = m.servers[0].controls.recorded();
    assert_eq!(blue.len(), 25);
    for b in &blue {
        let g = green
            .iter()
            .find(|g| g.path == b.path)
            .unwrap_or_else(|| panic!("no copy of {}", b.path));
        assert_eq!((&g.method, &g.body), (&b.method, &b.body), "{}", b.path);
        assert!(
            g.headers
                .contains(&("x-blueshift-shadow".into(), "1".into())),
            "{g:?}"
        );
        assert!(
            !b.headers.iter().any(|(k, _)| k == "x-blueshift-shadow"),
            "the served request is unmarked"
        );
        assert_eq!(
            without(g, &["x-blueshift-shadow"]),
            without(b, &[]),
            "headers of {}",
            b.path
        );
    }
    // The shadow color serves no one and is counted apart from the clients' requests.
    p.wait_metrics(&[
        "blueshift_shadow_requests_total{color=\"green\",outcome=\"match\",route=\"default\"} 25",
    ]);
    let text = p.metrics();
    assert!(
        !text.lines().any(|l| l
            .starts_with("blueshift_requests_total{color=\"green\",route=\"default\"")
            && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(
        text.contains(
            "blueshift_requests_total{color=\"blue\",route=\"default\",status=\"200\"} 25"
        ),
        "{text}"
    );
    let s = p.status();
    assert_eq!(s["shadow"]["color"], "green");
    assert_eq!(s["shadow"]["compared"], 25);
    assert_eq!(s["shadow"]["agreement"], 1.0);
    assert_eq!(s["shadow"]["by"], "status class");
}

#[test]
fn a_shadow_that_takes_2s_costs_the_clients_nothing() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    m.servers[g].controls.set_delay(Duration::from_secs(2));
    let p = Proxy::start(&shadowed(
        &m,
        "shadow:\n  color: green\nrollback:\n  max_p99_latency: 1h\n",
    ));
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let r = p.get(&format!("/predict?id={i}"), &[]);
        slowest = slowest.max(t.elapsed());
        assert_eq!((r.status, r.color()), (200, "blue"));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a client waited {slowest:?}"
    );
    eventually("the mirrors to have reached green", || {
        (m.servers[g].controls.predictions() == 20).then_some(())
    });
}

#[test]
fn a_disagreeing_shadow_is_rolled_back_for_quality_and_a_healthy_one_is_not() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&shadowed(&m, &format!("shadow:\n  color: green\n{GATES}")));
    send(&p, 200);
    let s = p.wait_status("200 compared answers", |s| s["shadow"]["compared"] == 200);
    assert_eq!(
        (s["state"].as_str(), s["shadow"]["agreement"].as_f64()),
        (Some("steady"), Some(1.0)),
        "{s}"
    );
    assert_eq!(s["shadow"]["by"], "label");
    assert!(
        s["colors"]["green"]["quality"]["samples"].as_u64() >= Some(200),
        "{s}"
    );

    m.servers[1].controls.set_mode(Mode::Wrong);
    let s = eventually("green to be rolled back on its agreement", || {
        send(&p, 10);
        let s = p.status();
        (s["state"] == "rolled_back").then_some(s)
    });
    let why = s["rollback"]["reason"].as_str().unwrap();
    assert!(
        why.starts_with("agreement 0.") && why.contains("< 0.9 over 30s ("),
        "{why}"
    );
    assert!(
        why.contains("of the mirrored answers' labels differed from the served ones"),
        "{why}"
    );
    p.wait_metrics(&[
        "blueshift_rollbacks_total{color=\"green\",reason=\"quality\",route=\"default\"} 1",
    ]);
    assert_eq!(
        s["shadow"],
        serde_json::Value::Null,
        "a rolled-back shadow gets no more copies"
    );
    let before = m.servers[1].controls.predictions();
    send(&p, 20);
    assert_eq!(m.servers[1].controls.predictions(), before);
}

#[test]
fn bodies_over_max_body_are_not_mirrored_and_are_counted_skipped() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    m.servers[1].controls.record_requests();
    let p = Proxy::start(&shadowed(&m, "shadow:\n  color: green\n  max_body: 1KiB\n"));
    let big = vec![b'x'; 4096];
    for _ in 0..3 {
        let r = request(p.addr, "POST", "/predict", &[], &big).unwrap();
        assert_eq!(r.status, 200);
    }
    let small = request(p.addr, "POST", "/predict", &[], b"{\"text\":\"ok\"}").unwrap();
    assert_eq!(small.status, 200);
    p.wait_metrics(&[
        "blueshift_shadow_requests_total{color=\"green\",outcome=\"skipped\",route=\"default\"} 3",
        "blueshift_shadow_requests_total{color=\"green\",outcome=\"match\",route=\"default\"} 1",
    ]);
    let got = m.servers[1].controls.recorded();
    assert_eq!(got.len(), 1, "only the small body was mirrored");
    assert_eq!(got[0].body, b"{\"text\":\"ok\"}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_hung_shadow_holds_at_most_max_in_flight_mirrors_and_the_rest_are_skipped() {
    let mut m = Models::new();
    m.start("v1");
    let g = m.start("v2");
    m.servers[g].controls.set_delay(Duration::from_secs(3600));
    // The latency limit is out of reach, so the hung shadow is not rolled back during the test.
    let extra = "shadow:\n  color: green\n  max_in_flight: 8\nrollback:\n  max_p99_latency: 1h\n";
    let p = Proxy::start(&shadowed(&m, extra));
    send(&p, 20);
    let rss = rss_kib(p.pid());
    let t = Instant::now();
    send(&p, 400);
    let per_request = t.elapsed() / 400;
    assert!(
        per_request < Duration::from_millis(50),
        "{per_request:?} a request"
    );
    p.wait_metrics(&["blueshift_shadow_requests_total{color=\"green\",outcome=\"skipped\",route=\"default\"} 412"]);
    assert_eq!(
        m.servers[g].controls.predictions(),
        8,
        "8 mirrors hang, no more were sent"
    );
    let s = p.status();
    assert_eq!(
        (
            s["shadow"]["mirrored"].as_u64(),
            s["shadow"]["skipped"].as_u64()
        ),
        (Some(8), Some(412)),
        "{s}"
    );
    let grew = rss_kib(p.pid()).saturating_sub(rss);
    assert!(grew < 16 * 1024, "RSS grew {grew} KiB over 400 requests");
    assert_eq!(
        metric(
            &p,
            "blueshift_shadow_requests_total{color=\"green\",outcome=\"error\",route=\"default\"}"
        ),
        0
    );
}

fn rollout(steps: &str) -> String {
    format!("{GATES}rollout:\n  candidate: green\n  steps:\n{steps}")
}

#[test]
fn a_rollout_walks_from_a_shadow_step_through_weights_to_promoted() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let steps = "    - {shadow: 100, hold: 300ms, min_requests: 40}\n    - {weight: 50, hold: 300ms, min_requests: 20}\n    - {weight: 100, hold: 300ms}\n";
    let p = Proxy::start(&shadowed(&m, &rollout(steps)));
    let s = p.status();
    assert_eq!(
        (
            s["rollout"]["step"].as_u64(),
            s["rollout"]["shadow"].as_bool()
        ),
        (Some(1), Some(true)),
        "{s}"
    );
    assert_eq!(s["weights"]["green"], 0);
    // Well past its hold, the shadow step waits for its 40 compared answers: nobody sees green.
    std::thread::sleep(Duration::from_millis(600));
    send(&p, 30);
    let s = p.status();
    assert_eq!(s["rollout"]["step"], 1, "{s}");
    assert!(s["rollout"]["counted"].as_u64() >= Some(29), "{s}");
    assert_eq!(s["rollout"]["min_requests"], 40);
    let mut seen_green_at = None;
    let mut i = 0;
    let s = eventually("the rollout to be promoted", || {
        i += 1;
        let r = p.get(&format!("/predict?id={i}"), &[]);
        assert_eq!(r.status, 200);
        let s = p.status();
        if r.color() == "green" && seen_green_at.is_none() {
            seen_green_at = Some(i);
            assert!(
                s["rollout"]["step"].as_u64() >= Some(2),
                "green served on the shadow step: {s}"
            );
        }
        (s["state"] == "promoted").then_some(s)
    });
    assert!(seen_green_at.is_some(), "green served on the weight steps");
    assert_eq!(s["weights"]["green"], 100);
    assert_eq!(s["rollout"]["shadow"], false);
    assert_eq!(
        s["shadow"],
        serde_json::Value::Null,
        "no mirroring once past the shadow step"
    );
    // The CLI shows the shadow step in the rollout bar.
    let out = p.cli_status();
    assert!(
        out.contains("step 3 of 3: shadow 100% > 50% > [100%]"),
        "{out}"
    );
}

#[test]
fn a_failing_shadow_step_is_rolled_back_without_the_candidate_answering_anyone() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    m.servers[1].controls.set_mode(Mode::Wrong);
    let steps = "    - {shadow: 100, hold: 1h, min_requests: 500}\n    - {weight: 50, hold: 1s}\n";
    let p = Proxy::start(&shadowed(&m, &rollout(steps)));
    let s = eventually("the shadow step to be rolled back", || {
        send(&p, 10);
        let s = p.status();
        (s["state"] == "rolled_back").then_some(s)
    });
    assert_eq!(s["rollback"]["color"], "green");
    assert!(
        s["rollback"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("agreement 0."),
        "{s}"
    );
    assert_eq!(
        (
            s["rollout"]["step"].as_u64(),
            s["rollout"]["shadow"].as_bool()
        ),
        (Some(1), Some(true))
    );
    assert_eq!(s["weights"]["green"], 0);
    // `send` asserted every answer came from blue; the clock stays stopped.
    std::thread::sleep(Duration::from_millis(300));
    send(&p, 50);
    assert_eq!(p.status()["rollout"]["step"], 1);
    let out = p.cli_status();
    assert!(out.contains("step 1 of 2: [shadow 100%] > 50%"), "{out}");
}

#[test]
fn a_shadow_step_with_a_live_shadow_block_shows_its_agreement_in_the_cli() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&shadowed(
        &m,
        &format!("shadow:\n  color: green\n  percent: 50\n{GATES}"),
    ));
    send(&p, 100);
    p.wait_status("compared answers", |s| {
        s["shadow"]["compared"].as_u64() >= Some(30)
    });
    let s = p.status();
    let compared = s["shadow"]["compared"].as_u64().unwrap();
    assert!(
        (25..=75).contains(&compared),
        "50% of 100 mirrored: {compared}"
    );
    let out = p.cli_status();
    assert!(out.contains("shadow    green  copies of 50%"), "{out}");
    assert!(
        out.contains("compared by label, agreement 100% (min 90%), 0 errors, 0 skipped"),
        "{out}"
    );
}
