//! The operator's side: the CLI against a running proxy, metrics that promtool accepts, a
//! dashboard and alerts that only name real metrics, and deployment recipes that check out.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blueshift"));
    c.args(args)
        .env_remove("BLUESHIFT_ADMIN")
        .env_remove("BLUESHIFT_ADMIN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const ROLLOUT: &str = "rollout:\n  candidate: green\n  steps:\n    - {weight: 10, hold: 1h}\n    - {weight: 50, hold: 1h}\n    - {weight: 100, hold: 1h}\n";

#[test]
fn status_prints_a_readable_table_and_json() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let dead = dead_addr();
    let p = Proxy::start(&two_colors(
        &[m.addr(b), dead],
        &[m.addr(g)],
        (90, 10),
        ROLLOUT,
    ));
    let admin = p.admin.to_string();
    let o = cli(&["status", "--admin", &admin], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        !out.contains('\x1b'),
        "no terminal, no escape codes: {out:?}"
    );
    assert!(
        out.contains("revision 1")
            && out.contains("state progressing")
            && out.contains("stable blue"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("blue")
            && l.contains(" 90%")
            && l.contains(&format!("{} healthy", m.addr(b)))
            && l.contains(&format!("{dead} unhealthy"))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("green") && l.contains(" 10%")),
        "{out}"
    );
    assert!(
        out.contains("rollout   green  #--  step 1 of 3: [10%] > 50% > 100%   next step in 59m"),
        "{out}"
    );
    assert!(
        out.contains("rollback  none") && out.contains("reload    none since start"),
        "{out}"
    );
    // BLUESHIFT_ADMIN stands in for --admin.
    let o = cli(&["status", "--json"], &[("BLUESHIFT_ADMIN", &admin)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["weights"]["blue"], 90);
}

#[test]
fn actions_print_the_new_state_or_fail_with_the_servers_reason() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let p = Proxy::start_with_env(
        &two_colors(&[m.addr(b)], &[m.addr(g)], (90, 10), ROLLOUT),
        &[("BLUESHIFT_ADMIN_TOKEN", "t0k3n")],
    );
    let admin = p.admin.to_string();
    let o = cli(&["pause", "--admin", &admin], &[]);
    assert_eq!(o.status.code(), Some(1));
    let (_, err) = text(&o);
    assert_eq!(
        err.trim(),
        "pause refused: this action needs Authorization: Bearer <BLUESHIFT_ADMIN_TOKEN>"
    );
    let token = [("BLUESHIFT_ADMIN_TOKEN", "t0k3n")];
    let o = cli(&["pause", "--admin", &admin], &token);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("state paused"), "{out}");
    let o = cli(&["pause", "--admin", &admin], &token);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o).1.trim(),
        "pause refused: the rollout is already paused"
    );
    let o = cli(&["rollback", "--admin", &admin], &token);
    assert!(
        text(&o).0.contains("rollback  green: manual (at "),
        "{}",
        text(&o).0
    );
    let o = cli(&["resume", "--admin", &admin], &token);
    assert!(o.status.success());
    let o = cli(&["reload", "--admin", &admin], &token);
    assert!(o.status.success());
    assert!(text(&o).0.contains("reload    ok at "), "{}", text(&o).0);
    let o = cli(&["promote", "--admin", &admin], &token);
    assert!(text(&o).0.contains("state promoted"));
}

#[test]
fn the_cli_explains_an_unreachable_admin_api_and_bad_usage() {
    let dead = dead_addr().to_string();
    let o = cli(&["status", "--admin", &dead], &[]);
    assert_eq!(o.status.code(), Some(1));
    let (_, err) = text(&o);
    assert_eq!(err.trim(), format!("cannot reach the admin API at {dead}: connection refused (is blueshift running? see --admin)"));
    assert_eq!(cli(&["status", "--bogus"], &[]).status.code(), Some(2));
    let o = cli(&["rollback", "--help"], &[]);
    assert!(
        o.status.success()
            && text(&o).0.contains("--admin <ADDR>")
            && text(&o).0.contains("BLUESHIFT_ADMIN_TOKEN")
    );
}

#[test]
fn counters_are_exact_after_n_requests() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    m.servers[g]
        .controls
        .set_mode(blueshift::model_server::Mode::Failing);
    let extra = "override_header: x-blueshift-color\nrollback:\n  min_requests: 1000\n";
    let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], (100, 0), extra));
    let before = p.metrics();
    assert!(
        before.contains(
            "blueshift_requests_total{color=\"blue\",route=\"default\",status=\"200\"} 0"
        ),
        "zero series from the first scrape"
    );
    assert!(before.contains(
        "blueshift_rollbacks_total{color=\"green\",reason=\"error_rate\",route=\"default\"} 0"
    ));
    for _ in 0..25 {
        p.get("/predict", &[]);
    }
    for _ in 0..4 {
        p.get("/predict", &[("x-blueshift-color", "green")]);
    }
    for _ in 0..3 {
        p.get("/predict", &[("x-blueshift-color", "nope")]);
    }
    let t = p.wait_metrics(&[
        "blueshift_requests_total{color=\"blue\",route=\"default\",status=\"200\"} 25",
        "blueshift_requests_total{color=\"green\",route=\"default\",status=\"500\"} 4",
        "blueshift_requests_total{color=\"none\",route=\"default\",status=\"503\"} 3",
        "blueshift_request_duration_seconds_count{color=\"blue\",route=\"default\"} 25",
        "blueshift_request_duration_seconds_count{color=\"green\",route=\"default\"} 4",
        "blueshift_rollout_state{route=\"default\",state=\"steady\"} 1",
        "blueshift_policy_revision 1",
    ]);
    assert!(
        t.contains(&format!(
            "blueshift_backend_healthy{{backend=\"{}\",color=\"blue\",route=\"default\"}} 1",
            m.addr(b)
        )),
        "{t}"
    );
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new("promtool");
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .expect("promtool is installed by `make test` (Debian package prometheus)");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Metric names a live blueshift exports, from its `# TYPE` lines.
fn exported(p: &Proxy) -> BTreeSet<String> {
    p.metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

/// Every `blueshift_*` name in `text`, with histogram suffixes folded onto the exported family.
fn named(text: &str, real: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("blueshift_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| real.contains(*f)));
        out.insert(family.unwrap_or(&name).to_owned());
    }
    out
}

#[test]
fn metrics_pass_promtool_and_dashboard_and_alerts_name_only_real_metrics() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    // Every feature on, so that every metric is exported: quality gates, a shadow, a TLS
    // listener and a gRPC color.
    let grpc = common::peers::PyServer::grpc("v3", None);
    let dir = tempfile::tempdir().unwrap();
    let pair = blueshift::config::certs::self_signed(&["localhost"], 30).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    let gates =
        "quality:\n  prediction: /prediction\n  score: /confidence\nshadow:\n  color: green\n";
    let policy = two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), gates)
        .replacen(
            "listen: {listen}\n",
            &format!(
                "listen:\n  - {{listen}}\n  - {{addr: {{tls}}, tls: {{cert: {}, key: {}}}}}\n",
                cert.display(),
                key.display()
            ),
            1,
        )
        .replace(
            "stable: blue",
            &format!(
                "  grpc:\n    protocol: h2c\n    health: {{grpc: true}}\n    backends: [{{addr: {}}}]\nstable: blue",
                grpc.addr
            ),
        );
    let p = Proxy::start(&policy);
    for i in 0..10 {
        p.get(&format!("/predict?id={i}"), &[]);
    }
    p.wait_metrics(&[
        "blueshift_prediction_score_count{color=\"blue\",route=\"default\"}",
        "blueshift_shadow_requests_total{color=\"green\",outcome=\"match\",route=\"default\"}",
        "blueshift_grpc_responses_total{code=\"OK\",color=\"grpc\",route=\"default\"}",
        "blueshift_tls_certificate_expiry_seconds{listener=",
    ]);
    let o = promtool(&["check", "metrics"], Some(&p.metrics()));
    assert!(o.status.success(), "promtool: {}{}", text(&o).0, text(&o).1);

    let real = exported(&p);
    assert_eq!(real.len(), 15, "{real:?}");
    let dashboard = std::fs::read_to_string(format!("{ROOT}/conf/grafana/blueshift.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(exprs.len() >= 8);
    let used = named(&exprs.join("\n"), &real);
    assert!(
        used.is_subset(&real),
        "dashboard names metrics that do not exist: {:?}",
        used.difference(&real).collect::<Vec<_>>()
    );
    assert_eq!(used, real, "every metric has a panel");

    let rules = format!("{ROOT}/conf/prometheus/alerts.yml");
    let o = promtool(&["check", "rules", &rules], None);
    assert!(o.status.success(), "promtool: {}{}", text(&o).0, text(&o).1);
    let used = named(&std::fs::read_to_string(&rules).unwrap(), &real);
    assert!(
        used.is_subset(&real),
        "alerts name metrics that do not exist: {:?}",
        used.difference(&real).collect::<Vec<_>>()
    );
}

#[test]
fn the_systemd_unit_verifies_and_reloads_with_sighup() {
    let unit = std::fs::read_to_string(format!("{ROOT}/deploy/systemd/blueshift.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let dir = tempfile::tempdir().unwrap();
    // systemd-analyze wants the binaries to exist: point the unit at the one under test.
    let local = unit
        .replace("/usr/local/bin/blueshift", env!("CARGO_BIN_EXE_blueshift"))
        .replace("User=blueshift", "User=root")
        .replace("Group=blueshift", "Group=root");
    let path = dir.path().join("blueshift.service");
    std::fs::write(&path, local).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(o.status.success(), "{}", text(&o).1);
}

#[test]
fn the_kubernetes_manifests_parse_and_carry_a_valid_policy() {
    let read = |f: &str| std::fs::read_to_string(format!("{ROOT}/deploy/k8s/{f}")).unwrap();
    let policy = read("policy.yaml");
    blueshift::config::parse(&policy).unwrap_or_else(|e| panic!("deploy/k8s/policy.yaml: {e}"));
    let cm = marked_yaml::parse_yaml(0, read("configmap.yaml")).unwrap();
    let embedded = cm
        .as_mapping()
        .unwrap()
        .get_mapping("data")
        .unwrap()
        .get_scalar("policy.yaml")
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(
        embedded, policy,
        "configmap.yaml carries deploy/k8s/policy.yaml verbatim"
    );
    let dep = read("deployment.yaml");
    marked_yaml::parse_yaml(0, &dep).unwrap();
    for needle in [
        "path: /healthz",
        "prometheus.io/scrape: \"true\"",
        "prometheus.io/port: \"9901\"",
        "name: blueshift-policy",
        "mountPath: /etc/blueshift",
    ] {
        assert!(dep.contains(needle), "deployment.yaml lacks {needle}");
    }
    assert!(
        !dep.contains("subPath"),
        "a subPath mount would never see ConfigMap updates"
    );
    marked_yaml::parse_yaml(0, read("service.yaml")).unwrap();
}

#[test]
fn the_dockerfile_copies_only_what_exists() {
    let docker = std::fs::read_to_string(format!("{ROOT}/deploy/Dockerfile")).unwrap();
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(
                std::path::Path::new(ROOT).join(src).exists(),
                "{line}: {src} does not exist"
            );
        }
    }
    assert!(docker.contains("apt-get install -y --no-install-recommends cmake"));
}

#[test]
fn healthz_is_503_until_the_proxy_listener_accepts() {
    // A backend that accepts connections and never answers: the first health check waits its
    // whole timeout, and the proxy starts listening only after it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut m = Models::new();
    let b = m.start("v1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let (addr, admin) = ports();
    let policy = format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends:\n      - addr: {}\n      - addr: {}\n    health: {{timeout: 3s}}\n",
        m.addr(b),
        silent.local_addr().unwrap()
    );
    std::fs::write(&path, fill(&policy, addr, admin)).unwrap();
    let mut child = Proxy::spawn(&path, &[], &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut starting = Vec::new();
    let ready = loop {
        if std::time::Instant::now() > deadline {
            break false;
        }
        match get(admin, "/healthz", &[]) {
            Ok(r) if r.status == 200 => break true,
            Ok(r) => starting.push((r.status, r.body)),
            Err(_) => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The moment /healthz says ok, the proxy takes connections and requests.
    let served = ready.then(|| get(addr, "/predict", &[]).map(|r| r.status).ok());
    if !ready {
        let _ = child.kill();
        panic!("/healthz never answered 200");
    }
    let p = Proxy::attach(child, &path, addr, admin, dir);
    assert_eq!(served, Some(Some(200)));
    let want = format!("starting: the proxy does not accept on {addr} yet\n");
    assert!(!starting.is_empty(), "no 503 seen during the 3 s warm-up");
    assert!(
        starting.iter().all(|(s, b)| *s == 503 && *b == want),
        "{starting:?}"
    );
    assert_eq!(p.get("/predict", &[]).status, 200);
    drop(silent);
}

/// Connections on `port` that wait in TIME_WAIT (the side that closed first keeps them a minute).
fn time_waits(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "06"
        })
        .count()
}

#[test]
fn a_restart_binds_at_once_while_the_last_run_s_connections_wait_in_time_wait() {
    // A proxy closes `Connection: close` requests first, so each leaves a connection in
    // TIME_WAIT on its port for a minute. A restart (systemd's, an operator's) must bind again
    // at once, as nginx and Pingora's own listener do (SO_REUSEADDR), not refuse the port.
    let mut m = Models::new();
    let b = m.start("v1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let (addr, admin) = ports();
    let policy = format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n",
        m.addr(b)
    );
    std::fs::write(&path, fill(&policy, addr, admin)).unwrap();
    let mut first = Proxy::launch(&path, addr, admin, &[], tempfile::tempdir().unwrap());
    for _ in 0..3 {
        assert_eq!(get(addr, "/predict", &[]).unwrap().status, 200);
    }
    first.signal("TERM");
    eventually("the first run to exit", || {
        (!first.is_running()).then_some(())
    });
    assert!(time_waits(addr.port()) > 0, "no connection in TIME_WAIT");

    let second = Proxy::launch(&path, addr, admin, &[], dir);
    assert_eq!(second.get("/predict", &[]).status, 200);
}
