//! One probe, through Pingora's connector with the color's peer (so over its protocol: HTTP/1.1
//! or HTTP/2, cleartext or TLS): `GET path`, where 2xx and 3xx pass, or gRPC's health protocol
//! (`grpc.health.v1.Health/Check`), where `SERVING` passes.

use bytes::{BufMut, Bytes, BytesMut};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_core::{Error, ErrorType};
use pingora_http::RequestHeader;

use crate::config::Health;

const USER_AGENT: &str = "blueshift-health";

/// The probe could not be made for want of blueshift's own resources (file descriptors, local
/// ports): no verdict on the backend.
pub const NO_VERDICT: &str = "blueshift is out of file descriptors or local ports";

/// Probes once; the error is a short reason for the log and `/status`, or [`NO_VERDICT`].
pub async fn probe(connector: &Connector, peer: &HttpPeer, h: &Health) -> Result<(), &'static str> {
    let (mut s, _) = connector.get_http_session(peer).await.map_err(|e| {
        match crate::route::peer::local_exhaustion(&e) {
            true => NO_VERDICT,
            false => connect_error(&e),
        }
    })?;
    // Every probe opens its own connection: a check should see what a new connection sees.
    let r = match &h.grpc {
        Some(service) => grpc(&mut s, peer, service).await,
        None => http(&mut s, peer, &h.path).await,
    };
    s.shutdown().await;
    r
}

fn connect_error(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectRefused => "connection refused",
        ErrorType::ConnectTimedout => "timed out",
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => "TLS handshake failed",
        ErrorType::H2Error => "HTTP/2 handshake failed",
        _ => "connect failed",
    }
}

fn request(method: &str, path: &str, peer: &HttpPeer) -> Result<Box<RequestHeader>, &'static str> {
    let mut req =
        RequestHeader::build(method, path.as_bytes(), None).map_err(|_| "invalid health path")?;
    let host = match peer.sni() {
        "" => peer.address().to_string(),
        sni => sni.to_owned(),
    };
    req.insert_header("host", host)
        .and_then(|_| req.insert_header("user-agent", USER_AGENT))
        .map_err(|_| "invalid health request")?;
    Ok(Box::new(req))
}

async fn http(s: &mut HttpSession, peer: &HttpPeer, path: &str) -> Result<(), &'static str> {
    let req = request("GET", path, peer)?;
    s.write_request_header(req)
        .await
        .map_err(|_| "write failed")?;
    s.finish_request_body().await.map_err(|_| "write failed")?;
    s.read_response_header()
        .await
        .map_err(|_| "closed before answering")?;
    match s.response_header().map(|r| r.status.as_u16()) {
        Some(200..=399) => Ok(()),
        Some(_) => Err("unhealthy status"),
        None => Err("invalid HTTP response"),
    }
}

/// `grpc.health.v1.HealthCheckRequest { service }`, framed: 1 flag byte, 4 length bytes.
fn health_request(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0);
    frame.put_u32(msg.len() as u32);
    frame.put_slice(&msg);
    frame.freeze()
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// The `status` of a framed `HealthCheckResponse` (0 = UNKNOWN when absent).
fn health_status(body: &[u8]) -> Option<u64> {
    let len = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
    let mut msg = body.get(5..5 + len)?;
    let mut status = 0;
    while let Some((&tag, rest)) = msg.split_first() {
        let (value, rest) = varint(rest)?;
        match tag {
            0x08 => status = value,
            t if t & 7 == 0 => {}
            _ => return None,
        }
        msg = rest;
    }
    Some(status)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

const SERVING: u64 = 1;

async fn grpc(s: &mut HttpSession, peer: &HttpPeer, service: &str) -> Result<(), &'static str> {
    let mut req = request("POST", "/grpc.health.v1.Health/Check", peer)?;
    req.insert_header("content-type", "application/grpc")
        .and_then(|_| req.insert_header("te", "trailers"))
        .map_err(|_| "invalid health request")?;
    s.write_request_header(req)
        .await
        .map_err(|_| "write failed")?;
    s.write_request_body(health_request(service), true)
        .await
        .map_err(|_| "write failed")?;
    s.finish_request_body().await.map_err(|_| "write failed")?;
    s.read_response_header()
        .await
        .map_err(|_| "closed before answering")?;
    let head = s.response_header().ok_or("invalid HTTP response")?;
    if head.status.as_u16() != 200 {
        return Err("unhealthy status");
    }
    // A trailers-only answer carries grpc-status in its headers: an error (e.g. NOT_FOUND).
    if head.headers.get("grpc-status").is_some_and(|v| v != "0") {
        return Err("gRPC health check failed");
    }
    let mut body = BytesMut::new();
    while !s.response_done() {
        match s.read_response_body().await.map_err(|_| "read failed")? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    if let HttpSession::H2(h2) = s {
        let trailers = h2.read_trailers().await.map_err(|_| "read failed")?;
        if trailers.is_some_and(|t| t.get("grpc-status").is_some_and(|v| v != "0")) {
            return Err("gRPC health check failed");
        }
    }
    match health_status(&body) {
        Some(SERVING) => Ok(()),
        Some(_) => Err("not serving"),
        None => Err("invalid gRPC health answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_encode_and_decode() {
        assert_eq!(&health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&health_request("model")[..], b"\0\0\0\0\x07\x0a\x05model");
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(SERVING));
        assert_eq!(
            health_status(&[0, 0, 0, 0, 2, 0x08, 2]),
            Some(2),
            "NOT_SERVING"
        );
        assert_eq!(
            health_status(&[0, 0, 0, 0, 0]),
            Some(0),
            "UNKNOWN is the default"
        );
        assert_eq!(health_status(&[0, 0, 0, 0, 9, 0x08]), None, "cut short");
        assert_eq!(health_status(b"garbage"), None);
    }
}
