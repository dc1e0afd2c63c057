//! The request-head readers: framing rules, the affinity cookie, forwarding headers, the
//! override header and the session key, on any head httparse accepts (as Pingora's does).
#![no_main]

use blueshift::route::split::{self, Inputs, Table};
use blueshift::{route::affinity, proxy::forwarded, proxy::framing, judge::grpc};
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
