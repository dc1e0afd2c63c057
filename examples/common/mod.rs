//! What the floor examples share, so that they differ only in how they drive Pingora: the
//! arguments, blueshift's server settings and the upstream peer with blueshift's timeouts.

use std::time::Duration;

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;

/// `LISTEN_ADDR PEER_ADDR` from the command line, and a bootstrapped server with blueshift's
/// settings (one thread, no work stealing, a 1 s grace period after SIGTERM).
pub fn setup() -> (Server, String, HttpPeer) {
    let mut args = std::env::args().skip(1);
    let (listen, peer) = (
        args.next().expect("LISTEN_ADDR"),
        args.next().expect("PEER_ADDR"),
    );
    // blueshift's shutdown too: Pingora keeps accepting for 5 minutes after SIGTERM by default,
    // which held every bench script's cleanup that long.
    let conf = ServerConf {
        work_stealing: false,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut peer = HttpPeer::new(peer.as_str(), false, String::new());
    peer.options.read_timeout = Some(Duration::from_secs(60));
    peer.options.connection_timeout = Some(Duration::from_secs(2));
    (server, listen, peer)
}
