//! `blueshift demo`: five model servers (three routes' colors) and the proxy on fixed local
//! ports, in one process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::app::server::{self, ServeOptions};
use crate::model_server::ModelServer;
use crate::Error;

/// The demo policy, also shipped as `conf/demo.yaml`.
pub const DEMO_POLICY: &str = include_str!("../../conf/demo.yaml");

/// The model servers of `conf/demo.yaml`: sentiment's blue (v1) and green (v2), llama's stable
/// and canary, mistral.
const MODELS: [(&str, u16); 5] = [
    ("v1", 5001),
    ("v2", 5002),
    ("llama-v1", 6001),
    ("llama-v2", 6002),
    ("mistral-v1", 6003),
];

/// Where the demo's self-signed pair goes, next to its policy (paths in it are relative).
const TLS_DIR: &str = "demo-tls";

/// Writes the demo's TLS pair next to `policy`: always when `fresh`, else only if missing.
fn write_pair(policy: &Path, fresh: bool) -> Result<PathBuf, Error> {
    let dir = policy.parent().unwrap_or(Path::new(".")).join(TLS_DIR);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !fresh && cert.is_file() && key.is_file() {
        return Ok(cert);
    }
    let pair =
        crate::config::certs::self_signed(&["localhost", "127.0.0.1"], 30).map_err(Error::Other)?;
    let write = |path: &Path, text: &str| {
        // Write aside, then rename: a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))
    };
    write(&key, &pair.key_pem)?;
    write(&cert, &pair.cert_pem)?;
    Ok(cert)
}

/// `blueshift demo --prepare`: writes the files the demo policy names (its TLS pair, if
/// missing), so that `blueshift check conf/demo.yaml` passes without running the demo.
pub fn prepare() -> Result<(), Error> {
    let cert = write_pair(&policy_path()?, false)?;
    println!("demo TLS certificate: {}", cert.display());
    Ok(())
}

/// Runs the demo until Ctrl-C.
pub fn run() -> Result<(), Error> {
    let policy = policy_path()?;
    // A fresh self-signed certificate every start, for the TLS listener.
    let cert = write_pair(&policy, true)?;
    let mut listeners = Vec::new();
    for (version, port) in MODELS {
        let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::Listen {
            addr: ([127, 0, 0, 1], port).into(),
            reason: format!(
                "{} (is another demo running?)",
                e.to_string().to_lowercase()
            ),
        })?;
        listeners.push((l, version));
    }
    // The model servers get their own runtime on a side thread: Pingora must not be started
    // from inside a tokio runtime, and it owns the main thread until shutdown.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-models".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                let servers: Vec<ModelServer> = listeners
                    .into_iter()
                    .filter_map(|(l, v)| ModelServer::start(l, v).ok())
                    .collect();
                for s in &servers {
                    s.controls.allow_remote_control();
                }
                let _ = ready_tx.send(servers.len());
                std::future::pending::<()>().await;
            });
        })
        .map_err(|e| Error::Other(format!("cannot start the demo model servers: {e}")))?;
    if ready_rx.recv().ok() != Some(MODELS.len()) {
        return Err(Error::Other("the demo model servers did not start".into()));
    }
    print_banner(&policy, &cert);
    server::serve(ServeOptions {
        policy,
        ..Default::default()
    })
}

/// `conf/demo.yaml` when run from a checkout (so editing it shows a live reload), else a copy.
fn policy_path() -> Result<PathBuf, Error> {
    let local = Path::new("conf/demo.yaml");
    if local.is_file() {
        return Ok(local.to_path_buf());
    }
    let dir = std::env::temp_dir().join("blueshift-demo");
    let path = dir.join("demo.yaml");
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, DEMO_POLICY))
        .map_err(|e| {
            Error::Other(format!(
                "cannot write the demo policy to {}: {e}",
                path.display()
            ))
        })?;
    Ok(path)
}

fn print_banner(policy: &Path, cert: &Path) {
    println!(
        r#"
blueshift demo: three routes, each with its own models and rollout
  route llama       POST /v1/chat/completions with "model": "llama-3-8b"
                      stable llama v1 http://127.0.0.1:6001, canary llama v2 http://127.0.0.1:6002
                      (mid-rollout: canary at 20%, 10 minutes a step)
  route mistral     POST /v1/chat/completions with "model": "mistral-7b"
                      stable mistral v1 http://127.0.0.1:6003
  route sentiment   every other request
                      blue v1 http://127.0.0.1:5001 (stable, 90%), green v2 http://127.0.0.1:5002 (10%)
  proxy             http://127.0.0.1:8080   policy: {policy}
  proxy over TLS    https://localhost:8443  certificate: {cert} (self-signed at start)
  admin             http://127.0.0.1:9901   (open it in a browser: the live rollout page;
                                            /status, /history, /metrics, /healthz)

Try:
  # a prediction; the x-blueshift-color header says which model answered
  curl -si -X POST http://127.0.0.1:8080/predict -d '{{"text":"great product"}}'

  # two LLMs behind one OpenAI-compatible path, told apart by the body's "model" field;
  # llama's canary takes about 20% of conversations (x-session-id keeps one on one version)
  curl -si http://127.0.0.1:8080/v1/chat/completions -H 'x-session-id: alice' \
    -d '{{"model":"llama-3-8b","messages":[{{"role":"user","content":"hi"}}]}}'
  curl -sN http://127.0.0.1:8080/v1/chat/completions \
    -d '{{"model":"mistral-7b","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

  # the same over TLS with HTTP/2 (ALPN), and over HTTP/2 without TLS (h2c, as gRPC clients do)
  curl -si --cacert {cert} https://localhost:8443/predict
  curl -si --http2-prior-knowledge http://127.0.0.1:8080/predict

  # the 90/10 split over 200 new sessions
  for i in $(seq 200); do curl -s -o /dev/null -D - "http://127.0.0.1:8080/predict?id=$i" | grep -i '^x-blueshift-color'; done | sort | uniq -c

  # stickiness: keep the cookie and every request stays on one model
  curl -s -c /tmp/bs.txt -b /tmp/bs.txt http://127.0.0.1:8080/predict; curl -s -b /tmp/bs.txt http://127.0.0.1:8080/predict

  # test green through the edge, whatever its weight
  curl -s -H 'x-blueshift-color: green' http://127.0.0.1:8080/predict

  # the live state and the metrics
  curl -s http://127.0.0.1:9901/status
  curl -s http://127.0.0.1:9901/metrics | grep ^blueshift_
  blueshift status                      # a block per route (./target/release/blueshift from a checkout)
  blueshift rollback --route sentiment; blueshift resume --route sentiment

  # break green and watch blueshift take it out by itself (it judges on traffic, so send some)
  curl -s -X POST http://127.0.0.1:5002/demo/failing     # or demo/slow, demo/hang, demo/unhealthy
  (for i in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:8080/predict & done; sleep 3)
  blueshift status --route sentiment    # rolled_back: green at 0%, and why; llama's rollout goes on
  curl -s -X POST http://127.0.0.1:5002/demo/healthy; blueshift resume --route sentiment

  # quality gates: green answers 200s with the wrong labels; blueshift compares what each model
  # answers (label mix, confidence) and takes green out, though no request failed
  curl -s -X POST http://127.0.0.1:5002/demo/wrong      # or demo/notjson
  for i in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:8080/predict?id=$i"; done
  blueshift status --route sentiment    # QUALITY lines, and the rollback: label shift ... > 0.2
  curl -s -X POST http://127.0.0.1:5002/demo/healthy; blueshift resume --route sentiment

Edit {policy} (say green: 50) and the split changes within 2 s, and the other routes keep their
state; uncomment sentiment's rollout: block and green first answers copies of every request as a
shadow (compared with blue's answers, never returned), then walks 10% -> 50% -> 100% on its own,
rolled back if it goes bad on the way.

Ctrl-C stops everything.
"#,
        policy = policy.display(),
        cert = cert.display()
    );
}
