//! The request-head readers: framing rules, route matching, the affinity cookie, forwarding
//! headers, the override header and the session key, on any head httparse accepts (as Pingora's
//! does).
#![no_main]

use blueshift::route::split::{self, Inputs, Table};
use blueshift::{route::affinity, proxy::forwarded, proxy::framing, judge::grpc};
use blueshift::route::matcher::{self, Found};
use libfuzzer_sys::fuzz_target;
use pingora_http::RequestHeader;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(data) else {
        return;
    };
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return;
    };
    let Ok(mut req) = RequestHeader::build(method, path.as_bytes(), None) else {
        return;
    };
    for h in parsed.headers.iter() {
        let _ = req.append_header(h.name.to_string(), h.value);
    }
    let routes = routes();
    for model in [None, Some(None), Some(Some("llama"))] {
        if let Found::Route(i) = routes.find(&req, model) {
            assert!(i < 4);
        }
    }
    let _ = matcher::host(&req);
    let head = framing::check(&req).unwrap_or_default();
    framing::tidy(&mut req, head);
    let cookie = req
        .headers
        .get_all("cookie")
        .iter()
        .find_map(|v| affinity::find(v.as_bytes(), b"blueshift"));
    let value = |name: &str| req.headers.get(name).map(|v| v.as_bytes());
    let t = Table::new(
        vec!["blue".into(), "green".into()],
        vec![90, 10],
        vec![true, data.len() % 2 == 0],
        0,
    );
    let input = Inputs {
        override_color: value("x-blueshift-color"),
        cookie,
        session_key: value("x-session-id"),
    };
    if let Ok(d) = split::decide(&t, input, data.len() as u32) {
        assert!(d.color() < 2);
    }
    let _ = grpc::is_grpc(&req.headers);
    let _ = grpc::status(&req.headers);
    let mut req = req;
    forwarded::add(&mut req, Some([127, 0, 0, 1].into()), "http").unwrap();
});

/// Routes matched by path, host and header, and model.
fn routes() -> &'static matcher::Table {
    static T: std::sync::OnceLock<matcher::Table> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let text = "listen: 127.0.0.1:1\nroutes:\n\
            - {name: a, match: {path_prefix: /v1/a}, colors: {b: {backends: [{addr: 127.0.0.1:2}]}}}\n\
            - {name: b, match: {host: '*.example.com', headers: {x-t: t}}, colors: {b: {backends: [{addr: 127.0.0.1:2}]}}}\n\
            - {name: c, match: {path_prefix: /v1/chat, model: llama}, colors: {b: {backends: [{addr: 127.0.0.1:2}]}}}\n\
            - {name: d, match: {host: api.example.com}, colors: {b: {backends: [{addr: 127.0.0.1:2}]}}}\n";
        matcher::Table::new(&blueshift::config::parse(text).unwrap().routes)
    })
}
