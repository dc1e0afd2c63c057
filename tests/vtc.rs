//! The raw-bytes regression suite: every `tests/vtc/*.vtc` script run by varnishtest (Debian's
//! `varnish` package; HAProxy's own regression tests are VTC too), each with a scripted fake
//! origin, a scripted raw client, and blueshift between them (started by `tests/vtc/start.sh`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vtc");

fn run(script: &PathBuf) -> Result<(), String> {
    let (proxy, admin) = (common::free_port(), common::free_port());
    // varnishtest's work directory and start.sh's policy files go in here, and go with it.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("varnishtest")
        .args(["-t", "60", "-v"])
        .arg(format!("-Dstart={DIR}/start.sh"))
        .arg(format!("-Dwait={DIR}/wait.sh"))
        .arg(format!("-Dproxy=127.0.0.1:{proxy}"))
        .arg(script)
        .env("BLUESHIFT", env!("CARGO_BIN_EXE_blueshift"))
        .env("PROXY_PORT", proxy.to_string())
        .env("ADMIN_PORT", admin.to_string())
        .env("TMPDIR", tmp.path())
        .output()
        .expect("varnishtest is installed by `make test` (Debian package varnish)");
    match out.status.success() {
        true => Ok(()),
        false => {
            let log = String::from_utf8_lossy(&out.stdout);
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!("{}:\n{}", script.display(), tail.join("\n")))
        }
    }
}

#[test]
fn every_vtc_script_passes() {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vtc"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 15, "{} scripts", scripts.len());
    // Four at a time: each starts its own blueshift.
    let queue = Arc::new(Mutex::new(scripts.clone()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (queue, failures) = (queue.clone(), failures.clone());
            std::thread::spawn(move || loop {
                let Some(script) = queue.lock().unwrap().pop() else {
                    return;
                };
                if let Err(e) = run(&script) {
                    failures.lock().unwrap().push(e);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n\n")
    );
}
