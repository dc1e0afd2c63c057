//! `blueshift check` on policies with `routes:`: every problem of every route at once, each at
//! its `line:column`; a summary line per route; warnings for routes that can never match.

mod common;

use common::check::{check_text, rejects};

const ROUTES: &str = "listen: 127.0.0.1:8080
routes:
  - name: sentiment
    match: {path_prefix: /v1/sentiment}
    colors:
      blue: {backends: [{addr: 127.0.0.1:5001}]}
      green: {backends: [{addr: 127.0.0.1:5002}]}
    stable: blue
    split: {blue: 90, green: 10}
  - name: llama
    match: {path_prefix: /v1/chat/completions, model: llama-3-8b}
    colors:
      stable: {backends: [{addr: 127.0.0.1:6001}]}
  - name: fallback
    colors:
      blue: {backends: [{addr: 127.0.0.1:5001}]}
";

#[test]
fn a_routes_policy_gets_a_line_per_route() {
    let (code, stdout, stderr) = check_text(ROUTES);
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "routing    model from /model of JSON bodies up to 1 MiB",
        "route      sentiment      path /v1/sentiment  ->  blue 90% stable, green 10%",
        "route      llama          path /v1/chat/completions, model llama-3-8b  ->  stable 100% stable",
        "route      fallback       every request  ->  blue 100% stable",
    ] {
        assert!(stdout.contains(want), "{want} not in:\n{stdout}");
    }
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn every_problem_of_every_route_is_reported_at_once() {
    let bad = "listen: 127.0.0.1:8080
colors: {blue: {backends: [{addr: 127.0.0.1:5001}]}}
routing: {model_field: model, max_body: lots}
routes:
  - name: sentiment
    match: {path_prefix: v1/sentiment, host: 'api:80'}
    colors:
      blue: {backends: [{addr: 127.0.0.1:5001}]}
    split: {blue: 90, purple: 10}
  - name: sentiment
    colors:
      blue: {backends: [{addr: 127.0.0.1:5001}]}
  - name: empty
  - name: Bad_Name
    colors: {blue: {backends: [{addr: 127.0.0.1:5001}]}}
  - name: llama
    match: {model: ''}
    colors: {blue: {backends: [{addr: 127.0.0.1:6001}]}}
";
    let (code, _, stderr) = check_text(bad);
    assert_eq!(code, 1);
    for (at, want) in [
        (
            "2:9",
            "`colors` belongs in a route when the policy has `routes:`",
        ),
        ("3:24", "routing.model_field: `model` is not a JSON Pointer"),
        ("3:41", "routing.max_body: `lots` is not a size"),
        (
            "6:26",
            "route `sentiment`: match.path_prefix: `v1/sentiment` must start with /",
        ),
        (
            "6:46",
            "route `sentiment`: match.host: `api:80` has a port: give the host alone",
        ),
        (
            "9:23",
            "route `sentiment`: split: there is no color `purple`",
        ),
        ("10:11", "routes: two routes are named `sentiment`"),
        ("13:11", "route `empty`: `colors` is required"),
        ("14:11", "routes[3]: `Bad_Name` is not a route name"),
        ("17:20", "route `llama`: match.model: give the model's name"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no `{want}` in:\n{stderr}"));
        assert!(
            line.starts_with(&format!("FILE:{at}: ")),
            "wanted {at}: {line}"
        );
    }
    assert!(stderr.ends_with("is invalid: 10 problems\n"), "{stderr}");
}

#[test]
fn structural_problems_inside_a_route_are_placed_too() {
    rejects(
        &ROUTES.replace(
            "    match: {path_prefix: /v1/sentiment}",
            "    match: {path_prefix: /v1/sentiment, method: GET}",
        ),
        "4:41",
        "unknown key `method` in routes[0].match (expected host, path_prefix, headers, model)",
    );
    rejects(
        &ROUTES.replace("model: llama-3-8b", "model: [llama-3-8b, llama-3-70b]"),
        "11:55",
        "expected a string",
    );
    rejects(
        &ROUTES.replace("  - name: fallback\n", "  - name: fallback\n    affinity: {cookie: blueshift}\n    override_header: x-color\n    rollout: {candidate: green, steps: [{weight: 10, hold: 1s}]}\n"),
        "17:26",
        "route `fallback`: rollout.candidate: there is no color `green`",
    );
}

#[test]
fn routes_that_share_a_cookie_would_read_each_others_pins() {
    let shared = ROUTES
        .replace(
            "    split: {blue: 90, green: 10}\n",
            "    split: {blue: 90, green: 10}\n    affinity: {cookie: bs}\n",
        )
        .replace(
            "      stable: {backends: [{addr: 127.0.0.1:6001}]}\n",
            "      stable: {backends: [{addr: 127.0.0.1:6001}]}\n    affinity: {cookie: bs}\n",
        );
    rejects(
        &shared,
        "15:15",
        "routes `sentiment` and `llama` would both pin sessions with cookie `bs`",
    );
}

#[test]
fn a_route_that_can_never_match_is_a_warning_with_its_place() {
    let shadowed = format!(
        "{ROUTES}  - name: late\n    match: {{path_prefix: /v1/sentiment/batch}}\n    colors: {{blue: {{backends: [{{addr: 127.0.0.1:5001}}]}}}}\n  - name: twin\n    match: {{path_prefix: /v1/sentiment}}\n    colors: {{blue: {{backends: [{{addr: 127.0.0.1:5001}}]}}}}\n"
    );
    let (code, stdout, stderr) = check_text(&shadowed);
    assert_eq!(code, 0, "warnings are not errors: {stderr}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "{stdout}");
    assert!(warnings[0].ends_with(":17:11: warning: route `late` can never match: `sentiment` before it takes every request it would (its match is broader)"), "{}", warnings[0]);
    assert!(warnings[1].ends_with(":20:11: warning: route `twin` can never match: `sentiment` before it has the same match"), "{}", warnings[1]);
}
