//! Property tests of everything that reads untrusted input: the policy loader, the header and
//! cookie readers, the routing choice, the quality gates' answer extraction, and the proxy and
//! admin API over real sockets. Nothing may panic, and where an answer is known it must be the
//! one given. `cargo fuzz` (in `fuzz/`) explores the same code for longer; what either finds
//! becomes a regression test here or in the module's unit tests.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use blueshift::config::Pointer;
use blueshift::config::{self, Quality};
use blueshift::judge::answer::{self, Answer, Sse, Tap};
use blueshift::proxy::forwarded;
use blueshift::proxy::framing;
use blueshift::route::affinity;
use blueshift::route::split::{self, Decision, Inputs, Table};
use common::origin::{send_closing, Recorder};
use common::*;
use http_desync_guardian::request_analyzer::HttpRequestData;
use http_desync_guardian::RequestSafetyTier;
use pingora_http::{RequestHeader, ResponseHeader};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const DEMO: &str = include_str!("../conf/demo.yaml");

/// `cases` cases, or `PROPTEST_CASES` of them (a longer hunt: `PROPTEST_CASES=20000`).
fn config(cases: u32) -> Config {
    let env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    Config {
        cases: env.unwrap_or(cases),
        failure_persistence: None,
        ..Config::default()
    }
}

/// The demo policy with a few random edits: cut spans, inserted YAML-ish fragments, repeated
/// lines. Most results are invalid in some interesting way.
fn edited_policy() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        ":",
        "- ",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        "'",
        "\"",
        "&a ",
        "*a",
        "!!str ",
        "-1",
        "1e309",
        ".nan",
        "~",
        "0x10",
        "99999999999999999999",
        "\t",
        "#",
        "weight: ",
        "hold: 1ms",
        "\u{0}",
        "é",
        "\u{feff}",
        "<<: *a",
    ]);
    let edit = (any::<prop::sample::Index>(), 0usize..40, fragment, 0u8..3);
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut text = DEMO.to_string();
        for (at, len, frag, kind) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                0 => {
                    let mut end = (i + len).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(i..end, "");
                }
                1 => text.insert_str(i, frag),
                _ => {
                    let start = text[..i].rfind('\n').map_or(0, |n| n + 1);
                    let end = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
                    let line = text[start..end].to_string();
                    text.insert_str(start, &line);
                }
            }
        }
        text
    })
}

fn check_policy(text: &str) -> Result<(), TestCaseError> {
    if let Err(problems) = config::parse_in(text, Path::new("conf")) {
        prop_assert!(!problems.0.is_empty());
        for p in &problems.0 {
            prop_assert!(!p.message.trim().is_empty(), "an empty problem");
            prop_assert!(!p.message.contains('\n'), "a problem spans lines: {}", p);
        }
    }
    Ok(())
}

#[test]
fn the_policy_loader_answers_every_text_with_a_policy_or_problems() {
    let mut runner = TestRunner::new(config(400));
    runner
        .run(&edited_policy(), |text| check_policy(&text))
        .unwrap();
    runner
        .run(&any::<String>(), |text| check_policy(&text))
        .unwrap();
}

fn quality() -> Quality {
    let text = DEMO.replace("{listen}", "127.0.0.1:1");
    config::parse_in(&text, Path::new("conf"))
        .ok()
        .and_then(|mut p| p.routes.remove(0).quality)
        .or_else(|| {
            let minimal = "listen: 127.0.0.1:1\nadmin: 127.0.0.1:2\ncolors:\n  blue:\n    backends: [{addr: 127.0.0.1:3}]\nquality:\n  prediction: /prediction\n  score: /confidence\n";
            config::parse(minimal).unwrap().routes.remove(0).quality
        })
        .unwrap()
}

/// One event of a model's token stream, as servers write them (and as they should not).
fn event() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec!["cat", "dog", "é", "", "a\\\"b"]);
    let eol = prop::sample::select(vec!["\n", "\r\n", "\r"]);
    (label, any::<f32>(), eol, 0u8..6).prop_map(|(label, score, eol, kind)| match kind {
        0 => format!("data: {{\"prediction\": \"{label}\", \"confidence\": {score}}}{eol}{eol}"),
        1 => format!("data: [DONE]{eol}{eol}"),
        2 => format!(": keep-alive{eol}"),
        3 => format!("event: token{eol}data: {{\"prediction\"{eol}{eol}"),
        4 => format!("data: {{\"a\":{eol}data: 1}}{eol}{eol}"),
        _ => format!("id: 7{eol}retry: 10{eol}"),
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_stream_reads_the_same_however_it_is_cut(
        events in prop::collection::vec(event(), 0..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let q = quality();
        let text = events.concat();
        let bytes = text.as_bytes();
        let mut whole = Sse::default();
        whole.feed(bytes, &q);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort();
        let mut cut = Sse::default();
        let mut from = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            cut.feed(&bytes[from..p], &q);
            from = p;
        }
        prop_assert_eq!(whole.finish(&q), cut.finish(&q));
    }

    #[test]
    fn any_answer_body_is_valid_invalid_or_skipped(
        body in prop::collection::vec(any::<u8>(), 0..512),
        encoding in prop::sample::select(vec!["", "gzip", "deflate", "br", "zstd", "x"]),
        stream in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let q = quality();
        let _ = answer::json(&body, &q);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        if !encoding.is_empty() {
            resp.insert_header("content-encoding", encoding).unwrap();
        }
        let kind = if stream { "text/event-stream" } else { "application/json" };
        resp.insert_header("content-type", kind).unwrap();
        let mut tap = Tap::for_response(&resp, false, &q).unwrap();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        points.sort();
        let mut from = 0;
        for p in points.into_iter().chain([body.len()]) {
            tap.feed(&body[from..p], &q);
            from = p;
        }
        match tap.finish(&q) {
            Answer::Valid { labels, .. } => prop_assert!(!labels.is_empty()),
            Answer::Invalid | Answer::Skipped => {}
        }
    }

    #[test]
    fn a_json_answer_yields_its_label(label in "[a-zA-Z0-9 _.-]{1,40}", score in 0.0f64..1.0) {
        let q = quality();
        let body = serde_json::json!({"prediction": label, "confidence": score, "x": [1, {"y": null}]});
        match answer::json(body.to_string().as_bytes(), &q) {
            Answer::Valid { labels, scores } => {
                prop_assert_eq!(labels, vec![label]);
                prop_assert_eq!(scores.len(), 1);
                prop_assert!((scores[0] - score).abs() < 1e-9);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn any_pointer_text_parses_or_says_why(text in ".{0,40}") {
        match Pointer::parse(&text) {
            Ok(p) => prop_assert_eq!(p.as_str(), text.as_str()),
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    #[test]
    fn the_affinity_cookie_is_found_among_others(
        others in prop::collection::vec(("[a-z_]{1,8}", "[!#-+\\--:<-\\[\\]-~]{0,12}"), 0..6),
        at in any::<prop::sample::Index>(),
        value in "[a-z0-9-]{1,12}",
        garbage in "[ -~]{0,30}",
    ) {
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(k, _)| k != "bs_color")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.insert(at.index(pairs.len() + 1), format!(" bs_color = {value} "));
        let header = pairs.join(";");
        prop_assert_eq!(affinity::find(header.as_bytes(), b"bs_color"), Some(value.as_bytes()));
        // Whatever else a client sends, the reader answers.
        let _ = affinity::find(garbage.as_bytes(), b"bs_color");
    }

    #[test]
    fn forwarding_headers_extend_any_chain(
        chains in prop::collection::vec("[\\t -~]{0,40}", 0..3),
        proto in prop::option::of("[a-z]{1,6}"),
    ) {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for c in &chains {
            let _ = req.append_header("x-forwarded-for", c.trim());
        }
        if let Some(p) = &proto {
            req.insert_header("x-forwarded-proto", p.as_str()).unwrap();
        }
        forwarded::add(&mut req, Some([127, 0, 0, 1].into()), "http").unwrap();
        let xff = req.headers.get("x-forwarded-for").unwrap().to_str().unwrap();
        prop_assert!(xff == "127.0.0.1" || xff.ends_with(", 127.0.0.1"), "{}", xff);
        let want = proto.as_deref().unwrap_or("http");
        prop_assert_eq!(req.headers.get("x-forwarded-proto").unwrap().to_str().unwrap(), want);
    }

    #[test]
    fn framing_rules_refuse_every_lookalike(
        headers in prop::collection::vec((
            prop::sample::select(vec![
                "host", "content-length", "transfer-encoding", "content_length",
                "transfer--encoding", "x-transfer-encoding-hint", "cookie", "x-a",
            ]),
            "[ -~]{0,12}",
        ), 0..6),
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT"]),
    ) {
        let mut req = RequestHeader::build(method, b"/predict", None).unwrap();
        for (k, v) in &headers {
            req.append_header(*k, v.trim()).unwrap();
        }
        let verdict = framing::check(&req);
        let lookalike = headers.iter().any(|(k, _)| *k == "content_length" || *k == "transfer--encoding");
        if lookalike {
            prop_assert!(verdict.is_err());
        }
        if let Err(r) = verdict {
            prop_assert!([400, 431, 501].contains(&r.status));
        }
    }

    #[test]
    fn routing_always_picks_a_color_that_may_take_traffic(
        colors in prop::collection::vec((0u32..=100, any::<bool>()), 1..5),
        stable in any::<prop::sample::Index>(),
        override_color in prop::option::of(prop::sample::select(vec!["c0", "c1", "c9", " c0 ", ""])),
        cookie in prop::option::of("[a-z0-9]{0,3}"),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        r in any::<u32>(),
    ) {
        let names: Vec<String> = (0..colors.len()).map(|i| format!("c{i}")).collect();
        let weights = colors.iter().map(|c| c.0).collect();
        let eligible: Vec<bool> = colors.iter().map(|c| c.1).collect();
        let t = Table::new(names, weights, eligible.clone(), stable.index(colors.len()));
        let input = Inputs {
            override_color: override_color.map(str::as_bytes),
            cookie: cookie.as_deref().map(str::as_bytes),
            session_key: key.as_deref(),
        };
        match split::decide(&t, input, r) {
            Ok(Decision::Override(i)) => prop_assert!(eligible[i]),
            Ok(d) => {
                prop_assert!(eligible[d.color()]);
                prop_assert!(override_color.is_none());
                let hashed = split::decide(&t, input, r.wrapping_add(1)).unwrap();
                if matches!(d, Decision::Hashed(_)) {
                    prop_assert_eq!(hashed, d, "a session key always lands on the same color");
                }
            }
            Err(split::Refusal::NothingEligible) => prop_assert!(!eligible.contains(&true)),
            Err(_) => prop_assert!(override_color.is_some()),
        }
    }
}

/// Well-formed request heads to mutate.
const HEADS: &[&[u8]] = &[
    b"GET /predict HTTP/1.1\r\nHost: models\r\nCookie: a=b; bs_color=green\r\n\r\n",
    b"POST /predict HTTP/1.1\r\nHost: models\r\nContent-Length: 4\r\n\r\n{}{}",
    b"POST /predict HTTP/1.1\r\nHost: models\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"GET /stream HTTP/1.0\r\nX-Forwarded-For: 10.0.0.1\r\nX-Blueshift-Color: blue\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
];

/// A head with random bytes replaced, inserted or removed, biased towards the characters HTTP
/// framing turns on.
fn mutated_head() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        prop::sample::select(b"\r\n :;,\t\0\x0b\x7f-_0123456789abcdefABCDEF".to_vec()),
        any::<u8>(),
    ];
    let edit = (any::<prop::sample::Index>(), byte, 0u8..3);
    let head = prop::sample::select(HEADS.to_vec());
    (head, prop::collection::vec(edit, 1..5)).prop_map(|(head, edits)| {
        let mut h = head.to_vec();
        for (at, b, kind) in edits {
            let i = at.index(h.len());
            match kind {
                0 => h[i] = b,
                1 => h.insert(i, b),
                _ => {
                    h.remove(i);
                }
            }
        }
        h
    })
}

#[test]
fn mutated_requests_are_answered_and_never_forwarded_ambiguously() {
    let origin = Recorder::start();
    let p = Proxy::start(&format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n  green:\n    backends: [{{addr: {}}}]\nstable: blue\nsplit: {{blue: 50, green: 50}}\naffinity: {{cookie: bs_color}}\noverride_header: x-blueshift-color\ntimeouts: {{client_header: 2s, client_body: 2s}}\n",
        origin.addr, origin.addr
    ));
    p.wait_checked();
    let mut runner = TestRunner::new(config(300));
    let (forwarded, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(&mutated_head(), |bytes| {
            let (status, got) = origin.exchange(p.addr, &bytes);
            match got.is_empty() {
                true => refused.fetch_add(1, Ordering::Relaxed),
                false => forwarded.fetch_add(1, Ordering::Relaxed),
            };
            if let Some(s) = status {
                prop_assert!((100..600).contains(&s));
            }
            for head in got {
                let verdict = HttpRequestData::analyze_raw_request(&head);
                prop_assert_eq!(
                    verdict.tier,
                    RequestSafetyTier::Compliant,
                    "{:?} was forwarded as {:?}: {:?}",
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&head),
                    verdict.reason
                );
            }
            Ok(())
        })
        .unwrap();
    let (forwarded, refused) = (forwarded.into_inner(), refused.into_inner());
    eprintln!("{forwarded} mutated requests forwarded, {refused} refused or dropped");
    // Sanity: the mutations hit both sides of the rules (most edits keep a request valid).
    assert!(
        forwarded > 30 && refused > 30,
        "{forwarded} forwarded, {refused} refused"
    );
    assert_eq!(get(p.addr, "/predict", &[]).unwrap().status, 200);
}

#[test]
fn the_admin_api_answers_every_request_as_documented() {
    let (_m, p) = {
        let mut m = Models::new();
        m.start("v1");
        let policy = format!(
            "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n",
            m.addr(0)
        );
        let p = Proxy::start_with_env(&policy, &[(blueshift::ops::admin::TOKEN_ENV, "s3cret")]);
        (m, p)
    };
    let methods = prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]);
    let paths = prop::sample::select(vec![
        "/healthz",
        "/status",
        "/metrics",
        "/reload",
        "/rollback",
        "/promote",
        "/pause",
        "/resume",
        "/",
        "/history",
        "/history?since=0",
        "/history?since=yesterday",
        "/status/",
        "/nope",
        "//status",
        "/status?x=1",
        "/%73tatus",
    ]);
    let auth = prop::option::of(prop::sample::select(vec![
        "Bearer s3cret",
        "Bearer nope",
        "s3cret",
        "Bearer ",
    ]));
    let mut runner = TestRunner::new(config(150));
    runner
        .run(&(methods, paths, auth), |(method, path, auth)| {
            let mut head =
                format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
            if let Some(a) = auth {
                head.push_str(&format!("Authorization: {a}\r\n"));
            }
            head.push_str("Content-Length: 0\r\n\r\n");
            let status = send_closing(p.admin, head.as_bytes());
            let route = path.split('?').next().unwrap();
            let reads = ["/healthz", "/status", "/metrics", "/", "/history"];
            let acts = ["/reload", "/rollback", "/promote", "/pause", "/resume"];
            let want: &[u16] = match (method, route) {
                ("GET" | "HEAD", _) if path.ends_with("since=yesterday") => &[400],
                ("GET" | "HEAD", r) if reads.contains(&r) => &[200],
                ("POST", r) if acts.contains(&r) && auth == Some("Bearer s3cret") => &[200, 409],
                ("POST", r) if acts.contains(&r) => &[401],
                (_, r) if reads.contains(&r) || acts.contains(&r) => &[405],
                _ => &[404],
            };
            prop_assert!(
                status.is_some_and(|s| want.contains(&s)),
                "{} {} ({:?}): {:?}, want {:?}",
                method,
                path,
                auth,
                status,
                want
            );
            Ok(())
        })
        .unwrap();
    // Garbage is answered or dropped, and the API stays up.
    runner
        .run(&mutated_head(), |bytes| {
            if let Some(s) = send_closing(p.admin, &bytes) {
                prop_assert!((100..600).contains(&s));
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(get(p.admin, "/healthz", &[]).unwrap().status, 200);
}
