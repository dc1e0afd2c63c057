//! How fast a failing candidate leaves traffic, and what clients see meanwhile.
//!
//! `cargo bench --bench failover` starts two model servers and the release `blueshift` with
//! the demo's limits (health every 1s, unhealthy after 2, error rate 5%, p99 2s, min 20
//! requests; the demo's quality gates, min 30 answers), sends a steady open-loop 200 requests/s
//! (a new connection each, each input different), makes green fail in one of six ways, and prints
//! the time from the failure to green's last response and to the rollback, with every
//! client-visible error and every answer green still gave counted.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blueshift::model_server::{Mode, ModelServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RATE: u64 = 200;

struct Sample {
    sent: Instant,
    done: Instant,
    status: u16,
    green: bool,
}

async fn one(addr: SocketAddr, n: u64) -> (u16, bool) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, false);
    };
    let req = format!("GET /predict?id={n} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, false);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.contains("x-blueshift-color: green"))
}

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn get_status(admin: SocketAddr) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()
}

fn scenario(kind: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let blue = ModelServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), "v1").unwrap();
    let green = ModelServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), "v2").unwrap();
    let (addr, admin) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: {addr}\nadmin: {admin}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n  green:\n    backends: [{{addr: {}}}]\nstable: blue\nsplit: {{blue: 90, green: 10}}\nhealth: {{interval: 1s, timeout: 1s, healthy_after: 2, unhealthy_after: 2}}\nrollback: {{max_error_rate: 0.05, max_p99_latency: 2s, window: 30s, min_requests: 20}}\nquality: {{prediction: /prediction, score: /confidence, min_samples: 30}}\n",
            blue.addr, green.addr
        ),
    )
    .unwrap();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_blueshift"))
        .args(["serve", "-p"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while get_status(admin).is_none_or(|s| s["weights"]["green"] != 10) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "blueshift did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Requests sent and not answered yet: a hung model's, until the read timeout.
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, stop2, w2) = (samples.clone(), stop.clone(), waiting.clone());
    let driver = rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            let (s3, w3) = (s2.clone(), w2.clone());
            n += 1;
            tokio::spawn(async move {
                let sent = Instant::now();
                w3.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (status, green) = one(addr, n).await;
                w3.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                s3.lock().unwrap().push(Sample {
                    sent,
                    done: Instant::now(),
                    status,
                    green,
                });
            });
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let failed_at = Instant::now();
    match kind {
        "killed" => green.stop(),
        "500s" => green.controls.set_mode(Mode::Failing),
        "hung" => green.controls.set_delay(Duration::from_secs(3600)),
        "wrong" => green.controls.set_mode(Mode::Wrong),
        "notjson" => green.controls.set_mode(Mode::NotJson),
        _ => green.controls.set_delay(Duration::from_millis(2500)),
    }
    let mut rolled = None;
    while failed_at.elapsed() < Duration::from_secs(20) {
        if get_status(admin).is_some_and(|s| s["state"] == "rolled_back") {
            rolled = Some(failed_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(driver).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let unanswered = waiting.load(std::sync::atomic::Ordering::Relaxed);
    let samples = samples.lock().unwrap();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.sent >= failed_at).collect();
    let last_green = after
        .iter()
        .filter(|s| s.green)
        .map(|s| s.sent.duration_since(failed_at))
        .max();
    let errors = after.iter().filter(|s| s.status != 200).count();
    let from_green = after.iter().filter(|s| s.green && s.status == 200).count();
    let slow = after
        .iter()
        .filter(|s| s.done.duration_since(s.sent) > Duration::from_secs(2))
        .count();
    println!(
        "{kind:<8} rolled back after {:>7}  last new request to green {:>7} after the failure  client errors {errors:>3}  200s from green {from_green:>3}  responses >2s {slow:>3}  unanswered {unanswered:>3}  ({} requests after the failure)",
        rolled.map_or("never".into(), |d| format!("{:.2}s", d.as_secs_f64())),
        last_green.map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
        after.len() + unanswered
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    // `cargo test` runs benches with `--bench` absent; only measure when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("failover at {RATE} requests/s, split 90/10, demo limits:");
    for kind in ["killed", "500s", "slow", "hung", "wrong", "notjson"] {
        scenario(kind);
    }
}
