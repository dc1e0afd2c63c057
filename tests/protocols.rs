//! At the edge for real: TLS termination and HTTP/2 towards the clients (curl, rustls), HTTPS
//! backends behind a private CA, certificates swapped under load, WebSocket and SSE on every
//! listener kind.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::*;
use common::*;

/// A policy with a plain listener and a TLS one (`{tls}`) serving `cert`/`key`.
fn tls_policy(m: &Models, cert: &Path, key: &Path, split: (u32, u32), extra: &str) -> String {
    two_colors(&[m.addr(0)], &[m.addr(1)], split, extra).replacen(
        "listen: {listen}\n",
        &format!(
            "listen:\n  - {{listen}}\n  - addr: {{tls}}\n    tls:\n      cert: {}\n      key: {}\n",
            cert.display(),
            key.display()
        ),
        1,
    )
}

struct Edge {
    _m: Models,
    p: Proxy,
    ca: Ca,
    dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Edge {
    fn start(split: (u32, u32), extra: &str) -> Edge {
        let mut m = Models::new();
        m.start("v1");
        m.start("v2");
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new();
        ca.write(dir.path());
        let (cert, key) = write_pair(dir.path(), "edge", &ca.leaf(&["one.test", "localhost"]));
        let p = Proxy::start(&tls_policy(&m, &cert, &key, split, extra));
        Edge {
            _m: m,
            p,
            ca,
            dir,
            cert,
            key,
        }
    }

    /// curl against the TLS listener as `https://localhost:PORT`.
    fn curl_tls(&self, extra: &[&str], path: &str) -> std::process::Output {
        let resolve = format!("localhost:{}:127.0.0.1", self.p.tls.port());
        let url = format!("https://localhost:{}{path}", self.p.tls.port());
        let ca = self.dir.path().join("ca.pem");
        let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }
}

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_tls_listener_speaks_http2_and_http1_by_alpn_to_curl() {
    let e = Edge::start((100, 0), "");
    let fmt = "%{http_version} %{http_code} %header{x-blueshift-color}";
    let h2 = stdout(&e.curl_tls(&["--http2", "-o", "/dev/null", "-w", fmt], "/predict"));
    assert_eq!(h2, "2 200 blue");
    let h1 = stdout(&e.curl_tls(&["--http1.1", "-o", "/dev/null", "-w", fmt], "/predict"));
    assert_eq!(h1, "1.1 200 blue");
    // The model learns who asked, and that it came over TLS, once, over either version.
    for version in ["--http2", "--http1.1"] {
        let seen = stdout(&e.curl_tls(&[version], "/headers")).to_lowercase();
        assert!(seen.contains("x-forwarded-proto: https\r\n"), "{seen}");
        let xff = seen.matches("x-forwarded-for").count();
        assert!(
            seen.contains("x-forwarded-for: 127.0.0.1\r\n") && xff == 1,
            "{seen}"
        );
    }
    // TLS 1.2 is offered too; and an untrusted client gets a handshake failure, not a hang.
    let tls12 = e.curl_tls(
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
        "/predict",
    );
    assert_eq!(stdout(&tls12), "200");
    let url = format!("https://localhost:{}/predict", e.p.tls.port());
    let resolve = format!("localhost:{}:127.0.0.1", e.p.tls.port());
    let untrusted = curl(&["--resolve", &resolve, &url]);
    assert!(!untrusted.status.success());
    let s = e.p.status();
    let tls = &s["tls"][0];
    assert_eq!(
        (tls["listener"].as_str(), tls["subject"].as_str()),
        (Some(e.p.tls.to_string().as_str()), Some("CN=one.test"))
    );
    assert_eq!(tls["error"], serde_json::Value::Null);
    let cli = e.p.cli_status();
    assert!(
        cli.contains(&format!("tls       {} CN=one.test, expires ", e.p.tls)),
        "{cli}"
    );
    let expiry = e.p.metrics();
    assert!(
        expiry.contains(&format!(
            "blueshift_tls_certificate_expiry_seconds{{listener=\"{}\"}}",
            e.p.tls
        )),
        "{expiry}"
    );
}

#[test]
fn a_plain_listener_takes_http2_with_prior_knowledge() {
    let e = Edge::start((100, 0), "");
    let url = format!("http://{}/predict", e.p.addr);
    let out = stdout(&curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]));
    assert_eq!(out, "2 200");
    let out = stdout(&curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]));
    assert_eq!(out, "1.1 200", "HTTP/1.1 on the same port");
    let headers = format!("http://{}/headers", e.p.addr);
    let seen = stdout(&curl(&["--http2-prior-knowledge", &headers])).to_lowercase();
    assert!(seen.contains("x-forwarded-proto: http\r\n"), "{seen}");
    assert_eq!(
        seen.matches("x-forwarded-for: 127.0.0.1\r\n").count(),
        1,
        "{seen}"
    );
}

#[test]
fn hundreds_of_requests_on_one_http2_connection_are_split_one_by_one() {
    let e = Edge::start((50, 50), "override_header: x-blueshift-color\n");
    let url = format!("http://{}/predict", e.p.addr);
    // 300 streams multiplexed on one h2c connection by nghttp (curl 7.88 cannot reuse an h2c
    // connection), then 300 on one TLS connection by curl.
    let out = std::process::Command::new("nghttp")
        .args(["-n", "-v", "-m", "300", &url])
        .output()
        .expect("nghttp is installed by `make test` (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let colors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(") x-blueshift-color: ").nth(1))
        .collect();
    assert_eq!(
        colors.len(),
        300,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let green = colors.iter().filter(|c| **c == "green").count();
    assert!(
        (100..=200).contains(&green),
        "{green} of 300 to green at 50/50 over h2c"
    );
    assert_eq!(
        text.matches("send SETTINGS frame <length=").count(),
        2,
        "one connection: its SETTINGS and their ack"
    );
    let run = |base: Vec<String>, url: &str, n: usize| {
        let mut args = base;
        args.extend([
            "-w".to_owned(),
            "%{num_connects} %header{x-blueshift-color}\\n".to_owned(),
        ]);
        for _ in 0..n {
            args.extend(["-o".to_owned(), "/dev/null".to_owned(), url.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = stdout(&curl(&args));
        let lines: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), n, "{out}");
        let connects: u32 = lines
            .iter()
            .map(|l| l.split(' ').next().unwrap().parse::<u32>().unwrap())
            .sum();
        assert_eq!(connects, 1, "every request on one connection");
        lines.iter().filter(|l| l.ends_with(" green")).count()
    };
    let ca = e.dir.path().join("ca.pem");
    let tls: Vec<String> = vec![
        "--http2".to_owned(),
        "--parallel".to_owned(),
        "--parallel-max".to_owned(),
        "50".to_owned(),
        "--cacert".to_owned(),
        ca.display().to_string(),
        "--resolve".to_owned(),
        format!("localhost:{}:127.0.0.1", e.p.tls.port()),
    ];
    let tls_url = format!("https://localhost:{}/predict", e.p.tls.port());
    let green = run(tls.clone(), &tls_url, 300);
    assert!(
        (100..=200).contains(&green),
        "{green} of 300 to green at 50/50 over TLS"
    );
    // The override works per stream too, on the same connection.
    let mut forced = tls;
    forced.extend(["-H".to_owned(), "x-blueshift-color: green".to_owned()]);
    assert_eq!(run(forced, &tls_url, 20), 20);
    e.p.wait_metrics(&[
        "blueshift_requests_total{color=\"blue\",route=\"default\",status=\"200\"}",
    ]);
}

#[test]
fn a_new_certificate_serves_new_handshakes_within_2s_with_no_failed_request() {
    let e = Edge::start((100, 0), "");
    let config = client_config(&e.ca.pem, &[b"http/1.1"]);
    let stop = Arc::new(AtomicBool::new(false));
    type Seen = Vec<(Instant, Result<String, String>)>;
    let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
    let load = {
        let (stop, seen, addr) = (stop.clone(), seen.clone(), e.p.tls);
        std::thread::spawn(move || {
            // Bounded: at most 30 s of new connections whatever the test does.
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let r = match tls_get(addr, "localhost", &config, "/predict") {
                    Ok((r, subject)) if r.status == 200 => Ok(subject),
                    Ok((r, _)) => Err(format!("status {}", r.status)),
                    Err(err) => Err(err.to_string()),
                };
                seen.lock().unwrap().push((Instant::now(), r));
            }
        })
    };
    let count = |subject: &str, after: Instant| {
        let s = seen.lock().unwrap();
        s.iter()
            .filter(|(at, r)| *at > after && r.as_deref() == Ok(subject))
            .count()
    };
    let t0 = Instant::now();
    eventually("handshakes with the first certificate", || {
        (count("CN=one.test", t0) >= 20).then_some(())
    });
    // An operator (or cert-manager) replaces the pair in place.
    let swapped = Instant::now();
    write_pair(e.dir.path(), "edge", &e.ca.leaf(&["two.test", "localhost"]));
    let first_new = eventually("a handshake with the new certificate", || {
        let s = seen.lock().unwrap();
        s.iter()
            .find(|(at, r)| *at > swapped && r.as_deref() == Ok("CN=two.test"))
            .map(|(at, _)| *at)
    });
    assert!(
        first_new - swapped < Duration::from_secs(2),
        "took {:?}",
        first_new - swapped
    );
    let settled = Instant::now();
    eventually("more handshakes", || {
        (count("CN=two.test", settled) >= 20).then_some(())
    });
    assert_eq!(
        count("CN=one.test", settled),
        0,
        "the old pair is gone for new handshakes"
    );
    assert_eq!(e.p.status()["tls"][0]["subject"], "CN=two.test");

    // A broken pair changes nothing but /status: the last good one keeps serving.
    std::fs::write(&e.key, "not a key").unwrap();
    let s = e.p.wait_status("the broken pair to show", |s| {
        !s["tls"][0]["error"].is_null()
    });
    let error = s["tls"][0]["error"].as_str().unwrap();
    assert!(error.contains("holds no PEM private key"), "{error}");
    let cli = e.p.cli_status();
    assert!(
        cli.contains("CN=two.test") && cli.contains("; last load failed: "),
        "{cli}"
    );
    let broken = Instant::now();
    eventually("handshakes after the broken write", || {
        (count("CN=two.test", broken) >= 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let s = seen.lock().unwrap();
    let failed: Vec<_> = s.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} TLS requests failed: {failed:?}",
        failed.len(),
        s.len()
    );
    let _ = &e.cert;
}

#[test]
fn an_https_backend_behind_a_private_ca_is_checked_and_served_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_file = ca.write(dir.path());
    let mut m = Models::new();
    m.start("v1");
    m.start_tls("v2", &ca.leaf(&["models.internal"]));
    m.servers[1].controls.record_requests();
    let green = format!(
        "    protocol: https\n    tls:\n      sni: models.internal\n      ca: {}\n",
        ca_file.display()
    );
    let policy = two_colors(&[m.addr(0)], &[m.addr(1)], (0, 100), "")
        .replace("  green:\n", &format!("  green:\n{green}"));
    let p = Proxy::start(&policy);
    let s = p.status();
    assert_eq!(s["colors"]["green"]["protocol"], "https");
    assert!(p
        .cli_status()
        .lines()
        .any(|l| l.starts_with("green") && l.ends_with("(https)")));
    assert_eq!(
        s["colors"]["green"]["backends"][0]["health"], "healthy",
        "checked over TLS: {s}"
    );
    for _ in 0..5 {
        let r = p.get("/predict?id=1", &[]);
        assert_eq!((r.status, r.color()), (200, "green"));
        assert!(r.body.contains("\"model_version\":\"v2\""));
    }
    assert_eq!(
        m.servers[1].controls.recorded().len(),
        5,
        "the requests reached green over TLS"
    );
    // Without the private CA, the backend's certificate is not trusted: no handshake, unhealthy.
    let untrusting = two_colors(&[m.addr(0)], &[m.addr(1)], (0, 100), "").replace(
        "  green:\n",
        "  green:\n    protocol: https\n    tls: {sni: models.internal}\n",
    );
    let p = Proxy::start(&untrusting);
    let s = p.wait_status("green to fail its TLS health check", |s| {
        s["colors"]["green"]["backends"][0]["health"] == "unhealthy"
    });
    assert_eq!(s["weights"]["blue"], 100, "{s}");
    assert_eq!(p.get("/predict", &[]).color(), "blue");
}

#[test]
fn websockets_pass_through_plain_and_tls_listeners() {
    let ws = PyServer::websocket();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_file = ca.write(dir.path());
    let (cert, key) = write_pair(dir.path(), "edge", &ca.leaf(&["localhost"]));
    let policy = format!(
        "listen:\n  - {{listen}}\n  - addr: {{tls}}\n    tls: {{cert: {}, key: {}}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n",
        cert.display(),
        key.display(),
        ws.addr
    );
    let p = Proxy::start(&policy);
    let plain = websocket_echo(&format!("ws://{}/echo", p.addr), None);
    assert_eq!(plain, ["hello", "blue", "shift"]);
    let tls = websocket_echo(
        &format!("wss://localhost:{}/echo", p.tls.port()),
        Some(&ca_file),
    );
    assert_eq!(tls, ["hello", "blue", "shift"]);
}

#[test]
fn event_streams_arrive_whole_over_tls_with_http2_and_over_h2c() {
    let e = Edge::start((100, 0), "");
    let body = stdout(&e.curl_tls(&["--http2", "-N"], "/stream?events=20&gap=5"));
    let events: Vec<&str> = body.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(events.len(), 22, "20 tokens, the finish and [DONE]: {body}");
    assert!(events[0].contains("tok0") && events[21] == "data: [DONE]");
    let url = format!("http://{}/stream?events=20&gap=5", e.p.addr);
    let body = stdout(&curl(&["--http2-prior-knowledge", "-N", &url]));
    assert_eq!(body.lines().filter(|l| l.starts_with("data: ")).count(), 22);
}
