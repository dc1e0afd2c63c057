//! A tiny HTTP/1.1 client for the CLI's calls to the admin API (plain HTTP, one request per
//! connection). The admin API always sends `content-length`, so no chunked decoding is needed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// Sends `method path` to the admin API at `admin` (`host:port` or `http://host:port`).
pub fn call(admin: &str, method: &str, path: &str, token: Option<&str>) -> Result<Answer, Error> {
    let host = admin.trim_start_matches("http://").trim_end_matches('/');
    let unreachable = |why: String| {
        Error::Other(format!(
            "cannot reach the admin API at {host}: {why} (is blueshift running? see --admin)"
        ))
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|_| unreachable("not a host:port address".into()))?
        .next()
        .ok_or_else(|| unreachable("the name does not resolve".into()))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| unreachable(reason(&e)))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| unreachable(reason(&e)))?;
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: blueshift-cli\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| unreachable(reason(&e)))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| unreachable(reason(&e)))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let bad = || {
        Error::Other(format!(
            "the admin API at {host} sent an answer that is not HTTP"
        ))
    };
    let head = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(bad()),
    };
    Ok(Answer {
        status: resp.code.ok_or_else(bad)?,
        body: String::from_utf8_lossy(&raw[head..]).into_owned(),
    })
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".into(),
        _ => e.to_string().to_lowercase(),
    }
}
