//! The per-request decision, as the proxy makes it: find the route, find the affinity cookie,
//! choose the color, pick a backend; with one route, and with 100 routes matched by path prefix
//! and by host. Run with `cargo bench --bench decision`.

use std::sync::Arc;
use std::time::Instant;

use blueshift::config::{Pointer, Policy, Routing};
use blueshift::judge::health::Status;
use blueshift::judge::window::Outcomes;
use blueshift::judge::StateName;
use blueshift::proxy::body::model_of;
use blueshift::route::matcher::{Found, Table};
use blueshift::route::snapshot::{Control, RouteInputs, RouteRuntime, RouteView, Snapshot};
use blueshift::route::split::{decide, inputs};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::RequestHeader;

const COLORS: &str = "colors:
    blue: {backends: [{addr: 127.0.0.1:5001}, {addr: 127.0.0.1:5003}]}
    green: {backends: [{addr: 127.0.0.1:5002}]}
  stable: blue
  split: {blue: 90, green: 10}
  affinity: {cookie: blueshift, header: x-session-id}
  override_header: x-blueshift-color";

/// Every backend healthy, nothing rolled back.
fn snapshot(policy: Policy) -> Snapshot {
    let routes = policy
        .routes
        .iter()
        .map(|r| {
            let health: Vec<Vec<Status>> = r
                .colors
                .iter()
                .map(|c| vec![Status::Healthy; c.backends.len()])
                .collect();
            let outcomes: Vec<Arc<Outcomes>> = r
                .colors
                .iter()
                .map(|_| Arc::new(Outcomes::new(Instant::now())))
                .collect();
            RouteRuntime::build(
                &policy,
                r,
                RouteInputs {
                    base_weights: &r.split,
                    rolled_back: &vec![false; r.colors.len()],
                    health: &health,
                    outcomes: &outcomes,
                    mirror: None,
                    view: RouteView {
                        state: StateName::Steady,
                        rollout: None,
                        rollback: None,
                    },
                },
            )
        })
        .collect();
    let matcher = Arc::new(Table::new(&policy.routes));
    Snapshot::new(1, Arc::new(policy), matcher, routes, Control::default())
}

/// Today's single-model policy: one route, named `default`, that takes everything.
fn one_route() -> Snapshot {
    let text = format!("listen: 127.0.0.1:8080\n{}\n", COLORS.replace("\n  ", "\n"));
    snapshot(blueshift::config::parse(&text).unwrap())
}

/// `routes:` with `n` routes, each matched by `matches(i)`, and a catch-all last.
fn routes(n: usize, matches: impl Fn(usize) -> String) -> Snapshot {
    let mut text = String::from("listen: 127.0.0.1:8080\nroutes:\n");
    for i in 0..n {
        let colors = COLORS.replace("cookie: blueshift", &format!("cookie: bs-{i}"));
        text.push_str(&format!(
            "- name: r{i}\n  match: {}\n  {colors}\n",
            matches(i)
        ));
    }
    text.push_str(&format!(
        "- name: rest\n  {}\n",
        COLORS.replace("cookie: blueshift", "cookie: bs")
    ));
    snapshot(blueshift::config::parse(&text).unwrap())
}

fn request(path: &str, host: &str, cookie: Option<&str>, session: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
    r.insert_header("host", host).unwrap();
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
    let Found::Route(i) = snap.matcher.find(req, None) else {
        return usize::MAX;
    };
    let (route, rt) = snap.route(i);
    let input = inputs(req, route);
    let color = decide(&rt.table, input, r).unwrap().color();
    let backend = rt.colors[color].pick(&[], r).unwrap();
    i + color + backend.weight as usize
}

fn bench(c: &mut Criterion) {
    let snap = one_route();
    let new_session = request("/predict", "api.example.com", None, None);
    let pinned = request(
        "/predict",
        "api.example.com",
        Some("_ga=GA1.2.3; blueshift=green; theme=dark"),
        None,
    );
    let garbage = request(
        "/predict",
        "api.example.com",
        Some("blueshift=%%%zz; other=1"),
        None,
    );
    let hashed = request("/predict", "api.example.com", None, Some("user-4711"));
    // A browser's head: a dozen more headers before the cookie.
    let mut browser = request("/predict", "api.example.com", None, None);
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
    let mut run = |name: &str, snap: &Snapshot, req: &RequestHeader| {
        c.bench_function(name, |b| {
            b.iter(|| {
                r = r.wrapping_add(0x9e37_79b9);
                black_box(decision(snap, black_box(req), r))
            })
        });
    };
    run("decision/new_session", &snap, &new_session);
    run("decision/pinned_cookie", &snap, &pinned);
    run("decision/garbage_cookie", &snap, &garbage);
    run("decision/header_hash", &snap, &hashed);
    run("decision/browser_cookie", &snap, &browser);

    // One route with a match, then 100: KServe-style paths, and hosts.
    let path = |i: usize| format!("{{path_prefix: /v2/models/model-{i}}}");
    let host = |i: usize| format!("{{host: model-{i}.models.internal}}");
    let by_path = |i: usize| request(&format!("/v2/models/model-{i}/infer"), "edge", None, None);
    let by_host = |i: usize| {
        request(
            "/predict",
            &format!("model-{i}.models.internal"),
            None,
            None,
        )
    };
    run("routes/1_path_prefix", &routes(1, path), &by_path(0));
    run(
        "routes/100_path_prefix_first",
        &routes(100, path),
        &by_path(0),
    );
    run(
        "routes/100_path_prefix_last",
        &routes(100, path),
        &by_path(99),
    );
    run(
        "routes/100_path_prefix_none",
        &routes(100, path),
        &by_path(1000),
    );
    run("routes/1_host", &routes(1, host), &by_host(0));
    run("routes/100_host_last", &routes(100, host), &by_host(99));

    // Reading the model field of a chat body (named after the messages, as OpenAI's client
    // sends it): the whole body is scanned, and checked to be JSON.
    let routing = Routing {
        model_field: Pointer::parse("/model").unwrap(),
        max_body: 1 << 20,
    };
    for kib in [1, 256] {
        let content = "a".repeat(kib * 1024 - 120);
        let body = format!(
            "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}],\"model\":\"llama-3-8b\",\"stream\":false}}"
        );
        c.bench_function(&format!("routes/model_field_{kib}KiB"), |b| {
            b.iter(|| black_box(model_of(black_box(body.as_bytes()), &routing)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
