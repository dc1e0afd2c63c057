//! A small stand-in model server for the demo, the tests and the benchmarks.
//!
//! `GET /health` answers like the FastAPI servers of the articles blueshift grew from;
//! `GET|POST /predict` answers `{"prediction", "confidence", "model_version"}`; `/headers` echoes
//! the request head it received. Its behaviour
//! can be switched at run time (healthy, failing with 500s, slow, refusing health checks) so
//! tests can make a model go bad the ways real ones do; the demo also lets a shell do it with
//! `POST /demo/{healthy,failing,slow,hang,unhealthy,hangup}`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the server behaves right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers everything normally.
    Healthy,
    /// `/predict` answers 500; `/health` still passes (a model that loads but fails).
    Failing,
    /// `/health` answers 503; `/predict` still works.
    Unhealthy,
    /// `/predict` reads the request and closes the connection without answering.
    Hangup,
}

/// Shared switches of one running server.
#[derive(Debug)]
pub struct Controls {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    predictions: AtomicU64,
    connections: AtomicU64,
    remote_control: AtomicBool,
}

impl Controls {
    /// Switches the behaviour.
    pub fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::Relaxed);
    }

    /// Delays every `/predict` answer by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Lets `POST /demo/<behaviour>` switch the server (the demo's servers only).
    pub fn allow_remote_control(&self) {
        self.remote_control.store(true, Ordering::Relaxed);
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Number of non-health requests answered so far.
    pub fn predictions(&self) -> u64 {
        self.predictions.load(Ordering::Relaxed)
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            1 => Mode::Failing,
            2 => Mode::Unhealthy,
            3 => Mode::Hangup,
            _ => Mode::Healthy,
        }
    }
}

/// A running model server; dropping it (or calling [`ModelServer::stop`]) closes the port
/// and every open connection, like a crashed process.
pub struct ModelServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its switches.
    pub controls: Arc<Controls>,
    stop: watch::Sender<bool>,
    closed: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl ModelServer {
    /// Starts a server on `listener` that reports `version`; must run inside a tokio runtime.
    pub fn start(listener: std::net::TcpListener, version: &str) -> std::io::Result<ModelServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let controls = Arc::new(Controls {
            mode: AtomicU8::new(Mode::Healthy as u8),
            delay_ms: AtomicU64::new(0),
            predictions: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            remote_control: AtomicBool::new(false),
        });
        let (stop, stopped) = watch::channel(false);
        let version: Arc<str> = version.into();
        let c = controls.clone();
        let (closed_tx, closed) = std::sync::mpsc::channel();
        tokio::spawn(async move {
            let mut stopped_accept = stopped.clone();
            // Dropped with the listener when this task ends: tells `stop` the port is closed.
            let _closed = closed_tx;
            loop {
                tokio::select! {
                    _ = stopped_accept.changed() => break,
                    conn = listener.accept() => {
                        if *stopped_accept.borrow() {
                            break;
                        }
                        let Ok((stream, _)) = conn else { continue };
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        let (v, c, mut s) = (version.clone(), c.clone(), stopped.clone());
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = s.changed() => {}
                                _ = serve_conn(stream, &v, &c) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(ModelServer {
            addr,
            controls,
            stop,
            closed: std::sync::Mutex::new(Some(closed)),
        })
    }

    /// Closes the port and every connection; returns once the port is closed (or after 1 s).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let closed = self.closed.lock().ok().and_then(|mut c| c.take());
        if let Some(closed) = closed {
            let _ = closed.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

async fn serve_conn(mut stream: TcpStream, version: &str, c: &Controls) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let (head_len, path, keep_alive, body_len, is_get) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let header = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| h.value)
                    };
                    let len = header("content-length")
                        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let close =
                        header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
                    let keep = req.version == Some(1) && !close;
                    let path = req.path.unwrap_or("/").to_owned();
                    break (n, path, keep, len, req.method == Some("GET"));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        };
        while buf.len() < head_len + body_len {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let head = match path == "/headers" {
            true => buf[..head_len].to_vec(),
            false => Vec::new(),
        };
        let body = buf[head_len..head_len + body_len].to_vec();
        buf.drain(..head_len + body_len);

        let exempt = path.starts_with("/health") || path.starts_with("/demo/");
        if c.mode() == Mode::Hangup && !exempt {
            c.predictions.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let (status, extra, payload) = match path.as_str() {
            // What the model was sent, as httpbin's /headers: the proxy's additions show here.
            "/headers" => ("200 OK", "", String::from_utf8_lossy(&head).into_owned()),
            _ => answer(&path, is_get, &body, version, c).await,
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-model-version: {version}\r\n{extra}{}\r\n",
            payload.len(),
            if keep_alive { "" } else { "connection: close\r\n" },
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(payload.as_bytes()).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

async fn answer(
    path: &str,
    is_get: bool,
    body: &[u8],
    version: &str,
    c: &Controls,
) -> (&'static str, &'static str, String) {
    let path = path.split('?').next().unwrap_or("/");
    if let Some(behaviour) = path.strip_prefix("/demo/") {
        if c.remote_control.load(Ordering::Relaxed) && !is_get {
            return remote_control(c, behaviour, version);
        }
    }
    if path == "/health" {
        return match c.mode() {
            Mode::Unhealthy => (
                "503 Service Unavailable",
                "",
                format!("{{\"status\":\"unhealthy\",\"model_version\":\"{version}\"}}\n"),
            ),
            _ => (
                "200 OK",
                "",
                format!("{{\"status\":\"healthy\",\"model_version\":\"{version}\"}}\n"),
            ),
        };
    }
    c.predictions.fetch_add(1, Ordering::Relaxed);
    let delay = c.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if c.mode() == Mode::Failing {
        return (
            "500 Internal Server Error",
            "",
            format!("{{\"error\":\"model {version} failed\"}}\n"),
        );
    }
    // The upstream's own session cookie, which the proxy must pass through untouched.
    let cookie = if path == "/login" {
        "set-cookie: model_session=abc123; Path=/\r\n"
    } else {
        ""
    };
    let (prediction, confidence) = predict(body, version);
    (
        "200 OK",
        cookie,
        format!("{{\"prediction\":\"{prediction}\",\"confidence\":{confidence:.2},\"model_version\":\"{version}\"}}\n"),
    )
}

/// Demo's `POST /demo/<behaviour>`: how a model goes bad, from a shell.
fn remote_control(
    c: &Controls,
    behaviour: &str,
    version: &str,
) -> (&'static str, &'static str, String) {
    let (mode, delay) = match behaviour {
        "healthy" => (Mode::Healthy, 0),
        "failing" => (Mode::Failing, 0),
        "slow" => (Mode::Healthy, SLOW_MS),
        "hang" => (Mode::Healthy, HANG_MS),
        "unhealthy" => (Mode::Unhealthy, 0),
        "hangup" => (Mode::Hangup, 0),
        other => {
            return (
                "404 Not Found",
                "",
                format!(
                    "{}\n",
                    serde_json::json!({
                        "error": format!("no behaviour `{other}`: use healthy, failing, slow, hang, unhealthy or hangup")
                    })
                ),
            )
        }
    };
    c.set_mode(mode);
    c.delay_ms.store(delay, Ordering::Relaxed);
    (
        "200 OK",
        "",
        format!("{{\"model_version\":\"{version}\",\"behaviour\":\"{behaviour}\"}}\n"),
    )
}

/// How slow `POST /demo/slow` makes every prediction: over the demo's 2 s p99 limit.
const SLOW_MS: u64 = 2500;

/// `POST /demo/hang`: predictions never answer (the proxy's read timeout ends them); health
/// checks still pass, as when a model's inference queue is stuck.
const HANG_MS: u64 = 3_600_000;

/// A toy sentiment model: v2 is a little more confident than v1, as a retrained model would be.
fn predict(body: &[u8], version: &str) -> (&'static str, f64) {
    let text = String::from_utf8_lossy(body).to_lowercase();
    let negative = ["bad", "awful", "terrible", "hate", "slow"]
        .iter()
        .filter(|w| text.contains(*w))
        .count();
    let label = if negative > 0 { "negative" } else { "positive" };
    let base = if version == "v1" { 0.87 } else { 0.93 };
    (label, base - 0.02 * negative.min(5) as f64)
}
