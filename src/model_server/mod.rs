//! A small stand-in model server for the demo, the tests and the benchmarks.
//!
//! `GET /health` answers like the FastAPI servers of the articles blueshift grew from;
//! `GET|POST /predict` answers `{"prediction", "confidence", "model_version"}` (about 70%
//! positive, a pure function of the input, so two healthy versions agree); `GET /stream` answers
//! a token stream (server-sent events, as LLM servers do); `/headers` echoes the request head it
//! received. Its behaviour can be switched at run time (healthy, failing with 500s, slow,
//! refusing health checks, answering wrong labels or not JSON) so tests can make a model go bad
//! the ways real ones do; the demo also lets a shell do it with `POST /demo/<behaviour>`.

mod answers;
mod reply;

use reply::Reply;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
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
    /// Answers 200 with the wrong labels (and streams that end the wrong way).
    Wrong,
    /// Answers 200 with an HTML error page instead of JSON.
    NotJson,
}

/// Shared switches of one running server.
#[derive(Debug)]
pub struct Controls {
    mode: AtomicU8,
    delay_ms: AtomicU64,
    /// Added to every confidence, in thousandths.
    score_offset: std::sync::atomic::AtomicI64,
    predictions: AtomicU64,
    connections: AtomicU64,
    remote_control: AtomicBool,
    recording: AtomicBool,
    recorded: std::sync::Mutex<Vec<Recorded>>,
}

/// A request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method, target, and headers (names lowercased) in the order received.
    pub method: String,
    /// The request target.
    pub path: String,
    /// `(name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
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

    /// Shifts every confidence by `by` (a retrained model that is more or less sure of itself).
    pub fn set_score_offset(&self, by: f64) {
        self.score_offset
            .store((by * 1000.0).round() as i64, Ordering::Relaxed);
    }

    fn score_offset(&self) -> f64 {
        self.score_offset.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Lets `POST /demo/<behaviour>` switch the server (the demo's servers only).
    pub fn allow_remote_control(&self) {
        self.remote_control.store(true, Ordering::Relaxed);
    }

    /// Keeps every request received from now on (see [`Controls::recorded`]).
    pub fn record_requests(&self) {
        self.recording.store(true, Ordering::Relaxed);
    }

    /// The requests received since [`Controls::record_requests`], health checks left out.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
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
            4 => Mode::Wrong,
            5 => Mode::NotJson,
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
        Self::start_with(listener, version, None)
    }

    /// Starts a server that speaks HTTPS with this certificate chain and key (PEM).
    pub fn start_tls(
        listener: std::net::TcpListener,
        version: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> std::io::Result<ModelServer> {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(std::io::Error::other)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with(listener, version, Some(acceptor))
    }

    fn start_with(
        listener: std::net::TcpListener,
        version: &str,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<ModelServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let controls = Arc::new(Controls {
            mode: AtomicU8::new(Mode::Healthy as u8),
            delay_ms: AtomicU64::new(0),
            score_offset: Default::default(),
            predictions: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            remote_control: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            recorded: Default::default(),
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
                        let _ = stream.set_nodelay(true);
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        let (v, c, mut s) = (version.clone(), c.clone(), stopped.clone());
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let served = async {
                                match tls {
                                    Some(tls) => match tls.accept(stream).await {
                                        Ok(stream) => serve_conn(stream, &v, &c).await,
                                        Err(e) => Err(e),
                                    },
                                    None => serve_conn(stream, &v, &c).await,
                                }
                            };
                            tokio::select! {
                                _ = s.changed() => {}
                                _ = served => {}
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

async fn serve_conn<S>(mut stream: S, version: &str, c: &Controls) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let (head_len, path, keep_alive, body_len, chunked, is_get, seen) = loop {
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
                    let chunked = header("transfer-encoding")
                        .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
                    let close =
                        header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
                    let keep = req.version == Some(1) && !close;
                    let path = req.path.unwrap_or("/").to_owned();
                    let seen = c.recording.load(Ordering::Relaxed).then(|| Recorded {
                        method: req.method.unwrap_or("").to_owned(),
                        path: path.clone(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value).into_owned();
                                (h.name.to_ascii_lowercase(), value)
                            })
                            .collect(),
                        body: Vec::new(),
                    });
                    let get = req.method == Some("GET");
                    break (n, path, keep, len, chunked, get, seen);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        };
        let head = match path == "/headers" {
            true => buf[..head_len].to_vec(),
            false => Vec::new(),
        };
        buf.drain(..head_len);
        let body = match chunked {
            true => match read_chunked(&mut stream, &mut buf).await? {
                Some(body) => body,
                None => return Ok(()),
            },
            false => {
                while buf.len() < body_len {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                buf.drain(..body_len).collect()
            }
        };
        if let Some(mut seen) = seen.filter(|_| !path.starts_with("/health")) {
            seen.body = body.clone();
            if let Ok(mut r) = c.recorded.lock() {
                r.push(seen);
            }
        }

        let exempt = path.starts_with("/health") || path.starts_with("/demo/");
        if c.mode() == Mode::Hangup && !exempt {
            c.predictions.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let reply = match path.as_str() {
            // What the model was sent, as httpbin's /headers: the proxy's additions show here.
            "/headers" => Reply::json("200 OK", String::from_utf8_lossy(&head).into_owned()),
            _ => answers::answer(&path, is_get, &body, version, c).await,
        };
        reply.write(&mut stream, version, keep_alive).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Reads a chunked request body (its trailers skipped); `None` if the client closed before the
/// end, `Err` on a chunk size that is not hex.
async fn read_chunked<S>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size");
    let mut body = Vec::new();
    loop {
        // A line: the chunk size (extensions after `;` ignored).
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if stream.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.drain(..i + 2);
                    if i == 0 {
                        return Ok(Some(body));
                    }
                    continue;
                }
                if stream.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
        }
        while buf.len() < size + 2 {
            if stream.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}
