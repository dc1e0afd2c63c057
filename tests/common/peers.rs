//! Real peers beyond the model server: a private CA and TLS clients, curl, and the Python gRPC
//! and WebSocket programs under `tests/py/`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::{parse, Resp};

/// A private certificate authority, as a company runs for its internal model servers.
pub struct Ca {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
    /// Its certificate, PEM.
    pub pem: String,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "blueshift test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            key,
            cert,
        }
    }

    /// A leaf for `names` signed by this CA, its CN the first name: (certificate, key), PEM.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate into `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

/// Writes a pair as `name.crt`/`name.key` in `dir`, through a rename so a reader never sees
/// half of one.
pub fn write_pair(dir: &Path, name: &str, pair: &(String, String)) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    for (path, text) in [(&key, &pair.1), (&cert, &pair.0)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

/// A rustls client config trusting `ca_pem`; every connection makes a full handshake (no
/// session resumption, which would keep presenting the certificate of the first session).
pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One HTTP/1.1 request over a new TLS connection: the answer and the subject of the
/// certificate the server presented.
pub fn tls_get(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(Resp, String)> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), server_name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; what was read is the whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let subject = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default();
    let resp = parse(&raw).ok_or_else(|| std::io::Error::other("unparseable answer"))?;
    Ok((resp, subject))
}

/// `curl ARGS`, output captured.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed by `make test`")
}

fn py(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR")));
    c
}

/// A Python peer that printed "ready PORT": killed when dropped.
pub struct PyServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    pub addr: SocketAddr,
}

impl PyServer {
    fn spawn(mut cmd: Command) -> PyServer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with grpcio and websockets is installed by `make test`");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = lines
                .recv_timeout(super::DEADLINE)
                .expect("the Python peer to print `ready PORT`");
            if let Some(p) = line.strip_prefix("ready ") {
                break p.trim().parse::<u16>().unwrap();
            }
        };
        PyServer {
            child,
            stdin,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// A gRPC model server reporting `version`, in cleartext or with TLS.
    pub fn grpc(version: &str, tls: Option<(&Path, &Path)>) -> PyServer {
        let mut cmd = py("grpc_model.py");
        cmd.arg(version);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls").arg(cert).arg(key);
        }
        PyServer::spawn(cmd)
    }

    /// A WebSocket echo server.
    pub fn websocket() -> PyServer {
        let mut cmd = py("ws.py");
        cmd.arg("serve");
        PyServer::spawn(cmd)
    }

    /// Switches a gRPC model server's behaviour (`healthy`, `internal`, `not_serving`) and waits
    /// until it says it did.
    pub fn mode(&mut self, mode: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "mode {mode}").unwrap();
        stdin.flush().unwrap();
        loop {
            let line = self.lines.recv_timeout(super::DEADLINE).unwrap();
            if line == format!("mode {mode}") {
                return;
            }
        }
    }

    /// Kills the process, as a crashed server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the gRPC client: one JSON value per call.
pub fn grpc_client(target: &str, kind: &str, n: usize, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = py("grpc_client.py")
        .args([target, kind, &n.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs the WebSocket client against `url`: the echoes it got.
pub fn websocket_echo(url: &str, cafile: Option<&Path>) -> Vec<String> {
    let mut cmd = py("ws.py");
    cmd.args(["echo", url]);
    if let Some(ca) = cafile {
        cmd.arg(ca);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
