//! Shared test harness: real model servers, the real `blueshift` binary, real sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use blueshift::model_server::ModelServer;

pub mod browser;
pub mod check;
pub mod origin;
pub mod peers;

/// How long anything in a test may take to become true.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A port that was free a moment ago, for a process the test starts to listen on. It comes
/// from below the kernel's ephemeral range (32768 and up by default), never from binding port
/// 0: a port the kernel hands out can be handed out again, to a fake origin or an outgoing
/// connection, before the process binds it (a VTC script once got its own proxy port for its
/// origin). Each test process walks its own stretch of 20000-31999, one port after another.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

/// An address where nothing listens (bound once, then closed).
pub fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Polls `f` until it returns `Some`, or panics after [`DEADLINE`] with `what`.
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    eventually_within(DEADLINE, || format!("timed out waiting for {what}"), f)
}

/// Polls `f` until it returns `Some`, or panics after `deadline` with what `why` says then.
pub fn eventually_within<T>(
    deadline: Duration,
    why: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Model servers running on their own runtime.
pub struct Models {
    rt: tokio::runtime::Runtime,
    pub servers: Vec<ModelServer>,
}

impl Models {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Models {
            rt,
            servers: Vec::new(),
        }
    }

    /// Starts a model server reporting `version`; returns its index.
    pub fn start(&mut self, version: &str) -> usize {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _guard = self.rt.enter();
        self.servers.push(ModelServer::start(l, version).unwrap());
        self.servers.len() - 1
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i].addr
    }

    /// Starts a model server speaking HTTPS with this pair (PEM); returns its index.
    pub fn start_tls(&mut self, version: &str, pair: &(String, String)) -> usize {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _guard = self.rt.enter();
        self.servers
            .push(ModelServer::start_tls(l, version, &pair.0, &pair.1).unwrap());
        self.servers.len() - 1
    }
}

/// Two free loopback addresses: the proxy's and the admin API's.
pub fn ports() -> (SocketAddr, SocketAddr) {
    let a = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    (a, b)
}

/// Replaces `{listen}` and `{admin}` in a policy template.
pub fn fill(policy: &str, addr: SocketAddr, admin: SocketAddr) -> String {
    policy
        .replace("{listen}", &addr.to_string())
        .replace("{admin}", &admin.to_string())
}

/// A `blueshift serve` child process.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// What a `{tls}` placeholder in the policy became (a TLS listener's address).
    pub tls: SocketAddr,
    pub policy: PathBuf,
    _dir: tempfile::TempDir,
    /// One keep-alive connection for [`Proxy::get`], as a real client would hold.
    conn: std::sync::Mutex<Option<TcpStream>>,
}

impl Proxy {
    /// Starts the binary with `policy`, in which `{listen}` and `{admin}` are replaced by free
    /// ports, and waits until its admin API answers.
    pub fn start(policy: &str) -> Proxy {
        Self::start_with_env(policy, &[])
    }

    pub fn start_with_env(policy: &str, env: &[(&str, &str)]) -> Proxy {
        Self::start_with(policy, env, None)
    }

    /// Starts the binary with `policy` and, if given, a Pingora conf of that text.
    pub fn start_with(policy: &str, env: &[(&str, &str)], pingora_conf: Option<&str>) -> Proxy {
        Self::start_keeping_log(policy, env, pingora_conf, false).0
    }

    /// [`Proxy::start_with`], with the log (stderr) kept in a file; returns its path too.
    pub fn start_logged(policy: &str, pingora_conf: Option<&str>) -> (Proxy, PathBuf) {
        let (p, log) = Self::start_keeping_log(policy, &[], pingora_conf, true);
        (p, log.unwrap())
    }

    fn start_keeping_log(
        policy: &str,
        env: &[(&str, &str)],
        pingora_conf: Option<&str>,
        keep_log: bool,
    ) -> (Proxy, Option<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        let (addr, admin) = ports();
        let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let policy = policy.replace("{tls}", &tls.to_string());
        std::fs::write(&path, fill(&policy, addr, admin)).unwrap();
        let conf = dir.path().join("pingora.yaml");
        let mut args = Vec::new();
        if let Some(text) = pingora_conf {
            std::fs::write(&conf, text).unwrap();
            args = vec!["--pingora-conf", conf.to_str().unwrap()];
        }
        let log = keep_log.then(|| dir.path().join("blueshift.log"));
        let stderr = match &log {
            Some(log) => Stdio::from(std::fs::File::create(log).unwrap()),
            None => Stdio::null(),
        };
        let child = Proxy::spawn_logging(&path, &args, env, stderr);
        let mut p = Proxy::attach(child, &path, addr, admin, dir);
        p.tls = tls;
        (p, log)
    }

    /// Runs the binary on a policy file the caller wrote (with [`ports`] and [`fill`]).
    pub fn launch(
        path: &std::path::Path,
        addr: SocketAddr,
        admin: SocketAddr,
        env: &[(&str, &str)],
        dir: tempfile::TempDir,
    ) -> Proxy {
        let child = Proxy::spawn(path, &[], env);
        Proxy::attach(child, path, addr, admin, dir)
    }

    /// Starts `blueshift serve --policy path` with extra arguments, without waiting.
    pub fn spawn(path: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Child {
        Self::spawn_logging(path, args, env, Stdio::null())
    }

    /// [`Proxy::spawn`], with the log (stderr) going to `log`.
    pub fn spawn_logging(
        path: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: impl Into<Stdio>,
    ) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_blueshift"));
        cmd.args(["serve", "--policy"])
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd.env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Waits for a spawned process to serve, and owns it from then on.
    pub fn attach(
        child: Child,
        path: &std::path::Path,
        addr: SocketAddr,
        admin: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Proxy {
        let mut p = Proxy {
            child,
            addr,
            admin,
            tls: addr,
            policy: path.to_path_buf(),
            _dir: dir,
            conn: std::sync::Mutex::new(None),
        };
        eventually("the proxy to start", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("blueshift exited early: {status}");
            }
            let status = get(admin, "/status", &[]).ok()?;
            let pid =
                serde_json::from_str::<serde_json::Value>(&status.body).ok()?["pid"].as_u64()?;
            (pid == u64::from(p.child.id())).then_some(())
        });
        p.wait_checked();
        // The proxy listener starts after the first health checks, a moment after the admin API.
        eventually("the proxy listener", || {
            TcpStream::connect(addr).ok().map(drop)
        });
        p
    }

    /// Waits until every backend has had its first health check.
    pub fn wait_checked(&self) {
        eventually("every backend's first health check", || {
            let s = self.status();
            let all_known = s["routes"]
                .as_object()?
                .values()
                .flat_map(|r| r["colors"].as_object().cloned().unwrap_or_default())
                .flat_map(|(_, c)| c["backends"].as_array().cloned().unwrap_or_default())
                .all(|b| b["health"] != "unknown");
            all_known.then_some(())
        });
    }

    /// `GET /status` as the typed document the CLI reads.
    pub fn typed(&self) -> blueshift::ops::status::Status {
        let r = get(self.admin, "/status", &[]).unwrap();
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
    }

    /// Polls the typed `/status` until `f` accepts it.
    pub fn wait_typed(
        &self,
        what: &str,
        f: impl Fn(&blueshift::ops::status::Status) -> bool,
    ) -> blueshift::ops::status::Status {
        eventually(what, || {
            let s = self.typed();
            f(&s).then_some(s)
        })
    }

    /// Polls `/status` until `f` accepts it.
    pub fn wait_status(
        &self,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(what, || {
            let s = self.status();
            f(&s).then_some(s)
        })
    }

    /// `blueshift status` against this proxy, as an operator reads it (plain text).
    pub fn cli_status(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_blueshift"))
            .args(["status", "--admin", &self.admin.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `POST path` on the admin API.
    pub fn admin_post(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        post(self.admin, path, headers).unwrap()
    }

    /// `GET path` through the proxy.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        // Sessions are cookies and headers, not connections, so one keep-alive connection serves
        // every request (thousands of fresh loopback connections per second would churn ports).
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", self.addr).into_bytes();
        for (k, v) in headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let mut conn = self.conn.lock().unwrap();
        loop {
            let (stream, reused) = match conn.take() {
                Some(s) => (s, true),
                None => (
                    TcpStream::connect(self.addr)
                        .unwrap_or_else(|e| panic!("connect to the proxy: {e}")),
                    false,
                ),
            };
            match exchange(stream, &req) {
                Ok((resp, reusable)) => {
                    *conn = reusable;
                    return resp;
                }
                // Only a reused connection that the server had closed is retried, as browsers do.
                Err(e) if reused && e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
                Err(e) => panic!("GET {path} through the proxy: {e}"),
            }
        }
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let r = get(self.admin, "/status", &[]).unwrap();
        serde_json::from_str(&r.body).unwrap()
    }

    /// Polls `/metrics` until every line is in it: counters are updated in Pingora's `logging`
    /// hook, which may run just after the client already has its response.
    pub fn wait_metrics(&self, lines: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let text = self.metrics();
            let missing: Vec<&&str> = lines.iter().filter(|l| !text.contains(**l)).collect();
            if missing.is_empty() {
                return text;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "metrics lack {missing:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole `/metrics` text.
    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics", &[]).unwrap().body
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The errors and requests a rollback reason `error rate R > LIMIT over WINDOW (N requests)`
/// counts, from its rate and its N.
pub fn reason_errors(reason: &str) -> (f64, f64) {
    reason
        .strip_prefix("error rate ")
        .and_then(|r| r.split_once(" > "))
        .and_then(|(rate, rest)| Some((rate, rest.split_once(" (")?.1)))
        .and_then(|(rate, n)| Some((rate.parse::<f64>().ok()?, n.strip_suffix(" requests)")?)))
        .and_then(|(rate, n)| Some((rate, n.parse::<f64>().ok()?)))
        .map(|(rate, n)| ((rate * n).round(), n))
        .unwrap_or_else(|| panic!("not an error-rate reason: {reason}"))
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn color(&self) -> &str {
        self.header("x-blueshift-color").unwrap_or("")
    }

    /// The value our affinity cookie was set to, if this response set it.
    pub fn pinned(&self, cookie: &str) -> Option<String> {
        self.all("set-cookie").into_iter().find_map(|c| {
            c.strip_prefix(&format!("{cookie}="))
                .map(|v| v.split(';').next().unwrap_or("").to_owned())
        })
    }
}

/// One request on a fresh connection (so every request is a new session unless it says otherwise).
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(addr, "GET", path, headers, b"")
}

pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(addr, "POST", path, headers, b"")
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    let raw = raw(addr, &req)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "unparseable response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

/// One request on a kept-alive connection: the response, and the connection if it stays open.
pub fn exchange(mut s: TcpStream, req: &[u8]) -> std::io::Result<(Resp, Option<TcpStream>)> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = r.parse(&buf) else {
            continue;
        };
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = match chunked {
            true => read_chunked(&mut s, buf[head..].to_vec())?,
            false => {
                let len: usize = header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| std::io::Error::other("response without content-length"))?;
                while buf.len() < head + len {
                    let n = s.read(&mut chunk)?;
                    if n == 0 {
                        return Err(std::io::Error::other("response body cut short"));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                buf[head..head + len].to_vec()
            }
        };
        let mut resp =
            parse(&buf[..head]).ok_or_else(|| std::io::Error::other("unparseable response"))?;
        resp.body = String::from_utf8_lossy(&body).into_owned();
        return Ok((resp, (!close).then_some(s)));
    }
}

/// Reads a chunked body whose first bytes are `have`, up to its last chunk (trailers ignored).
fn read_chunked(s: &mut TcpStream, mut have: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut more = |have: &mut Vec<u8>| -> std::io::Result<()> {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("chunked body cut short"));
        }
        have.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    loop {
        let Some(eol) = have.windows(2).position(|w| w == b"\r\n") else {
            more(&mut have)?;
            continue;
        };
        let size = std::str::from_utf8(&have[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            // The last chunk, then (trailers and) an empty line.
            while !have[eol..].windows(4).any(|w| w == b"\r\n\r\n") {
                more(&mut have)?;
            }
            return Ok(body);
        }
        while have.len() < eol + 2 + size + 2 {
            more(&mut have)?;
        }
        body.extend_from_slice(&have[eol + 2..eol + 2 + size]);
        have.drain(..eol + 2 + size + 2);
    }
}

/// Sends bytes, reads until the server closes (or 10 s pass).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// Parses one HTTP/1.1 response with a content-length (or read-to-close) body.
pub fn parse(raw: &[u8]) -> Option<Resp> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(raw).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some(Resp {
        status: r.code?,
        headers,
        body: String::from_utf8_lossy(&raw[n..]).into_owned(),
    })
}

/// A two-color policy template; `{blue}`/`{green}` backends, `{listen}`/`{admin}` filled by [`Proxy`].
pub fn two_colors(
    blue: &[SocketAddr],
    green: &[SocketAddr],
    split: (u32, u32),
    extra: &str,
) -> String {
    let list = |addrs: &[SocketAddr]| {
        addrs
            .iter()
            .map(|a| format!("      - addr: {a}\n"))
            .collect::<String>()
    };
    format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends:\n{}  green:\n    backends:\n{}stable: blue\nsplit:\n  blue: {}\n  green: {}\n{extra}",
        list(blue),
        list(green),
        split.0,
        split.1
    )
}

/// One request's outcome under background load.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub path: String,
    pub status: u16,
    pub color: String,
}

/// Steady client traffic from a background thread, one request every `every`, until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Load {
    pub fn start(addr: SocketAddr, every: Duration) -> Load {
        Load::on(addr, &["/predict"], every)
    }

    /// Traffic to each of `paths` in turn.
    pub fn on(addr: SocketAddr, paths: &[&str], every: Duration) -> Load {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            // Bounded: at most 60 s of traffic whatever the test does.
            let end = Instant::now() + Duration::from_secs(60);
            let mut next = paths.iter().cycle();
            while !s.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
                let path = next.next().map_or("/predict", |p| p.as_str());
                let r = get(addr, path, &[]);
                let (status, color) = match r {
                    Ok(r) => (r.status, r.color().to_owned()),
                    Err(_) => (0, String::new()),
                };
                out.push(Sample {
                    at: Instant::now(),
                    path: path.to_owned(),
                    status,
                    color,
                });
                std::thread::sleep(every);
            }
            out
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
