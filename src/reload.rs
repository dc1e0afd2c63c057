//! Reload triggers: the policy file changing on disk, and `SIGHUP`.
//!
//! The directory is watched rather than the file, so an editor's rename-over and a Kubernetes
//! ConfigMap's `..data` symlink swap are both seen. Bursts of events are debounced, and a
//! reload is only requested when the bytes behind the path actually changed (or vanished).

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{error, info};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::supervisor::{Command, Handle};

/// Time from a burst's first file event to reading the file.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Starts the watcher and the SIGHUP listener; must run inside a tokio runtime.
pub fn spawn(path: PathBuf, handle: Handle) {
    spawn_sighup(handle.clone());
    let (tx, rx) = mpsc::channel::<()>(16);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            return error!(
                "cannot watch {}: {e}; reload with SIGHUP or POST /reload",
                dir.display()
            )
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        return error!(
            "cannot watch {}: {e}; reload with SIGHUP or POST /reload",
            dir.display()
        );
    }
    info!("watching {} for changes", path.display());
    tokio::spawn(debounce(watcher, rx, path, handle));
}

async fn debounce(
    watcher: notify::RecommendedWatcher,
    mut rx: mpsc::Receiver<()>,
    path: PathBuf,
    handle: Handle,
) {
    // The watcher lives as long as this task.
    let _watcher = watcher;
    let mut last = read(&path);
    while rx.recv().await.is_some() {
        // A fixed window from the first event, not a sliding one: a writer that never pauses
        // (a config tool rewriting every 100 ms) must not starve reloads.
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        let now = read(&path);
        if now != last {
            last = now;
            let _ = handle
                .call(|reply| Command::Reload("file change", reply))
                .await;
        }
    }
}

/// The file's bytes, or `None` if it cannot be read (deleted, mid-swap).
fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn spawn_sighup(handle: Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => return error!("cannot listen for SIGHUP: {e}"),
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = handle.call(|reply| Command::Reload("SIGHUP", reply)).await;
        }
    });
}
