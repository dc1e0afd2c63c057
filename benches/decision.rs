//! The per-request decision, as the proxy makes it: find the affinity cookie, choose the
//! color, pick a backend. Run with `cargo bench --bench decision`.

use std::sync::Arc;
use std::time::Instant;

use blueshift::judge::health::Status;
use blueshift::judge::window::Outcomes;
use blueshift::route::snapshot::{self, Control, ReloadView, Snapshot, StateName};
use blueshift::route::split::{decide, inputs};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::RequestHeader;

fn snapshot() -> Snapshot {
    let policy = blueshift::config::parse(
        "listen: 127.0.0.1:8080
colors:
  blue: {backends: [{addr: 127.0.0.1:5001}, {addr: 127.0.0.1:5003}]}
  green: {backends: [{addr: 127.0.0.1:5002}]}
stable: blue
split: {blue: 90, green: 10}
affinity: {cookie: blueshift, header: x-session-id}
override_header: x-blueshift-color
",
    )
    .unwrap();
    let health: Vec<Vec<Status>> = policy
        .colors
        .iter()
        .map(|c| vec![Status::Healthy; c.backends.len()])
        .collect();
    let outcomes: Vec<Arc<Outcomes>> = policy
        .colors
        .iter()
        .map(|_| Arc::new(Outcomes::new(Instant::now())))
        .collect();
    Snapshot::build(snapshot::Inputs {
        revision: 1,
        base_weights: &policy.split.clone(),
        rolled_back: &[false, false],
        health: &health,
        outcomes: &outcomes,
        mirror: None,
        policy: Arc::new(policy),
        control: Control {
            state: StateName::Steady,
            rollout: None,
            rollback: None,
            last_reload: ReloadView::default(),
            restart_required: vec![],
            tls: vec![],
        },
    })
}

fn request(cookie: Option<&str>, session: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("POST", b"/predict", None).unwrap();
    r.insert_header("host", "api.example.com").unwrap();
    r.insert_header("user-agent", "python-httpx/0.27").unwrap();
    r.insert_header("content-type", "application/json").unwrap();
    if let Some(c) = cookie {
        r.insert_header("cookie", c).unwrap();
    }
    if let Some(s) = session {
        r.insert_header("x-session-id", s).unwrap();
    }
    r
}

/// What `request_filter` + `upstream_peer` do for one request, with the proxy's own functions.
fn decision(snap: &Snapshot, req: &RequestHeader, r: u32) -> usize {
    let input = inputs(req, &snap.policy);
    let color = decide(&snap.table, input, r).unwrap().color();
    let backend = snap.colors[color].pick(&[], r).unwrap();
    color + backend.weight as usize
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let new_session = request(None, None);
    let pinned = request(Some("_ga=GA1.2.3; blueshift=green; theme=dark"), None);
    let garbage = request(Some("blueshift=%%%zz; other=1"), None);
    let hashed = request(None, Some("user-4711"));
    // A browser's head: a dozen more headers before the cookie.
    let mut browser = request(None, None);
    for (k, v) in [
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("origin", "https://app.example.com"),
        ("referer", "https://app.example.com/chat"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-site"),
        ("sec-ch-ua-platform", "\"Linux\""),
        ("sec-ch-ua-mobile", "?0"),
        ("priority", "u=1, i"),
        ("authorization", "Bearer abc.def.ghi"),
        ("cookie", "_ga=GA1.2.3; blueshift=green; theme=dark"),
    ] {
        browser.append_header(k, v).unwrap();
    }
    let mut r = 0u32;
    let mut run = |name: &str, req: &RequestHeader| {
        c.bench_function(name, |b| {
            b.iter(|| {
                r = r.wrapping_add(0x9e37_79b9);
                black_box(decision(&snap, black_box(req), r))
            })
        });
    };
    run("decision/new_session", &new_session);
    run("decision/pinned_cookie", &pinned);
    run("decision/garbage_cookie", &garbage);
    run("decision/header_hash", &hashed);
    run("decision/browser_cookie", &browser);
}

criterion_group!(benches, bench);
criterion_main!(benches);
