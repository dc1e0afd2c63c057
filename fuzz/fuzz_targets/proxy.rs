//! The proxy's request path (framing rules, affinity, override, split), behind Pingora's
//! HTTP/1 server, on any bytes a client sends. No backend is healthy, so nothing is forwarded.
#![no_main]

use std::sync::{Arc, OnceLock};

use blueshift::proxy::Blueshift;
use libfuzzer_sys::fuzz_target;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;

mod serve;

fn app() -> &'static Arc<HttpProxy<Blueshift>> {
    static APP: OnceLock<Arc<HttpProxy<Blueshift>>> = OnceLock::new();
    APP.get_or_init(|| {
        let (shared, _) = serve::state();
        let conf = Arc::new(ServerConf::default());
        Arc::new(pingora_proxy::http_proxy(&conf, Blueshift::new(shared)))
    })
}

fuzz_target!(|data: &[u8]| {
    serve::check_answer(&serve::exchange(app(), data));
});
