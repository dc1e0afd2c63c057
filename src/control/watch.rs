//! Reload triggers: the policy file or a listener's certificate files changing on disk, and
//! `SIGHUP`.
//!
//! The directories are watched rather than the files, so an editor's rename-over and a
//! Kubernetes ConfigMap's (or Secret's) `..data` symlink swap are both seen. Bursts of events are
//! debounced, and a reload is only requested when the bytes behind a path actually changed (or
//! vanished): the policy's, or the certificates'. Opens and reads are not changes: inotify
//! reports every open, the watcher's own reads included, and counting them would have it read
//! every file again every 50 ms.

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{error, info};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::TlsFiles;
use crate::control::{Command, Handle};

/// Time from a burst's first file event to reading the file.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Starts the watcher and the SIGHUP listener; must run inside a tokio runtime.
pub fn spawn(path: PathBuf, certs: Vec<TlsFiles>, handle: Handle) {
    spawn_sighup(handle.clone());
    let (tx, rx) = mpsc::channel::<()>(16);
    let cert_files: Vec<PathBuf> = certs.into_iter().flat_map(|f| [f.cert, f.key]).collect();
    let mut dirs: Vec<PathBuf> = std::iter::once(&path)
        .chain(&cert_files)
        .map(|p| dir_of(p))
        .collect();
    dirs.sort();
    dirs.dedup();
    let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
        // An error (the kernel's queue overflowed) may hide a change: read again.
        if res.as_ref().map_or(true, changes) {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            return error!("cannot watch for changes: {e}; reload with SIGHUP or POST /reload")
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            return error!(
                "cannot watch {}: {e}; reload with SIGHUP or POST /reload",
                dir.display()
            );
        }
    }
    info!("watching {} for changes", path.display());
    tokio::spawn(debounce(watcher, rx, path, cert_files, handle));
}

/// Whether an event in a watched directory may have changed a file's bytes: anything but an
/// open or a read, which change nothing and which the watcher's own reads raise. The close of a
/// file opened for writing is a change.
fn changes(event: &Event) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

async fn debounce(
    watcher: notify::RecommendedWatcher,
    mut rx: mpsc::Receiver<()>,
    path: PathBuf,
    cert_files: Vec<PathBuf>,
    handle: Handle,
) {
    // The watcher lives as long as this task.
    let _watcher = watcher;
    let certs = |files: &[PathBuf]| files.iter().map(|f| read(f)).collect::<Vec<_>>();
    let mut last = read(&path);
    let mut last_certs = certs(&cert_files);
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
        let now = certs(&cert_files);
        if now != last_certs {
            last_certs = now;
            let _ = handle.call(Command::Certs).await;
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

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn opens_and_reads_are_not_changes() {
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(!changes(&Event::new(open)));
        assert!(!changes(&Event::new(read)));
    }

    #[test]
    fn writes_renames_creations_and_removals_are_changes() {
        let kinds = [
            EventKind::Modify(ModifyKind::Any),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ];
        for kind in kinds {
            assert!(changes(&Event::new(kind)), "{kind:?}");
        }
    }
}
