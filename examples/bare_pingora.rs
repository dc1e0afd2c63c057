//! A bare Pingora proxy (one fixed peer, no features) under blueshift's server settings: the
//! floor that benches/load.sh's blueshift numbers are compared with in BENCHMARKS.md.
//!
//!   cargo run --release --example bare_pingora -- LISTEN_ADDR PEER_ADDR

use async_trait::async_trait;
use pingora_core::server::RunArgs;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare(HttpPeer);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
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
    let mut svc = pingora_proxy::http_proxy_service(&server.configuration, Bare(peer));
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run(RunArgs::default());
}
