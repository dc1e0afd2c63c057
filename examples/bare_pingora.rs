//! A bare Pingora proxy (one fixed peer, no features) under blueshift's server settings: the
//! floor that benches/load.sh's blueshift numbers are compared with in BENCHMARKS.md.
//!
//!   cargo run --release --example bare_pingora -- LISTEN_ADDR PEER_ADDR [TLS_ADDR CERT KEY]
//!
//! The plain listener takes HTTP/1.1 and h2c and the TLS one offers h2 and http/1.1, as
//! blueshift's do. `BARE_CLIENT_LIMITS=1` also gives client connections blueshift's settings
//! (pipelining, a timeout on every read and write, keep-alive); `BARE_READ_BUFFER=BYTES` gives
//! the plain listener's connections a read buffer of that size instead of Pingora's 64 KiB
//! (blueshift's is 4 KiB).

use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::RunArgs;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

mod common;

#[global_allocator]
static GLOBAL: blueshift::app::allocator::Mimalloc = blueshift::app::allocator::Mimalloc;

/// The peer, and whether to give each client connection blueshift's settings (pipelining, a
/// timeout on every read and write, keep-alive): `BARE_CLIENT_LIMITS=1`.
struct Bare(HttpPeer, bool);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn early_request_filter(
        &self,
        session: &mut Session,
        _: &mut (),
    ) -> pingora_core::Result<()> {
        if self.1 {
            session.set_pipelining_enabled(true);
            session.set_read_timeout(Some(std::time::Duration::from_secs(60)));
            session.set_write_timeout(Some(std::time::Duration::from_secs(60)));
            if session.get_keepalive().is_some() {
                session.set_keepalive(Some(60));
            }
        }
        Ok(())
    }
    async fn upstream_peer(
        &self,
        _: &mut Session,
        _: &mut (),
    ) -> pingora_core::Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

fn main() {
    let (mut server, listen, peer) = common::setup();
    let mut svc = pingora_proxy::http_proxy_service(
        &server.configuration,
        Bare(
            peer,
            std::env::var("BARE_CLIENT_LIMITS").is_ok_and(|v| v == "1"),
        ),
    );
    if let Some(app) = svc.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    match std::env::var("BARE_READ_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(bytes) => svc.add_listener(
            ListenerConfig::tcp(listen).l4_buffer(L4BufferSettings::default().read(bytes)),
        ),
        None => svc.add_tcp(&listen),
    }
    let tls: Vec<String> = std::env::args().skip(3).collect();
    if let [addr, cert, key] = tls.as_slice() {
        let mut settings = TlsSettings::intermediate(cert, key).expect("TLS settings");
        settings.enable_h2();
        svc.add_tls_with_settings(addr, None, settings);
    }
    server.add_service(svc);
    server.run(RunArgs::default());
}
