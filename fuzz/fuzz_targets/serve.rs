//! Runs a Pingora app over an in-memory connection: the fuzz input is what a client sends.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use blueshift::route::snapshot::Shared;
use blueshift::control::{Handle, Supervisor};
use pingora_core::apps::ServerApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// One runtime for every run.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The snapshot of a two-color policy and a handle to a supervisor that is not running (actions
/// answer that blueshift is shutting down; no backend is healthy, so the proxy answers 503).
pub fn state() -> (Shared, Handle) {
    let text = "listen: 127.0.0.1:1\nadmin: 127.0.0.1:2\ncolors:\n  blue:\n    backends: [{addr: 127.0.0.1:3}]\n  green:\n    backends: [{addr: 127.0.0.1:4}]\nstable: blue\nsplit: {blue: 90, green: 10}\naffinity: {cookie: blueshift, header: x-session-id}\noverride_header: x-blueshift-color\n";
    let policy = blueshift::config::parse(text).unwrap();
    let supervisor = Supervisor::new("policy.yaml".into(), policy, Vec::new());
    (supervisor.shared(), supervisor.handle())
}

/// Sends `data` to `app` as one client connection that then closes its sending side, and
/// returns what the app wrote back.
pub fn exchange<A: ServerApp + Send + Sync + 'static>(app: &Arc<A>, data: &[u8]) -> Vec<u8> {
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let app = app.clone();
        let served = tokio::spawn(async move {
            app.process_new(Box::new(server), &shutdown).await;
        });
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let read = client.read_to_end(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
        out
    })
}

/// Whatever was written back is nothing or starts like an HTTP/1 answer.
pub fn check_answer(out: &[u8]) {
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1."),
        "not an HTTP answer: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
}
