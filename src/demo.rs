//! `blueshift demo`: two model servers and the proxy on fixed local ports, in one process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::model_server::ModelServer;
use crate::server::{self, ServeOptions};
use crate::Error;

/// The demo policy, also shipped as `conf/demo.yaml`.
pub const DEMO_POLICY: &str = include_str!("../conf/demo.yaml");

/// Blue (v1) and green (v2) model server ports, as in `conf/demo.yaml`.
const MODELS: [(&str, u16); 2] = [("v1", 5001), ("v2", 5002)];

/// Runs the demo until Ctrl-C.
pub fn run() -> Result<(), Error> {
    let policy = policy_path()?;
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
    print_banner(&policy);
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

fn print_banner(policy: &Path) {
    println!(
        r#"
blueshift demo
  model blue  (v1)  http://127.0.0.1:5001
  model green (v2)  http://127.0.0.1:5002
  proxy             http://127.0.0.1:8080   policy: {policy}
  admin             http://127.0.0.1:9901   (/status, /metrics, /healthz)

Try:
  # a prediction; the x-blueshift-color header says which model answered
  curl -si -X POST http://127.0.0.1:8080/predict -d '{{"text":"great product"}}'

  # the 90/10 split over 200 new sessions
  for i in $(seq 200); do curl -s -o /dev/null -D - "http://127.0.0.1:8080/predict?id=$i" | grep -i '^x-blueshift-color'; done | sort | uniq -c

  # stickiness: keep the cookie and every request stays on one model
  curl -s -c /tmp/bs.txt -b /tmp/bs.txt http://127.0.0.1:8080/predict; curl -s -b /tmp/bs.txt http://127.0.0.1:8080/predict

  # test green through the edge, whatever its weight
  curl -s -H 'x-blueshift-color: green' http://127.0.0.1:8080/predict

  # the live state and the metrics
  curl -s http://127.0.0.1:9901/status
  curl -s http://127.0.0.1:9901/metrics | grep ^blueshift_
  blueshift status                      # (./target/release/blueshift from a checkout)
  blueshift rollback; blueshift resume

  # break green and watch blueshift take it out by itself (it judges on traffic, so send some)
  curl -s -X POST http://127.0.0.1:5002/demo/failing     # or demo/slow, demo/hang, demo/unhealthy
  (for i in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:8080/predict & done; sleep 3)
  blueshift status                      # rolled_back: green at 0%, and why
  curl -s -X POST http://127.0.0.1:5002/demo/healthy; blueshift resume

  # quality gates: green answers 200s with the wrong labels; blueshift compares what each model
  # answers (label mix, confidence) and takes green out, though no request failed
  curl -s -X POST http://127.0.0.1:5002/demo/wrong      # or demo/notjson
  for i in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:8080/predict?id=$i"; done
  blueshift status                      # QUALITY lines, and the rollback: label shift ... > 0.2
  curl -s -X POST http://127.0.0.1:5002/demo/healthy; blueshift resume

Edit {policy} (say green: 50) and the split changes within 2 s; uncomment its rollout: block
and green first answers copies of every request as a shadow (compared with blue's answers, never
returned), then walks 10% -> 50% -> 100% on its own, rolled back if it goes bad on the way.

Ctrl-C stops everything.
"#,
        policy = policy.display()
    );
}
