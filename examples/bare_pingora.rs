//! A bare Pingora proxy (one fixed peer, no features) under blueshift's server settings: the
//! floor that benches/load.sh's blueshift numbers are compared with in BENCHMARKS.md.
//!
//!   cargo run --release --example bare_pingora -- LISTEN_ADDR PEER_ADDR

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

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
    let mut args = std::env::args().skip(1);
    let (listen, peer) = (
        args.next().expect("LISTEN_ADDR"),
        args.next().expect("PEER_ADDR"),
    );
    let conf = ServerConf {
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut p = HttpPeer::new(peer.as_str(), false, String::new());
    p.options.read_timeout = Some(std::time::Duration::from_secs(60));
    p.options.connection_timeout = Some(std::time::Duration::from_secs(2));
    let mut svc = pingora_proxy::http_proxy_service(&server.configuration, Bare(p));
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run(RunArgs::default());
}
