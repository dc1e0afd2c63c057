//! Clients that open a new connection for every request, measured the way their users feel it:
//! from the start of `connect` (and, with TLS, the handshake) to the end of the answer. `C`
//! clients each loop for `SECS` seconds: connect, `GET PATH` with `Connection: close`, read to
//! the end, close. With `CA_PEM` the connection is TLS to `localhost` checked against that CA,
//! and, as browsers and wrk do, clients resume earlier TLS sessions. Prints one JSON
//! line: requests, errors, and p50/p99 of the whole time per request (wrk's latency starts
//! after the handshake, so it leaves out what this row is about).
//!
//!   cargo run --release --example conn_load -- HOST:PORT PATH C SECS [CA_PEM]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Writes the request and reads to the end; `Ok` on a 200 answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &[u8]) -> Result<(), String> {
    s.write_all(req).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::with_capacity(1024);
    // A TLS peer that closes without close_notify still gave the whole answer (Connection:
    // close, read to the end): what was read counts.
    let _ = s.read_to_end(&mut answer).await;
    match answer.starts_with(b"HTTP/1.1 200") {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned()),
    }
}

async fn one(addr: &str, req: &[u8], tls: Option<&TlsConnector>) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => exchange(tcp, req).await,
        Some(c) => {
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let s = c.connect(name, tcp).await.map_err(|e| e.to_string())?;
            exchange(s, req).await
        }
    }
}

async fn client(
    addr: String,
    req: Vec<u8>,
    tls: Option<TlsConnector>,
    start: Duration,
    until: Instant,
) -> (u64, u64, Histogram<u64>) {
    // Independent users do not start in step: client i starts i/C of a second in.
    tokio::time::sleep(start).await;
    let (mut ok, mut errors) = (0, 0);
    let mut whole = Histogram::new(3).unwrap();
    while Instant::now() < until {
        let t = Instant::now();
        match one(&addr, &req, tls.as_ref()).await {
            Ok(()) => {
                ok += 1;
                let _ = whole.record(t.elapsed().as_micros().max(1) as u64);
            }
            Err(_) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (ok, errors, whole)
}

/// A connector trusting only the CA in `pem`, with rustls' in-memory session cache (256
/// sessions, shared by the clients).
fn tls_connector(pem: &str) -> TlsConnector {
    let text = std::fs::read(pem).unwrap_or_else(|e| panic!("{pem}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, path, c, secs, ca) = match &args[..] {
        [a, p, c, s] => (a, p, c, s, None),
        [a, p, c, s, ca] => (a, p, c, s, Some(ca)),
        _ => {
            eprintln!("usage: conn_load HOST:PORT PATH CLIENTS SECONDS [CA_PEM]");
            std::process::exit(2);
        }
    };
    let c: usize = c.parse().expect("CLIENTS");
    let until = Instant::now() + Duration::from_secs_f64(secs.parse().expect("SECONDS"));
    let req =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").into_bytes();
    let tls = ca.map(|pem| tls_connector(pem));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, errors, whole) = rt.block_on(async {
        let tasks: Vec<_> = (0..c)
            .map(|i| {
                let start = Duration::from_secs(1) * i as u32 / c as u32;
                tokio::spawn(client(addr.clone(), req.clone(), tls.clone(), start, until))
            })
            .collect();
        let mut all = (0, 0, Histogram::new(3).unwrap());
        for task in tasks {
            let (ok, errors, h) = task.await.unwrap();
            all.0 += ok;
            all.1 += errors;
            all.2.add(&h).unwrap();
        }
        all
    });
    println!(
        "{{\"requests\":{ok},\"errors\":{errors},\"p50_us\":{},\"p99_us\":{}}}",
        whole.value_at_quantile(0.5),
        whole.value_at_quantile(0.99)
    );
}
