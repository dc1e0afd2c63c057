//! Routing behaviour end to end: the real binary, real model servers, real sockets.

mod common;

use std::collections::HashMap;

use common::*;

const COOKIE: &str = "affinity:\n  cookie: blueshift\n  max_age: 1h\n";

fn shares(p: &Proxy, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = p.get("/predict", &[]);
        assert_eq!(r.status, 200, "{r:?}");
        *seen.entry(r.color().to_owned()).or_default() += 1;
    }
    seen
}

#[test]
fn split_matches_weights_within_3_points_over_2000_requests() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (90, 10), ""));
    let seen = shares(&p, 2000);
    let green = *seen.get("green").unwrap_or(&0) as f64 / 2000.0 * 100.0;
    assert!(
        (green - 10.0).abs() <= 3.0,
        "green got {green:.1}% of 2000: {seen:?}"
    );
    assert_eq!(seen.values().sum::<usize>(), 2000);
    // The label is honest: the model that answered is the one the header names.
    assert_eq!(m.servers[g].controls.predictions() as usize, seen["green"]);
}

#[test]
fn every_proxied_response_names_its_color_and_the_model_agrees() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), ""));
    for _ in 0..40 {
        let r = p.get("/predict", &[]);
        let expected = if r.color() == "blue" { "v1" } else { "v2" };
        assert!(["blue", "green"].contains(&r.color()), "{r:?}");
        assert_eq!(r.header("x-model-version"), Some(expected));
    }
}

#[test]
fn replayed_cookie_keeps_the_session_on_its_color() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), COOKIE));
    let first = p.get("/predict", &[]);
    let pinned = first
        .pinned("blueshift")
        .expect("a new session gets the cookie");
    assert_eq!(pinned, first.color());
    let set = first.header("set-cookie").unwrap();
    for attr in ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let cookie = format!("blueshift={pinned}");
    for _ in 0..50 {
        let r = p.get("/predict", &[("cookie", &cookie)]);
        assert_eq!(r.color(), pinned);
        assert_eq!(r.pinned("blueshift"), None, "a valid pin is not re-issued");
    }
}

#[test]
fn weight_zero_drains_new_sessions_but_keeps_pinned_ones() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), COOKIE));
    let seen = shares(&p, 200);
    assert_eq!(
        seen.get("green"),
        None,
        "no new session may land on a weight-0 color: {seen:?}"
    );
    for _ in 0..20 {
        let r = p.get("/predict", &[("cookie", "blueshift=green")]);
        assert_eq!(r.color(), "green");
        assert_eq!(r.pinned("blueshift"), None);
    }
}

#[test]
fn garbage_and_unknown_cookies_are_reassigned_and_reissued() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), COOKIE));
    for cookie in [
        "blueshift=purple",
        "blueshift=%%%zz",
        "blueshift=",
        "blueshift=\"green\"",
        "blueshift=GREEN",
        "=;;=blueshift",
    ] {
        let r = p.get("/predict", &[("cookie", cookie)]);
        assert_eq!(r.status, 200, "{cookie}: {r:?}");
        assert_eq!(r.color(), "blue", "{cookie}");
        assert_eq!(
            r.pinned("blueshift").as_deref(),
            Some("blue"),
            "{cookie} must be re-issued"
        );
    }
}

#[test]
fn upstream_set_cookie_passes_through_beside_ours() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), COOKIE));
    let r = p.get("/login", &[]);
    let cookies = r.all("set-cookie");
    assert!(
        cookies.contains(&"model_session=abc123; Path=/"),
        "{cookies:?}"
    );
    assert_eq!(r.pinned("blueshift").as_deref(), Some("blue"));
    // With a valid pin, the upstream's cookie still arrives, alone.
    let r = p.get(
        "/login",
        &[("cookie", "blueshift=blue; model_session=abc123")],
    );
    assert_eq!(r.all("set-cookie"), vec!["model_session=abc123; Path=/"]);
}

#[test]
fn override_header_reaches_a_weight_zero_color_and_refuses_unknown_ones() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let extra = format!("{COOKIE}override_header: x-blueshift-color\n");
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), &extra));
    for _ in 0..10 {
        let r = p.get("/predict", &[("x-blueshift-color", "green")]);
        assert_eq!((r.status, r.color()), (200, "green"));
        assert_eq!(r.header("x-model-version"), Some("v2"));
        assert_eq!(r.pinned("blueshift"), None, "an override sets no cookie");
    }
    let r = p.get("/predict", &[("x-blueshift-color", "purple")]);
    assert_eq!(r.status, 503);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.body.contains("no color"), "{}", r.body);
    // The proxy keeps serving normally afterwards.
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn override_to_a_color_without_healthy_backends_is_503() {
    let mut m = Models::new();
    let b = m.start("v1");
    let extra = "override_header: x-blueshift-color\nhealth:\n  interval: 100ms\n  timeout: 100ms\n  unhealthy_after: 1\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[dead_addr()], (100, 0), extra));
    let r = eventually("green to be marked unhealthy", || {
        let r = p.get("/predict", &[("x-blueshift-color", "green")]);
        (r.status == 503).then_some(r)
    });
    assert!(r.body.contains("green"), "{}", r.body);
}

/// Health checks so rare that only the connect-retry path can notice a dead backend.
const BLIND: &str = "health:\n  interval: 1h\n";

#[test]
fn a_backend_dying_in_a_pool_of_two_causes_no_client_error() {
    let mut m = Models::new();
    let (b1, b2, g) = (m.start("v1"), m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(
        &[m.addr(b1), m.addr(b2)],
        &[m.addr(g)],
        (100, 0),
        BLIND,
    ));
    m.servers[b2].stop();
    for i in 0..300 {
        let r = p.get("/predict", &[]);
        assert_eq!((r.status, r.color()), (200, "blue"), "request {i}: {r:?}");
    }
    assert_eq!(m.servers[b1].controls.predictions(), 300);
}

#[test]
fn a_backend_hanging_up_is_retried_for_idempotent_requests_only() {
    let mut m = Models::new();
    let (bad, good, g) = (m.start("v1"), m.start("v1"), m.start("v2"));
    m.servers[bad]
        .controls
        .set_mode(blueshift::model_server::Mode::Hangup);
    let p = Proxy::start(&two_colors(
        &[m.addr(bad), m.addr(good)],
        &[m.addr(g)],
        (100, 0),
        BLIND,
    ));
    for i in 0..100 {
        let r = p.get("/predict", &[]);
        assert_eq!(r.status, 200, "GET {i}: {r:?}");
    }
    assert!(
        m.servers[bad].controls.predictions() > 0,
        "the bad backend was tried"
    );
    // A POST may have reached the model: it is never replayed, the client sees the failure.
    let statuses: Vec<u16> = (0..40)
        .map(|_| post(p.addr, "/predict", &[]).unwrap().status)
        .collect();
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502),
        "{statuses:?}"
    );
}

#[test]
fn a_dying_color_falls_back_to_stable_without_errors() {
    let mut m = Models::new();
    let (b, g1, g2) = (m.start("v1"), m.start("v2"), m.start("v2"));
    let extra = format!("{COOKIE}{BLIND}");
    let p = Proxy::start(&two_colors(
        &[m.addr(b)],
        &[m.addr(g1), m.addr(g2)],
        (50, 50),
        &extra,
    ));
    m.servers[g1].stop();
    m.servers[g2].stop();
    for i in 0..200 {
        let r = p.get("/predict", &[]);
        assert_eq!((r.status, r.color()), (200, "blue"), "request {i}: {r:?}");
        if let Some(pin) = r.pinned("blueshift") {
            assert_eq!(
                pin, "blue",
                "a new session served by stable is pinned to stable"
            );
        }
    }
}

#[test]
fn a_color_dead_from_the_start_gets_no_traffic() {
    let mut m = Models::new();
    let b = m.start("v1");
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[dead_addr()], (50, 50), COOKIE));
    let s = p.status();
    assert_eq!(s["colors"]["green"]["backends"][0]["healthy"], false);
    assert_eq!(s["weights"]["green"], 0, "{s}");
    for _ in 0..100 {
        let r = p.get("/predict", &[("cookie", "blueshift=green")]);
        assert_eq!((r.status, r.color()), (200, "blue"));
        assert_eq!(
            r.pinned("blueshift").as_deref(),
            Some("blue"),
            "a pin to a dead color is re-issued"
        );
    }
}

#[test]
fn nothing_left_answers_502_or_503_with_a_plain_reason() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), BLIND));
    m.servers[b].stop();
    m.servers[g].stop();
    let r = p.get("/predict", &[]);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        r.body.starts_with("blueshift: no backend of color blue"),
        "{}",
        r.body
    );
    // Once health checks know, the answer is an immediate 503.
    let p = Proxy::start(&two_colors(&[dead_addr()], &[dead_addr()], (50, 50), ""));
    let r = p.get("/predict", &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body, "blueshift: no color has a healthy backend\n");
}

#[test]
fn header_affinity_is_sticky_and_identical_on_two_replicas() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let policy = two_colors(
        &[m.addr(b)],
        &[m.addr(g)],
        (50, 50),
        "affinity:\n  header: x-session-id\n",
    );
    let (one, two) = (Proxy::start(&policy), Proxy::start(&policy));
    let mut greens = 0;
    for k in 0..100 {
        let id = format!("user-{k}");
        let first = one
            .get("/predict", &[("x-session-id", &id)])
            .color()
            .to_owned();
        for _ in 0..3 {
            assert_eq!(
                one.get("/predict", &[("x-session-id", &id)]).color(),
                first,
                "{id} moved"
            );
        }
        assert_eq!(
            two.get("/predict", &[("x-session-id", &id)]).color(),
            first,
            "replicas disagree on {id}"
        );
        greens += usize::from(first == "green");
    }
    assert!(
        (30..=70).contains(&greens),
        "50/50 split gave {greens}/100 to green"
    );
}

#[test]
fn oversized_headers_get_4xx_and_the_proxy_keeps_serving() {
    let mut m = Models::new();
    let b = m.start("v1");
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(b)], (100, 0), ""));
    // Over blueshift's 64 KiB limit, and over Pingora's own 1 MiB one.
    for (size, expected) in [(100 * 1024, 431), (2 * 1024 * 1024, 400)] {
        let req = format!(
            "GET /predict HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let r = parse(&raw(p.addr, req.as_bytes()).unwrap())
            .expect("an HTTP answer, not a dropped connection");
        assert_eq!(r.status, expected, "{size} bytes of headers");
        assert_eq!(
            m.servers[b].controls.predictions(),
            0,
            "oversized requests must not reach the model"
        );
    }
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let mut m = Models::new();
    let b = m.start("v1");
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(b)], (100, 0), ""));
    // Plain listeners also take HTTP/2 with prior knowledge: Pingora tells the two apart by the
    // first 24 bytes (the HTTP/2 preface), so each case is at least that long, as any HTTP/1.1
    // request with its Host header is.
    let hello: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e";
    let cases: [&[u8]; 4] = [
        b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
        hello,
    ];
    for garbage in cases {
        let r = parse(&raw(p.addr, garbage).unwrap()).expect("an HTTP answer");
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(garbage));
    }
    assert_eq!(m.servers[b].controls.predictions(), 0);
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn metrics_count_requests_per_color_and_status() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let extra = "override_header: x-blueshift-color\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), extra));
    for _ in 0..7 {
        p.get("/predict", &[]);
    }
    for _ in 0..3 {
        p.get("/predict", &[("x-blueshift-color", "green")]);
    }
    p.wait_metrics(&[
        "blueshift_requests_total{color=\"blue\",route=\"default\",status=\"200\"} 7",
        "blueshift_requests_total{color=\"green\",route=\"default\",status=\"200\"} 3",
        "blueshift_request_duration_seconds_count{color=\"blue\",route=\"default\"} 7",
        "blueshift_color_weight{color=\"blue\",route=\"default\"} 100",
        "blueshift_color_weight{color=\"green\",route=\"default\"} 0",
    ]);
}

#[test]
fn the_model_sees_who_asked_in_x_forwarded_for_and_proto() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), ""));
    let head = p.get("/headers", &[]).body.to_lowercase();
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    // A chain the client brought is extended, not replaced; a terminator's scheme is kept.
    let head = p
        .get(
            "/headers",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .body
        .to_lowercase();
    assert!(
        head.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
    assert_eq!(head.matches("x-forwarded-for").count(), 1, "{head}");
    // A request retried on another backend after a refused connect is sent with one address.
    let p = Proxy::start(&two_colors(
        &[dead_addr(), m.addr(b)],
        &[m.addr(g)],
        (100, 0),
        BLIND,
    ));
    for i in 0..20 {
        let head = p.get("/headers", &[]).body.to_lowercase();
        assert_eq!(
            head.matches("x-forwarded-for: 127.0.0.1\r\n").count(),
            1,
            "request {i}: {head}"
        );
    }
}

#[test]
fn an_empty_content_length_is_not_forwarded_on_get() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), ""));
    // `common::request` sends `content-length: 0` with every request.
    let seen = |method| {
        let r = request(p.addr, method, "/headers", &[], b"").unwrap();
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        r.body.to_lowercase()
    };
    let get = seen("GET");
    assert!(!get.contains("content-length"), "{get}");
    assert!(get.contains("x-forwarded-for: 127.0.0.1\r\n"), "{get}");
    let post = seen("POST");
    assert!(post.contains("content-length: 0\r\n"), "{post}");
    let plain = p.get("/headers", &[]).body.to_lowercase();
    assert!(!plain.contains("content-length"), "{plain}");
}

#[test]
fn upstream_connections_are_reused_with_hundreds_of_requests_in_flight() {
    two_bursts_reuse_upstream_connections(None);
    // A Pingora conf that does not mention the pool (here: only threads) keeps blueshift's.
    two_bursts_reuse_upstream_connections(Some("---\nversion: 1\nthreads: 1\n"));
}

fn two_bursts_reuse_upstream_connections(pingora_conf: Option<&str>) {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    // Slow answers, so that every request of a burst is in flight at once.
    m.servers[b]
        .controls
        .set_delay(std::time::Duration::from_millis(300));
    let policy = two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), "");
    let p = Proxy::start_with(&policy, &[], pingora_conf);
    let burst = |n: usize| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let addr = p.addr;
                std::thread::spawn(move || get(addr, "/predict", &[]).map(|r| r.status))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), 200);
        }
    };
    burst(200);
    let opened = m.servers[b].controls.connections();
    assert!(
        opened >= 150,
        "only {opened} upstream connections for 200 slow requests"
    );
    burst(200);
    // Pingora's default pool keeps 128 idle connections: the second burst would open ~72 more.
    let reopened = m.servers[b].controls.connections() - opened;
    assert!(
        reopened <= 10,
        "conf {pingora_conf:?}: the second burst opened {reopened} new upstream connections"
    );
}
