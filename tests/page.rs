//! The live rollout page, end to end: a real blueshift with two model servers, the page in
//! headless Chromium (DevTools protocol), clicked like an operator would; and `/history`.

mod common;

use blueshift::judge::{Kind, StateName};
use blueshift::ops::status::{RouteStatus, Status};
use common::browser::Browser;
use common::*;
use serde_json::Value;

/// A rollout with a shadow step first (moves on after 20 requests), then weights that hold.
fn policy(m: &Models) -> String {
    two_colors(
        &[m.addr(0)],
        &[m.addr(1)],
        (90, 10),
        "quality:\n  prediction: /prediction\n  score: /confidence\n  min_samples: 1000\n\
         rollout:\n  candidate: green\n  steps:\n    - {shadow: 50, hold: 200ms, min_requests: 20}\n    \
         - {weight: 20, hold: 1h}\n    - {weight: 100, hold: 1h}\n",
    )
}

fn page(p: &Proxy, width: u32, height: u32) -> Browser {
    let mut b = Browser::open(&format!("http://{}/", p.admin), width, height);
    eventually("the page's first update", || {
        (b.text("#live").starts_with("live")).then_some(())
    });
    b
}

/// The one route of a policy without `routes:`, in the typed `/status`.
fn one(s: &Status) -> &RouteStatus {
    s.single
        .as_ref()
        .expect("one route's fields at the top level")
}

/// What the page's weight bar should say for a `/status` document.
fn bar_label(s: &Status) -> String {
    let r = one(s);
    r.colors
        .keys()
        .map(|c| format!("{c} {}%", r.weights[c]))
        .collect::<Vec<_>>()
        .join(", ")
}

fn send(p: &Proxy, n: usize, from: usize) {
    for i in from..from + n {
        let r = p.get(&format!("/predict?id={i}"), &[]);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
}

/// Whether nothing spills sideways (no horizontal scrolling).
const FITS: &str = "document.documentElement.scrollWidth <= document.documentElement.clientWidth";

/// What sticks out, when something does.
const WIDER: &str = "[...document.querySelectorAll('body *')].filter(e => \
    e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5) \
    .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8).join(' ')";

fn screenshot_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn the_page_follows_a_rollout_and_a_rollback_clicked_on_it_says_why() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&policy(&m));
    let mut b = page(&p, 1280, 800);

    // The weights /status reports, and the rollout's timeline with its shadow step now.
    let s = p.typed();
    assert_eq!(one(&s).state, StateName::Progressing);
    eventually("the page to show /status's weights", || {
        let label = b.eval("document.getElementById('bar').getAttribute('aria-label')");
        (label.as_str() == Some(bar_label(&p.typed()).as_str())).then_some(())
    });
    assert_eq!(b.text("#state"), "progressing");
    assert_eq!(b.eval("document.querySelectorAll('.step').length"), 3);
    assert_eq!(b.text(".step.now"), "shadow 50%step 1 · now");

    // Traffic flows: the shadow step passes, the charts and the label table fill in.
    send(&p, 200, 0);
    let s = p.wait_typed("step 2", |s| {
        one(s).rollout.as_ref().is_some_and(|r| r.step == 2)
    });
    eventually("the page to show step 2 and its weights", || {
        let label = b.eval("document.getElementById('bar').getAttribute('aria-label')");
        (b.text(".step.now") == "20%step 2 · now" && label.as_str() == Some(&bar_label(&s)))
            .then_some(())
    });
    assert!(b.text("#rollout-line").contains("next step in"));
    eventually("a requests/s line for blue", || {
        let drawn = b.eval("!!document.querySelector('#c-rps path[data-color=blue]')");
        (drawn == Value::Bool(true)).then_some(())
    });
    let answers = b.text("#quality tbody tr:nth-last-child(3) td:nth-child(2)");
    assert!(answers.parse::<u64>().unwrap() > 0, "answers: {answers:?}");
    b.eval("window.scrollTo(0, 0)");
    b.screenshot(&screenshot_path("rollout-page.png"));

    // A rollback clicked on the page, confirmed in its dialog.
    b.click("#act-rollback");
    assert!(b.text("#confirm-text").contains("Roll back"));
    b.click("#confirm-yes");
    let s = p.wait_typed("rolled_back", |s| one(s).state == StateName::RolledBack);
    let rollback = one(&s).rollback.clone().unwrap();
    assert_eq!(rollback.kind, Kind::Manual);
    let reason = rollback.reason;
    assert_eq!(reason, "manual");
    eventually("the page to say why", || {
        (b.text("#state") == "rolled back"
            && b.text("#rollback-reason") == reason
            && b.text("#rollback").starts_with("green was rolled back"))
        .then_some(())
    });
    assert!(
        b.text("#message").contains("done"),
        "{}",
        b.text("#message")
    );
    assert_eq!(b.text("#bar"), "blue 100%");

    // Nothing spills sideways at 1280x800.
    let fits = b.eval(FITS);
    assert_eq!(
        fits,
        Value::Bool(true),
        "the page is wider than 1280: {}",
        b.eval(WIDER)
    );
    b.eval("window.scrollTo(0, 0)");
    let shot = screenshot_path("rollout-page-rolled-back.png");
    b.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

#[test]
fn a_phone_sized_page_fits_and_a_refused_action_says_why() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start_with_env(&policy(&m), &[("BLUESHIFT_ADMIN_TOKEN", "s3cret-token")]);
    let mut b = page(&p, 390, 844);
    let fits = b.eval(FITS);
    assert_eq!(
        fits,
        Value::Bool(true),
        "the page is wider than a phone: {}",
        b.eval(WIDER)
    );

    // Without the token: refused, in words, and nothing changes.
    b.click("#act-pause");
    b.click("#confirm-yes");
    eventually("the refusal on the page", || {
        let m = b.text("#message");
        m.contains("Refused (401)").then_some(m)
    });
    assert!(b.text("#message").contains("admin token"));
    assert_eq!(one(&p.typed()).state, StateName::Progressing);

    // A cancelled confirmation sends nothing.
    b.click("#act-rollback");
    b.click("#confirm-no");
    assert_eq!(one(&p.typed()).state, StateName::Progressing);

    // With the token typed in, the same click pauses the rollout.
    b.type_into("#token", "s3cret-token");
    b.click("#act-pause");
    b.click("#confirm-yes");
    p.wait_typed("paused", |s| one(s).state == StateName::Paused);
    eventually("the page to show paused", || {
        (b.text("#state") == "paused" && b.text("#message").contains("done")).then_some(())
    });

    // An action that does not apply is a 409 in words.
    b.click("#act-pause");
    b.click("#confirm-yes");
    eventually("the 409 on the page", || {
        b.text("#message")
            .contains("Not applied (409)")
            .then_some(())
    });
    b.eval("window.scrollTo(0, 0)");
    b.screenshot(&screenshot_path("rollout-page-phone.png"));
}

#[test]
fn history_keeps_a_point_a_second_per_color_and_refuses_a_bad_since() {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&two_colors(&[m.addr(0)], &[m.addr(1)], (50, 50), ""));
    let history = |q: &str| -> Value {
        let r = get(p.admin, &format!("/history{q}"), &[]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let h = history("");
    assert_eq!(
        (h["interval_seconds"].as_u64(), h["points"].as_u64()),
        (Some(1), Some(300))
    );
    assert!(h["colors"]["blue"].is_array() && h["colors"]["green"].is_array());

    // Traffic shows up as a point with requests for both colors.
    let busy = |h: &Value, c: &str| -> Option<Value> {
        h["colors"][c]
            .as_array()?
            .iter()
            .find(|pt| pt["rps"].as_f64() > Some(0.0))
            .cloned()
    };
    let mut sent = 0;
    let point = eventually("a point with traffic for both colors", || {
        send(&p, 20, sent);
        sent += 20;
        let h = history("");
        busy(&h, "green")?;
        busy(&h, "blue")
    });
    assert_eq!(point["error_rate"], 0.0);
    assert!(point["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(point["first_byte_p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(point["weight"], 50);

    // `since` returns only newer points.
    let t = point["t"].as_u64().unwrap();
    let newer = history(&format!("?since={t}"));
    for pts in newer["colors"].as_object().unwrap().values() {
        assert!(pts
            .as_array()
            .unwrap()
            .iter()
            .all(|pt| pt["t"].as_u64() > Some(t)));
    }

    let bad = get(p.admin, "/history?since=yesterday", &[]).unwrap();
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("since must be a Unix time in milliseconds"),
        "{}",
        bad.body
    );
    let post = post(p.admin, "/history", &[]).unwrap();
    assert_eq!(post.status, 405);

    let page = get(p.admin, "/", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("connect-src 'self'")));
    // Self-contained: nothing is fetched from anywhere else.
    for external in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
        assert!(!page.body.contains(external), "the page loads {external}");
    }
}

#[test]
fn the_page_picks_a_route_shows_every_routes_state_and_acts_on_the_one_shown() {
    let mut m = Models::new();
    for v in ["v1", "v2", "llama-v1", "llama-v2"] {
        m.start(v);
    }
    let text = format!(
        "listen: {{listen}}\nadmin: {{admin}}\nroutes:\n\
         - {{name: llama, match: {{path_prefix: /v1/chat}}, colors: {{stable: {{backends: [{{addr: {}}}]}}, canary: {{backends: [{{addr: {}}}]}}}}, stable: stable, split: {{stable: 100}}, rollout: {{candidate: canary, steps: [{{weight: 30, hold: 1h}}]}}}}\n\
         - {{name: sentiment, colors: {{blue: {{backends: [{{addr: {}}}]}}, green: {{backends: [{{addr: {}}}]}}}}, stable: blue, split: {{blue: 90, green: 10}}}}\n",
        m.addr(2),
        m.addr(3),
        m.addr(0),
        m.addr(1)
    );
    let p = Proxy::start(&text);
    let mut b = page(&p, 1280, 800);
    // Every route at a glance, the first one shown.
    assert_eq!(b.text("#routes"), "llamaprogressingsentimentsteady");
    assert_eq!(
        b.text("#routes button[aria-current=true]"),
        "llamaprogressing"
    );
    assert_eq!(b.text("#bar"), "stable 70%canary 30%");
    assert_eq!(b.text("#state"), "progressing");
    // Another route, picked: its split, its state.
    b.click("#routes button[data-route=sentiment]");
    eventually("sentiment on the page", || {
        (b.text("#bar") == "blue 90%green 10%" && b.text("#state") == "steady").then_some(())
    });
    eventually("sentiment's history", || {
        let drawn = b.eval("Object.keys(history).sort().join(',')");
        (drawn.as_str() == Some("blue,green")).then_some(())
    });
    // An action on the page applies to the route shown, and only to it.
    b.click("#act-rollback");
    assert!(b.text("#confirm-text").contains("(route sentiment)"));
    b.click("#confirm-yes");
    let s = p.wait_typed("sentiment rolled back", |s| {
        s.routes["sentiment"].state == StateName::RolledBack
    });
    assert!(s.single.is_none());
    assert_eq!(s.routes["llama"].state, StateName::Progressing);
    eventually("the picker to show it", || {
        (b.text("#routes") == "llamaprogressingsentimentrolled back").then_some(())
    });
    assert!(
        b.text("#message").contains("sentiment is now rolled back"),
        "{}",
        b.text("#message")
    );
    let fits = b.eval(FITS);
    assert_eq!(
        fits,
        Value::Bool(true),
        "wider than 1280: {}",
        b.eval(WIDER)
    );
}
