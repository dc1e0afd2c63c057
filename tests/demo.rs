//! `blueshift demo` as a user runs it: the fixed ports, what its banner says to try, and Ctrl-C.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

use common::*;

const PROXY: &str = "127.0.0.1:8080";
const ADMIN: &str = "127.0.0.1:9901";
const GREEN: &str = "127.0.0.1:5002";

/// The demo process, killed if the test fails half-way.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The demo's sentiment route in `/status`.
fn status() -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&get(addr(ADMIN), "/status", &[]).unwrap().body).unwrap();
    s["routes"]["sentiment"].clone()
}

fn resume_from_the_cli() {
    let out = Command::new(env!("CARGO_BIN_EXE_blueshift"))
        .args(["resume", "--route", "sentiment"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A chat completion for `model` through the demo proxy, as a session of `session`.
fn chat(model: &str, session: &str) -> Resp {
    let body = format!(
        "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
    );
    request(
        addr(PROXY),
        "POST",
        "/v1/chat/completions",
        &[
            ("x-session-id", session),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

#[test]
fn the_demo_splits_pins_and_rolls_a_broken_green_back_by_itself() {
    // Run away from the checkout so the demo writes its own copy of the policy.
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_blueshift"))
            .arg("demo")
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("the demo proxy to answer", || {
        if let Ok(Some(exit)) = demo.0.try_wait() {
            panic!(
                "the demo exited early: {exit} (ports 8080, 9901, 5001, 5002, 6001-6003 taken?)"
            );
        }
        get(addr(PROXY), "/predict", &[])
            .ok()
            .filter(|r| r.status == 200)
    });

    // 90/10 over new sessions, each pinned by a cookie it can replay.
    let mut green = 0;
    for _ in 0..300 {
        let r = get(addr(PROXY), "/predict", &[]).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let pinned = r
            .pinned("blueshift")
            .expect("a new session gets the cookie");
        assert_eq!(pinned, r.color());
        green += usize::from(r.color() == "green");
    }
    assert!((10..=60).contains(&green), "{green} of 300 went to green");
    let cookie = "blueshift=green";
    for _ in 0..5 {
        assert_eq!(
            get(addr(PROXY), "/predict", &[("cookie", cookie)])
                .unwrap()
                .color(),
            "green"
        );
    }
    // The banner's TLS line: HTTP/2 by ALPN, with the certificate the demo made at start.
    let cert = std::env::temp_dir().join("blueshift-demo/demo-tls/cert.pem");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(&cert)
        .arg("https://localhost:8443/predict")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
    let forced = get(addr(PROXY), "/predict", &[("x-blueshift-color", "green")]).unwrap();
    assert!(
        forced.body.contains("\"model_version\":\"v2\""),
        "{forced:?}"
    );

    // The second and third routes: two LLMs behind one path, by the body's model; llama's
    // canary mid-rollout at 20%, each session on one version.
    let mut canary = 0;
    for i in 0..200 {
        let r = chat("llama-3-8b", &format!("user-{i}"));
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("\"model\":\"llama-3-8b\""), "{r:?}");
        let version = r.header("x-model-version").unwrap_or_default().to_owned();
        assert_eq!(
            version,
            if r.color() == "canary" {
                "llama-v2"
            } else {
                "llama-v1"
            }
        );
        canary += usize::from(r.color() == "canary");
        assert_eq!(
            chat("llama-3-8b", &format!("user-{i}")).color(),
            r.color(),
            "sticky"
        );
    }
    assert!(
        (20..=60).contains(&canary),
        "{canary} of 200 sessions on the canary"
    );
    let r = chat("mistral-7b", "user-1");
    assert_eq!(r.header("x-model-version"), Some("mistral-v1"), "{r:?}");
    let all: serde_json::Value =
        serde_json::from_str(&get(addr(ADMIN), "/status", &[]).unwrap().body).unwrap();
    assert_eq!(all["routes"]["llama"]["state"], "progressing");
    assert_eq!(all["routes"]["llama"]["weights"]["canary"], 20);

    // The banner's recipe: break green, send traffic, and blueshift takes green out by itself.
    let r = post(addr(GREEN), "/demo/failing", &[]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let s = eventually("green to be rolled back", || {
        get(addr(PROXY), "/predict", &[]).unwrap();
        let s = status();
        (s["state"] == "rolled_back").then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("error rate"), "{s}");
    for _ in 0..30 {
        assert_eq!(get(addr(PROXY), "/predict", &[]).unwrap().color(), "blue");
    }
    let wrong = post(addr(GREEN), "/demo/broken", &[]).unwrap();
    assert_eq!(wrong.status, 404);
    assert!(wrong.body.contains("use healthy, failing"), "{wrong:?}");

    // Heal it and resume from the CLI, as the banner says.
    assert_eq!(post(addr(GREEN), "/demo/healthy", &[]).unwrap().status, 200);
    resume_from_the_cli();
    assert_eq!(status()["state"], "steady");
    eventually("green to take new sessions again", || {
        (get(addr(PROXY), "/predict", &[]).unwrap().color() == "green").then_some(())
    });

    // The banner's quality recipe: green answers 200s with the wrong labels; no request fails,
    // and blueshift takes it out for what it answers.
    assert_eq!(post(addr(GREEN), "/demo/wrong", &[]).unwrap().status, 200);
    let mut i = 0;
    let s = eventually("green to be rolled back for its answers", || {
        i += 1;
        let r = get(addr(PROXY), &format!("/predict?id={i}"), &[]).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let s = status();
        (s["state"] == "rolled_back").then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("label shift"), "{s}");
    assert!(
        s["colors"]["green"]["quality"]["samples"].as_u64() >= Some(30),
        "{s}"
    );
    assert_eq!(post(addr(GREEN), "/demo/healthy", &[]).unwrap().status, 200);
    resume_from_the_cli();

    // Ctrl-C stops everything and frees the ports.
    let ok = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let exit = eventually("the demo to exit", || demo.0.try_wait().unwrap());
    assert!(exit.success(), "{exit}");
    for port in [PROXY, ADMIN, GREEN, "127.0.0.1:8443", "127.0.0.1:6001"] {
        assert!(TcpStream::connect(port).is_err(), "{port} still open");
    }
    let mut banner = String::new();
    demo.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut banner)
        .unwrap();
    assert!(banner.contains("/demo/failing"), "{banner}");
    assert!(
        banner.contains("route llama") && banner.contains("\"model\":\"mistral-7b\""),
        "{banner}"
    );
    assert!(banner.contains("/demo/wrong"), "{banner}");
    assert!(
        banner.contains("curl -si --cacert ") && banner.contains("https://localhost:8443/predict"),
        "{banner}"
    );
}
