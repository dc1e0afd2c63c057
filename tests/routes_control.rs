//! Each route is rolled out, judged and operated on its own: a bad candidate on one route is
//! rolled back there only, admin actions and the CLI name their route, reloads add, change and
//! remove routes under load without a failed request or a reset clock on the routes they leave
//! alone, and routes that name one backend share its health checks.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Models: 0 sentiment blue, 1 sentiment green, 2 ranker blue, 3 ranker canary, 4 llama.
fn models() -> Models {
    let mut m = Models::new();
    for v in ["sent-v1", "sent-v2", "rank-v1", "rank-v2", "llama"] {
        m.start(v);
    }
    m
}

/// Three routes, two mid-rollout with hour-long holds; `extra` is appended as given.
fn policy(m: &Models, sentiment_split: u32, extra: &str) -> String {
    format!(
        "listen: {{listen}}
admin: {{admin}}
health: {{interval: 200ms}}
routes:
  - name: sentiment
    match: {{path_prefix: /v1/sentiment}}
    colors: {{blue: {{backends: [{{addr: {}}}]}}, green: {{backends: [{{addr: {}}}]}}}}
    stable: blue
    split: {{blue: {}, green: {sentiment_split}}}
    rollback: {{min_requests: 10, max_error_rate: 0.1}}
  - name: ranker
    match: {{path_prefix: /rank}}
    colors: {{blue: {{backends: [{{addr: {}}}]}}, canary: {{backends: [{{addr: {}}}]}}}}
    stable: blue
    split: {{blue: 100}}
    rollout: {{candidate: canary, steps: [{{weight: 20, hold: 1h}}, {{weight: 100, hold: 1h}}]}}
  - name: llama
    match: {{path_prefix: /v1/chat/completions, model: llama-3-8b}}
    colors: {{stable: {{backends: [{{addr: {}}}]}}}}
{extra}",
        m.addr(0),
        m.addr(1),
        100 - sentiment_split,
        m.addr(2),
        m.addr(3),
        m.addr(4),
    )
}

fn route<'a>(s: &'a Value, name: &str) -> &'a Value {
    &s["routes"][name]
}

fn cli(p: &Proxy, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blueshift"))
        .args(args)
        .args(["--admin", &p.admin.to_string()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_bad_candidate_on_one_route_is_rolled_back_there_only() {
    let m = models();
    let p = Proxy::start(&policy(&m, 50, ""));
    let s = p.status();
    assert!(
        s["state"].is_null(),
        "with several routes, the per-model fields are per route"
    );
    let ranker = route(&s, "ranker").clone();
    assert_eq!(ranker["state"], "progressing");
    assert_eq!(ranker["weights"]["canary"], 20);
    m.servers[1]
        .controls
        .set_mode(blueshift::model_server::Mode::Failing);
    let s = eventually("sentiment's green to be rolled back", || {
        for path in ["/v1/sentiment", "/rank"] {
            get(p.addr, path, &[]).unwrap();
        }
        let s = p.status();
        (route(&s, "sentiment")["state"] == "rolled_back").then_some(s)
    });
    let rb = &route(&s, "sentiment")["rollback"];
    assert_eq!(
        (rb["color"].as_str(), rb["kind"].as_str()),
        (Some("green"), Some("error_rate"))
    );
    assert!(
        rb["reason"].as_str().unwrap().starts_with("error rate"),
        "{rb}"
    );
    // The other routes never noticed: same state, weights, step and clock.
    let after = route(&s, "ranker");
    assert_eq!(after["state"], "progressing");
    assert_eq!(after["rollback"], Value::Null);
    assert_eq!(after["weights"], ranker["weights"]);
    assert_eq!(after["rollout"]["step"], 1);
    assert_eq!(
        after["rollout"]["next_step_at"],
        ranker["rollout"]["next_step_at"]
    );
    for _ in 0..20 {
        let r = get(p.addr, "/v1/sentiment", &[]).unwrap();
        assert_eq!((r.status, r.color()), (200, "blue"));
        assert_eq!(get(p.addr, "/rank", &[]).unwrap().status, 200);
    }
    p.wait_metrics(&[
        "blueshift_rollbacks_total{color=\"green\",reason=\"error_rate\",route=\"sentiment\"} 1",
        "blueshift_rollbacks_total{color=\"canary\",reason=\"error_rate\",route=\"ranker\"} 0",
        "blueshift_rollout_state{route=\"sentiment\",state=\"rolled_back\"} 1",
        "blueshift_rollout_state{route=\"ranker\",state=\"progressing\"} 1",
    ]);
}

#[test]
fn admin_actions_and_the_cli_name_their_route() {
    let m = models();
    let p = Proxy::start(&policy(&m, 50, ""));
    let r = p.admin_post("/pause", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains("this policy has 3 routes (sentiment, ranker, llama)"),
        "{}",
        r.body
    );
    let r = p.admin_post("/pause?route=nope", &[]);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.contains("there is no route `nope`"), "{}", r.body);
    let r = p.admin_post("/pause?route=ranker", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let s: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        route(&s, "ranker")["state"],
        "paused",
        "the answer is the state after it"
    );
    assert_eq!(route(&s, "sentiment")["state"], "steady");
    let r = p.admin_post("/pause?route=ranker", &[]);
    assert_eq!(r.status, 409, "{r:?}");

    // The CLI: --route, and the API's 400 in its own words.
    let out = cli(&p, &["resume", "--route", "ranker"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("route ranker   state progressing"));
    let out = cli(&p, &["rollback"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rollback refused: this policy has 3 routes")
            && err.contains("--route NAME"),
        "{err}"
    );
    let out = cli(&p, &["rollback", "--route", "sentiment"]);
    assert!(out.status.success(), "{out:?}");
    let s = p.status();
    let rb = &route(&s, "sentiment")["rollback"];
    assert_eq!(
        (
            rb["color"].as_str(),
            rb["kind"].as_str(),
            rb["reason"].as_str()
        ),
        (Some("green"), Some("manual"), Some("manual"))
    );
    assert_eq!(route(&s, "ranker")["rollback"], Value::Null);

    // `status` prints a block per route; --route one of them.
    let text = String::from_utf8_lossy(&cli(&p, &["status"]).stdout).into_owned();
    for want in [
        "3 routes",
        "route sentiment   state rolled_back",
        "route ranker   state progressing",
        "route llama   state steady",
        "takes path /v1/chat/completions, model llama-3-8b",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    let text =
        String::from_utf8_lossy(&cli(&p, &["status", "--route", "llama"]).stdout).into_owned();
    assert!(
        text.contains("route llama") && !text.contains("route ranker"),
        "{text}"
    );
    let out = cli(&p, &["status", "--route", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // The typed document reads back as the CLI reads it.
    let doc: blueshift::ops::status::Status =
        serde_json::from_str(&get(p.admin, "/status", &[]).unwrap().body).unwrap();
    assert!(doc.single.is_none());
    assert_eq!(
        doc.routes.keys().collect::<Vec<_>>(),
        ["sentiment", "ranker", "llama"]
    );
    assert_eq!(
        doc.routes["llama"].matches.model.as_deref(),
        Some("llama-3-8b")
    );

    // /history names its route too.
    assert_eq!(get(p.admin, "/history", &[]).unwrap().status, 400);
    assert_eq!(
        get(p.admin, "/history?route=nope", &[]).unwrap().status,
        404
    );
    let h: Value = eventually("a history point for ranker", || {
        get(p.addr, "/rank", &[]).unwrap();
        let h: Value =
            serde_json::from_str(&get(p.admin, "/history?route=ranker", &[]).unwrap().body).ok()?;
        (h["colors"]["blue"].as_array()?.len() > 1).then_some(h)
    });
    assert_eq!(
        h["colors"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["blue", "canary"]
    );
}

#[test]
fn reloads_add_change_and_remove_routes_under_load_without_a_failed_request() {
    let m = models();
    let mut extra = Models::new();
    extra.start("extra");
    let p = Proxy::start(&policy(&m, 50, ""));
    // When ranker's step ends: a clock restarted by a reload would end it later.
    let clock = |s: &Value| {
        let r = &route(s, "ranker")["rollout"];
        let at = humantime::parse_rfc3339(r["next_step_at"].as_str().unwrap()).unwrap();
        (r["step"].as_u64(), at)
    };
    let before = clock(&p.status());
    // Not a wait for anything: time passes, so that a restarted clock would show.
    std::thread::sleep(Duration::from_secs(2));
    let load = Load::on(
        p.addr,
        &["/v1/sentiment", "/rank"],
        Duration::from_millis(5),
    );
    let write = |text: String| std::fs::write(&p.policy, fill(&text, p.addr, p.admin)).unwrap();
    let revision = |p: &Proxy| p.status()["revision"].as_u64().unwrap();

    let added = format!("  - name: extra\n    match: {{path_prefix: /extra}}\n    colors: {{blue: {{backends: [{{addr: {}}}]}}}}\n", extra.addr(0));
    write(policy(&m, 50, &added));
    p.wait_status("the extra route", |s| {
        route(s, "extra")["state"] == "steady"
    });
    eventually("extra's backend to be healthy", || {
        let r = get(p.addr, "/extra", &[]).ok()?;
        (r.header("x-model-version") == Some("extra")).then_some(())
    });
    write(policy(&m, 10, &added));
    p.wait_status("sentiment's new split", |s| {
        route(s, "sentiment")["weights"]["green"] == 10
    });
    write(policy(&m, 10, ""));
    let s = p.wait_status("extra to be gone", |s| route(s, "extra").is_null());
    assert_eq!(revision(&p), 4, "three changes applied");
    assert_eq!(
        get(p.addr, "/extra", &[]).unwrap().status,
        404,
        "a removed route takes nothing"
    );
    let (step, at) = clock(&s);
    assert_eq!(step, before.0);
    let moved = at.duration_since(before.1).unwrap_or_default();
    assert!(
        moved <= Duration::from_secs(1),
        "ranker's step now ends {moved:?} later"
    );

    // Traffic after the last reload too, before the load stops.
    let served = |p: &Proxy| {
        let line = "blueshift_requests_total{color=\"blue\",route=\"ranker\",status=\"200\"} ";
        let text = p.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let now = served(&p);
    eventually("more traffic", || (served(&p) >= now + 10).then_some(()));
    let samples = load.stop();
    assert!(samples.len() > 20, "{} requests", samples.len());
    let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    // A broken routes policy changes nothing.
    write(policy(&m, 10, "  - name: ranker\n    colors: {}\n"));
    let s = p.wait_status("the refusal", |s| s["last_reload"]["ok"] == false);
    let error = s["last_reload"]["error"].as_str().unwrap();
    assert!(error.contains("two routes are named `ranker`"), "{error}");
    assert_eq!(revision(&p), 4);
    assert_eq!(get(p.addr, "/rank", &[]).unwrap().status, 200);
}

#[test]
fn routes_that_name_one_backend_share_its_health_checks() {
    let mut m = Models::new();
    let shared = m.start("shared");
    let alone = m.start("alone");
    let text = format!(
        "listen: {{listen}}\nadmin: {{admin}}\nhealth: {{interval: 100ms}}\nroutes:\n\
         - {{name: a, match: {{path_prefix: /a}}, colors: {{blue: {{backends: [{{addr: {s}}}]}}}}}}\n\
         - {{name: b, match: {{path_prefix: /b}}, colors: {{stable: {{backends: [{{addr: {s}}}]}}}}}}\n\
         - {{name: c, colors: {{blue: {{backends: [{{addr: {l}}}]}}}}}}\n",
        s = m.addr(shared),
        l = m.addr(alone)
    );
    let p = Proxy::start(&text);
    let (s0, l0) = (
        m.servers[shared].controls.connections(),
        m.servers[alone].controls.connections(),
    );
    eventually("20 health checks of the lone backend", || {
        (m.servers[alone].controls.connections() >= l0 + 20).then_some(())
    });
    let s1 = m.servers[shared].controls.connections() - s0;
    let l1 = m.servers[alone].controls.connections() - l0;
    assert!(
        s1 * 2 < l1 * 3,
        "the shared backend was checked {s1} times while the lone one was {l1}"
    );
    let s = p.status();
    assert_eq!(
        route(&s, "a")["colors"]["blue"]["backends"][0]["health"],
        "healthy"
    );
    assert_eq!(
        route(&s, "b")["colors"]["stable"]["backends"][0]["health"],
        "healthy"
    );
    // Stopping it takes it out of both routes at once.
    m.servers[shared].stop();
    p.wait_status("both routes to see it down", |s| {
        route(s, "a")["colors"]["blue"]["backends"][0]["health"] == "unhealthy"
            && route(s, "b")["colors"]["stable"]["backends"][0]["health"] == "unhealthy"
    });
}
