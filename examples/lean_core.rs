//! A measurement, not a proxy to run: Pingora's HTTP/1 sessions and connector driven directly
//! through `HttpServerApp`, without pingora-proxy's `ProxyHttp` machinery (no per-request
//! channels, no duplex tasks, no header clones beyond one, and the upstream connection kept with
//! the downstream one instead of going through the pool). It forwards one request, then its
//! response, in sequence: no upgrades, no 1xx, no error pages, no timeouts on the client side.
//! BENCHMARKS.md compares it with bare Pingora and blueshift to show where the time goes.
//!
//!   cargo build --release --example lean_core
//!   target/release/examples/lean_core LISTEN_ADDR PEER_ADDR

use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::connectors::http::v1::Connector;
use pingora_core::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::{RunArgs, ShutdownWatch};
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::HttpPeer;
use std::sync::{Arc, Mutex};

mod common;

#[global_allocator]
static GLOBAL: blueshift::app::allocator::Mimalloc = blueshift::app::allocator::Mimalloc;

struct Lean {
    peer: HttpPeer,
    connector: Connector,
}

/// The upstream connection that served the previous request on this client connection.
type Kept = Mutex<Option<Stream>>;

impl Lean {
    async fn forward(&self, session: &mut ServerSession) -> Option<Option<Stream>> {
        let kept = session
            .take_connection_user_context()
            .and_then(|c| c.downcast::<Kept>().ok())
            .and_then(|m| m.into_inner().ok()?);
        let mut up = match kept {
            Some(stream) => UpstreamSession::new_with_options(stream, &self.peer),
            None => self.connector.get_http_session(&self.peer).await.ok()?.0,
        };
        up.write_request_header(Box::new(session.req_header().clone()))
            .await
            .ok()?;
        while let Some(chunk) = session.read_request_body().await.ok()? {
            up.write_body(&chunk).await.ok()?;
        }
        up.finish_body().await.ok()?;
        let resp = up.read_resp_header_parts().await.ok()?;
        session.write_response_header(resp).await.ok()?;
        while !up.is_body_done() {
            match up.read_body_bytes().await.ok()? {
                Some(chunk) => session.write_response_body(chunk, false).await.ok()?,
                None => break,
            }
        }
        session.finish_body().await.ok()?;
        up.respect_keepalive();
        Some(up.reuse().await)
    }
}

#[async_trait]
impl HttpServerApp for Lean {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.read_request().await.ok()? {
            return None;
        }
        let upstream = self.forward(&mut session).await?;
        let mut settings = HttpPersistentSettings::for_session(&session);
        settings.set_user_context(Box::new(Kept::new(upstream)));
        let reusable = session.finish().await.ok()??;
        Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
    }
}

fn main() {
    let (mut server, listen, peer) = common::setup();
    let app = Lean {
        peer,
        connector: Connector::new(None),
    };
    let mut svc = Service::new("lean core".into(), app);
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run(RunArgs::default());
}
