//! The first request head of a new client connection, with a deadline, and the choice between
//! HTTP/1.1 and h2c on a plain listener.
//!
//! Pingora reads a request head with a timeout on each read only, and on a plain listener that
//! also takes h2c it first waits, with no timeout at all, for the 24 bytes that tell HTTP/1.1
//! from HTTP/2 (so a complete HTTP/1.0 request shorter than that would wait for ever too). A
//! client that opens connections and sends nothing, or dribbles a byte now and then
//! (slowloris), could hold them for ever. The gate reads the head of a connection's first
//! request (or the HTTP/2 preface, which ends like a head) within `timeouts.client_header`,
//! hands the bytes back to the stream, and passes the connection to the proxy that speaks it:
//! one with h2c for an HTTP/2 preface, one for HTTP/1 otherwise. Past the deadline it answers
//! 408 and closes. Later requests on a kept-alive connection are Pingora's: its
//! keep-alive timeout bounds the wait for each of them. On a TLS listener, where Pingora already
//! bounds the handshake (60 s) and reads without the h2c peek, the gate lets connections
//! through as they are: TLS streams cannot take bytes back, and their reads stay bounded by
//! `timeouts.client_body` each.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::debug;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as TcpStream;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proxy::framing::MAX_REQUEST_HEAD;
use crate::route::snapshot::Shared;

/// The 408 a client gets when its first request head is too slow.
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 51\r\nconnection: close\r\n\r\nblueshift: the request head did not arrive in time\n";

/// The start of an HTTP/2 connection with prior knowledge (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The proxy behind the gate, twice: for HTTP/1 (and TLS, where ALPN decides) and for h2c.
pub struct Gate<A> {
    http1: Arc<A>,
    h2c: Arc<A>,
    state: Shared,
}

impl<A> Gate<A> {
    /// Puts the two apps behind the gate; the deadline comes from the policy in `state`.
    pub fn new(http1: A, h2c: A, state: Shared) -> Self {
        Gate {
            http1: Arc::new(http1),
            h2c: Arc::new(h2c),
            state,
        }
    }
}

/// Reads until the bytes hold a whole head (an empty line) or the HTTP/2 preface, cannot be the
/// start of an HTTP/1 request (Pingora answers those with 400 at once), the connection ends, or
/// more than a head may be; `None` when the client closed without sending anything.
async fn first_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return (!buf.is_empty()).then_some(buf),
            Ok(_) => {}
        }
        if H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
            // All of it so far is (the start of) an HTTP/2 preface.
            if buf.len() >= H2_PREFACE.len() {
                return Some(buf);
            }
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let complete = match httparse::Request::new(&mut headers).parse(&buf) {
            Ok(httparse::Status::Partial) => false,
            // Too many to count here: the empty line still ends the head.
            Err(httparse::Error::TooManyHeaders) => buf.windows(4).any(|w| w == b"\r\n\r\n"),
            _ => true,
        };
        if complete || buf.len() > MAX_REQUEST_HEAD {
            return Some(buf);
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !stream.as_any().is::<TcpStream>() {
            return self.http1.process_new(stream, shutdown).await;
        }
        let mut tcp = stream.into_any().downcast::<TcpStream>().ok()?;
        let deadline: Duration = self.state.load().policy.timeouts.client_header;
        match tokio::time::timeout(deadline, first_head(&mut tcp)).await {
            Ok(Some(head)) if head.starts_with(H2_PREFACE) => {
                tcp.rewind(&head);
                return self.h2c.process_new(tcp, shutdown).await;
            }
            Ok(Some(head)) => tcp.rewind(&head),
            Ok(None) => return None,
            Err(_) => {
                debug!("closing a connection whose first request head took over {deadline:?}");
                let write = tcp.write_all(TIMED_OUT);
                let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                return None;
            }
        }
        self.http1.process_new(tcp, shutdown).await
    }

    async fn cleanup(&self) {
        self.http1.cleanup().await;
        self.h2c.cleanup().await;
    }
}
