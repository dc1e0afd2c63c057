//! The admin API, behind Pingora's HTTP/1 server, on any bytes a client sends.
#![no_main]

use std::sync::{Arc, OnceLock};

use blueshift::ops::admin::Admin;
use libfuzzer_sys::fuzz_target;
use pingora_core::apps::http_app::HttpServer;

mod serve;

fn app() -> &'static Arc<HttpServer<Admin>> {
    static APP: OnceLock<Arc<HttpServer<Admin>>> = OnceLock::new();
    APP.get_or_init(|| {
        let (shared, handle) = serve::state();
        Arc::new(HttpServer::new_app(Admin::new(shared, handle, Default::default(), None)))
    })
}

fuzz_target!(|data: &[u8]| {
    serve::check_answer(&serve::exchange(app(), data));
});
