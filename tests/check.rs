//! `blueshift check` and `blueshift serve` on bad input: every problem, its place, exit codes.

mod common;

use std::process::Command;

use common::check::{blueshift, check_text, rejects};

const GOOD: &str = "listen: 127.0.0.1:8080
colors:
  blue:
    backends:
      - addr: 127.0.0.1:5001
  green:
    backends:
      - addr: 127.0.0.1:5002
stable: blue
split:
  blue: 90
  green: 10
";

/// `blueshift demo --prepare`: the demo policy's TLS pair, which a clean clone does not have.
fn prepare_demo() {
    let out = Command::new(env!("CARGO_BIN_EXE_blueshift"))
        .args(["demo", "--prepare"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn every_policy_under_conf_is_valid() {
    prepare_demo();
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = blueshift(&["check", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn a_valid_policy_gets_a_summary_and_exit_0() {
    let (code, stdout, _) = check_text(GOOD);
    assert_eq!(code, 0);
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stdout.contains("blue") && stdout.contains("90.0%") && stdout.contains("stable"),
        "{stdout}"
    );
    assert!(stdout.lines().count() < 25, "one screen: {stdout}");
}

#[test]
fn unknown_keys_are_errors_where_they_stand() {
    rejects(&format!("{GOOD}bogus: 1\n"), "13:1", "unknown key `bogus`");
    rejects(
        &GOOD.replace(
            "      - addr: 127.0.0.1:5002",
            "      - addr: 127.0.0.1:5002\n        wieght: 2",
        ),
        "9:9",
        "unknown key `wieght` in colors.green.backends[0]",
    );
    rejects(
        &format!("{GOOD}health:\n  intervall: 1s\n"),
        "14:3",
        "unknown key `intervall` in health",
    );
}

#[test]
fn colors_that_do_not_exist_are_named() {
    rejects(
        &GOOD.replace("stable: blue", "stable: purple"),
        "9:9",
        "stable: there is no color `purple`",
    );
    rejects(
        &GOOD.replace("  green: 10", "  gren: 10"),
        "12:3",
        "split: there is no color `gren`",
    );
    rejects(
        &format!("{GOOD}rollout:\n  candidate: red\n  steps: [{{weight: 10, hold: 1s}}]\n"),
        "14:14",
        "rollout.candidate: there is no color `red`",
    );
}

#[test]
fn weights_must_be_non_negative_and_not_all_zero() {
    rejects(
        &GOOD.replace("green: 10", "green: -10"),
        "12:10",
        "weight of `green` must be a whole number >= 0, not -10",
    );
    rejects(
        &GOOD
            .replace("blue: 90", "blue: 0")
            .replace("green: 10", "green: 0"),
        "11:",
        "at least one color needs a weight above 0",
    );
    rejects(
        &GOOD.replace("127.0.0.1:5001", "127.0.0.1:5001\n        weight: -1"),
        "6:17",
        "backend weight must be a whole number >= 0, not -1",
    );
}

#[test]
fn stable_and_split_are_required_with_two_colors() {
    let (code, _, stderr) = check_text(&GOOD.replace("stable: blue\n", ""));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`stable` is required with 2 or more colors"),
        "{stderr}"
    );
    let (code, _, stderr) = check_text(GOOD.split("split:").next().unwrap());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`split` is required with 2 or more colors"),
        "{stderr}"
    );
}

#[test]
fn a_color_needs_backends() {
    rejects(
        &GOOD.replace(
            "    backends:\n      - addr: 127.0.0.1:5002\n",
            "    backends: []\n",
        ),
        "7:15",
        "color `green` has no backends",
    );
}

#[test]
fn durations_addresses_and_rates_are_checked() {
    rejects(
        &format!("{GOOD}health:\n  interval: soon\n"),
        "14:13",
        "health.interval: `soon` is not a duration",
    );
    rejects(
        &GOOD.replace("127.0.0.1:5002", "127.0.0.1:70000"),
        "8:15",
        "`127.0.0.1:70000` has no valid port",
    );
    rejects(
        &GOOD.replace("127.0.0.1:5002", "nohost"),
        "8:15",
        "`nohost` is not host:port",
    );
    rejects(
        &GOOD.replace("listen: 127.0.0.1:8080", "listen: 8080"),
        "1:9",
        "listen: `8080` is not host:port",
    );
    rejects(
        &format!("{GOOD}rollback:\n  max_error_rate: 1.5\n"),
        "14:19",
        "rollback.max_error_rate must be between 0 and 1, not 1.5",
    );
    rejects(
        &format!("{GOOD}rollback:\n  max_error_rate: -0.1\n"),
        "14:19",
        "must be between 0 and 1",
    );
}

#[test]
fn the_admin_api_needs_its_own_port() {
    rejects(
        &format!("admin: 127.0.0.1:8080\n{GOOD}"),
        "1:8",
        "admin: 127.0.0.1:8080 is also a listen address",
    );
    rejects(
        &GOOD.replace(
            "listen: 127.0.0.1:8080",
            "listen: [127.0.0.1:8080, 127.0.0.1:8080]",
        ),
        "1:26",
        "listen: 127.0.0.1:8080 is listed twice",
    );
}

#[test]
fn the_candidate_cannot_be_the_stable_color() {
    rejects(
        &format!("{GOOD}rollout:\n  candidate: blue\n  steps: [{{weight: 10, hold: 1s}}]\n"),
        "14:14",
        "`blue` is the stable color; the candidate must be another one",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "listen: 127.0.0.1:8080
colors:
  blue:
    backends:
      - addr: 127.0.0.1:5001
  Green:
    backends: []
stable: purple
split: {blue: -1}
health: {interval: soon, typo: 1}
rollback: {max_error_rate: 2}
extra: true
";
    let (code, _, stderr) = check_text(yaml);
    assert_eq!(code, 1);
    for expected in [
        "FILE:6:3: color `Green`: names use only a-z, 0-9 and -",
        "FILE:7:15: color `Green` has no backends",
        "FILE:8:9: stable: there is no color `purple`",
        "weight of `blue` must be a whole number >= 0, not -1",
        "health.interval: `soon` is not a duration",
        "unknown key `typo` in health",
        "rollback.max_error_rate must be between 0 and 1, not 2",
        "FILE:12:1: unknown key `extra`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(stderr.trim_end().ends_with("problems"), "{stderr}");
}

#[test]
fn type_errors_inside_colors_and_split_name_the_entry_and_nothing_else() {
    let yaml = "listen: 127.0.0.1:8080
colors:
  blue:
    backends:
      - addr: 127.0.0.1:5001
  green:
    backends:
      addr: 127.0.0.1:5002
  red:
    backends: 127.0.0.1:5003
stable: blue
split:
  blue: 90
  green: ten
  red: 1.5
";
    let (code, _, stderr) = check_text(yaml);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "FILE:8:11: colors.green.backends: expected a sequence, found a mapping",
            "FILE:10:15: colors.red.backends: expected a sequence, found string \"127.0.0.1:5003\"",
            "FILE:14:10: split.green: expected a whole number, found `ten`",
            "FILE:15:8: split.red: expected a whole number, found `1.5`",
            "FILE is invalid: 4 problems",
        ],
        "{stderr}"
    );
}

#[test]
fn broken_yaml_empty_and_missing_files_are_clear() {
    let (code, _, stderr) = check_text("listen: [127.0.0.1:8080\ncolors: {}\n");
    assert_eq!(code, 1);
    assert!(stderr.starts_with("FILE:2:7: invalid YAML"), "{stderr}");
    let (code, _, stderr) = check_text("");
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("FILE: the policy file is empty"),
        "{stderr}"
    );
    let (code, _, stderr) = check_text("- a\n- b\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("the policy must be a mapping"), "{stderr}");
    let out = blueshift(&["check", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read /nonexistent/policy.yaml: no such file"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(blueshift(&["check"]).status.code(), Some(2));
    assert_eq!(blueshift(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(blueshift(&["serve"]).status.code(), Some(2));
}

#[test]
fn serve_refuses_an_invalid_policy_or_a_busy_port_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, GOOD.replace("stable: blue", "stable: red")).unwrap();
    let out = blueshift(&["serve", "-p", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stable: there is no color `red`"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    std::fs::write(&path, GOOD.replace("127.0.0.1:8080", &addr.to_string())).unwrap();
    let out = blueshift(&["serve", "-p", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn quality_keys_are_checked_where_they_stand() {
    let q = |body: &str| format!("{GOOD}quality:\n{body}");
    rejects(
        &q("  prediction: prediction\n"),
        "14:15",
        "quality.prediction: `prediction` is not a JSON Pointer: it starts with /",
    );
    rejects(
        &q("  prediction: /a/*/b/*\n"),
        "14:15",
        "quality.prediction: `/a/*/b/*` has more than one * segment",
    );
    rejects(
        &q("  prediction: /p\n  score: conf\n"),
        "15:10",
        "quality.score: `conf` is not a JSON Pointer",
    );
    rejects(
        &q("  prediction: /p\n  max_label_shift: 1.5\n"),
        "15:20",
        "quality.max_label_shift must be between 0 and 1, not 1.5",
    );
    rejects(
        &q("  prediction: /p\n  max_invalid_rate: -0.1\n"),
        "15:21",
        "quality.max_invalid_rate must be between 0 and 1, not -0.1",
    );
    rejects(
        &q("  prediction: /p\n  min_samples: 0\n"),
        "15:16",
        "quality.min_samples must be a whole number >= 1, not 0",
    );
    rejects(
        &q("  prediction: /p\n  max_body: lots\n"),
        "15:13",
        "quality.max_body: `lots` is not a size (write e.g. 4096, 256KiB, 1MiB)",
    );
    rejects(
        &q("  score: /s\n"),
        "14:8",
        "quality: `prediction` is required",
    );
    rejects(
        &q("  prediction: /p\n  labels: 3\n"),
        "15:3",
        "unknown key `labels` in quality",
    );
    rejects(
        &format!("{GOOD}rollback:\n  latency: ttfb\n"),
        "14:12",
        "rollback.latency: `ttfb` is not total or first_byte",
    );
}

#[test]
fn every_quality_problem_is_reported_at_once_and_a_good_block_is_summarised() {
    let yaml = format!(
        "{GOOD}quality:\n  prediction: nope\n  max_score_shift: 7\n  min_samples: 0\n  max_body: 1.5MiB\n"
    );
    let (code, _, stderr) = check_text(&yaml);
    assert_eq!(code, 1);
    for at in ["14:15", "15:20", "16:16", "17:13"] {
        assert!(
            stderr.contains(&format!("FILE:{at}:")),
            "no {at} in:\n{stderr}"
        );
    }
    assert!(stderr.trim_end().ends_with("4 problems"), "{stderr}");
    let good = format!(
        "{GOOD}quality:\n  prediction: /predictions/*/label\n  score: /confidence\n  max_body: 1MiB\nrollback:\n  latency: first_byte\n"
    );
    let (code, stdout, stderr) = check_text(&good);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("quality    label /predictions/*/label, score /confidence: label shift > 0.2, score shift > 0.1, invalid > 0.05 (min 100 answers, bodies up to 1 MiB)"),
        "{stdout}"
    );
    assert!(stdout.contains("p99 (to the first byte) > 2s"), "{stdout}");
}

#[test]
fn shadow_keys_and_shadow_steps_are_checked_where_they_stand() {
    let sh = |body: &str| format!("{GOOD}shadow:\n{body}");
    rejects(
        &sh("  color: purple\n"),
        "14:10",
        "shadow.color: there is no color `purple`",
    );
    rejects(
        &sh("  color: blue\n"),
        "14:10",
        "shadow.color: `blue` is the stable color",
    );
    rejects(
        &sh("  color: green\n  percent: 0\n"),
        "15:12",
        "shadow.percent is a percent: 1 to 100, not 0",
    );
    rejects(
        &sh("  color: green\n  max_body: big\n"),
        "15:13",
        "shadow.max_body: `big` is not a size",
    );
    rejects(
        &sh("  color: green\n  min_agreement: 1.5\n"),
        "15:18",
        "shadow.min_agreement must be between 0 and 1, not 1.5",
    );
    rejects(
        &sh("  color: green\n  max_in_flight: 0\n"),
        "15:18",
        "shadow.max_in_flight must be a whole number >= 1, not 0",
    );
    rejects(
        &sh("  percent: 10\n"),
        "14:10",
        "shadow: name the `color` that gets the copies",
    );
    let steps = |list: &str| format!("{GOOD}rollout:\n  candidate: green\n  steps:\n{list}");
    rejects(
        &steps("    - {weight: 10, shadow: 50, hold: 1m}\n"),
        "16:16",
        "rollout.steps[0]: give `weight` (live traffic) or `shadow` (mirrored copies), not both",
    );
    rejects(
        &steps("    - {hold: 1m}\n"),
        "16:7",
        "rollout.steps[0]: give `weight` (live traffic) or `shadow` (mirrored copies)",
    );
    rejects(
        &steps("    - {shadow: 0, hold: 1m}\n"),
        "16:16",
        "rollout.steps[0].shadow is a percent: 1 to 100, not 0",
    );
    rejects(
        &steps("    - {weight: 10, hold: 1m, min_requests: 0}\n"),
        "16:44",
        "rollout.steps[0].min_requests must be a whole number >= 1, not 0",
    );
    rejects(
        &steps("    - {weight: 10, hold: 1m, min_request: 5}\n"),
        "16:30",
        "unknown key `min_request`",
    );
}

#[test]
fn a_rollout_with_a_shadow_step_needs_no_shadow_color_and_is_summarised() {
    let yaml = format!(
        "{GOOD}shadow:\n  max_body: 64KiB\n  min_agreement: 0.95\nrollout:\n  candidate: green\n  steps:\n    - {{shadow: 100, hold: 2m, min_requests: 500}}\n    - {{weight: 10, hold: 30s, min_requests: 200}}\n    - {{weight: 100, hold: 30s}}\n"
    );
    let (code, stdout, stderr) = check_text(&yaml);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("rollout    green: shadow 100% for 2m and 500 compared answers -> 10% for 30s and 200 requests -> 100% for 30s"),
        "{stdout}"
    );
    let standing = format!("{GOOD}shadow: {{color: green, percent: 25}}\n");
    let (code, stdout, stderr) = check_text(&standing);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("shadow     green: copies of 25% of requests (bodies up to 1 MiB), rolled back below 0.9 agreement, 256 in flight at most"),
        "{stdout}"
    );
}

#[test]
fn the_demo_policy_with_its_commented_rollout_is_valid_too() {
    prepare_demo();
    // Its certificate paths are relative to conf/; the copy checked here lives elsewhere.
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/demo.yaml"))
        .unwrap()
        .replace(
            ": demo-tls/",
            concat!(": ", env!("CARGO_MANIFEST_DIR"), "/conf/demo-tls/"),
        );
    let start = demo
        .find("    # rollout:")
        .expect("conf/demo.yaml carries a commented rollout in its sentiment route");
    let mut text = demo[..start].to_string();
    for line in demo[start..].lines() {
        // `    # rollout:` and `    #   candidate: ...` lose their `# `.
        let (indent, rest) = line.split_at(line.len() - line.trim_start().len());
        match rest.strip_prefix("# ") {
            Some(l) if l.starts_with("rollout:") || l.starts_with("  ") => {
                text.push_str(indent);
                text.push_str(l);
            }
            _ => text.push_str(line),
        }
        text.push('\n');
    }
    let (code, stdout, stderr) = check_text(&text);
    assert_eq!(code, 0, "{stderr}\n{text}");
    assert!(
        stdout.contains("rollout green: shadow 100% -> 10% -> 50% -> 100%"),
        "{stdout}"
    );
}

#[test]
fn tls_listeners_and_color_protocols_are_checked_where_they_stand() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, g: &blueshift::config::certs::Generated| {
        let (c, k) = (
            dir.path().join(format!("{name}.crt")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, &g.cert_pem).unwrap();
        std::fs::write(&k, &g.key_pem).unwrap();
        (c.display().to_string(), k.display().to_string())
    };
    let (a_cert, a_key) = write(
        "a",
        &blueshift::config::certs::self_signed(&["a.test"], 1).unwrap(),
    );
    let (_, b_key) = write(
        "b",
        &blueshift::config::certs::self_signed(&["b.test"], 1).unwrap(),
    );
    let listen = |cert: &str, key: &str| {
        GOOD.replace(
            "listen: 127.0.0.1:8080\n",
            &format!("listen:\n  - 127.0.0.1:8080\n  - addr: 127.0.0.1:8443\n    tls:\n      cert: {cert}\n      key: {key}\n"),
        )
    };
    let (code, _, stderr) = check_text(&listen(&a_cert, &a_key));
    assert_eq!(code, 0, "{stderr}");
    rejects(
        &listen(&a_cert, &b_key),
        "6:12",
        "listen[1].tls: the key in ",
    );
    rejects(
        &listen("/nope/cert.pem", &a_key),
        "5:13",
        "listen[1].tls: cannot read /nope/cert.pem: no such file",
    );
    rejects(
        &listen(&a_cert, &a_cert),
        "6:12",
        "holds no PEM private key",
    );
    rejects(&listen(&a_key, &a_key), "5:13", "holds no PEM certificate");
    let color = |extra: &str| GOOD.replace("  green:\n", &format!("  green:\n{extra}"));
    rejects(
        &color("    protocol: http3\n"),
        "7:15",
        "colors.green.protocol: `http3` is not http1, h2c, https or h2",
    );
    rejects(
        &color("    tls: {sni: x}\n"),
        "7:10",
        "colors.green.tls: only for protocol https or h2 (this color speaks http1)",
    );
    rejects(
        &color("    protocol: h2\n    tls: {ca: /nope/ca.pem}\n"),
        "8:15",
        "colors.green.tls.ca: cannot read /nope/ca.pem: no such file",
    );
    rejects(&color("    health: {grpc: true}\n"), "7:20", "colors.green.health.grpc: gRPC needs HTTP/2: set colors.green.protocol to h2c or h2 (not http1)");
    rejects(
        &color("    health: {service: model}\n"),
        "7:23",
        "colors.green.health.service: names a gRPC service; set grpc: true",
    );
    rejects(
        &color("    health: {interval: soon}\n"),
        "7:24",
        "colors.green.health.interval: `soon` is not a duration",
    );
    let good = color(&format!("    protocol: h2\n    tls: {{sni: models.internal, ca: {a_cert}}}\n    health: {{grpc: true, service: model.Predictor, interval: 5s}}\n"));
    let (code, stdout, stderr) = check_text(&good);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("127.0.0.1:5002 (w1) (h2)"), "{stdout}");
    assert!(
        stdout.contains("health     green      gRPC health check of model.Predictor every 5s"),
        "{stdout}"
    );
}
