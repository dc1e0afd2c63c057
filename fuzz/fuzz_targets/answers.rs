//! The quality gates' answer extraction: any answer body, in any encoding the tap reads, cut
//! into any chunks, is valid, invalid or skipped, and a stream reads the same however it is cut.
#![no_main]

use std::sync::OnceLock;

use blueshift::config::{self, Pointer, Quality};
use blueshift::judge::answer::{self, Sse, Tap};
use libfuzzer_sys::fuzz_target;
use pingora_http::ResponseHeader;

fn quality() -> &'static Quality {
    static Q: OnceLock<Quality> = OnceLock::new();
    Q.get_or_init(|| {
        let text = "listen: 127.0.0.1:1\nadmin: 127.0.0.1:2\ncolors:\n  blue:\n    backends: [{addr: 127.0.0.1:3}]\nquality:\n  prediction: /predictions/*/label\n  score: /predictions/*/score\n  max_body: 4KiB\n";
        config::parse(text).unwrap().routes.remove(0).quality.unwrap()
    })
}

const ENCODINGS: &[&str] = &["", "gzip", "deflate", "br", "zstd"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let q = quality();
    // A pointer from the first line, a body from the rest.
    if let Some(line) = rest.split(|b| *b == b'\n').next() {
        let _ = Pointer::parse(&String::from_utf8_lossy(line));
    }
    let _ = answer::json(rest, q);
    let routing = blueshift::config::Routing {
        model_field: Pointer::parse("/model").unwrap(),
        max_body: 1 << 20,
    };
    let _ = blueshift::proxy::body::model_of(rest, &routing);

    let mut resp = ResponseHeader::build(200, None).unwrap();
    let encoding = ENCODINGS[usize::from(mode) % ENCODINGS.len()];
    if !encoding.is_empty() {
        resp.insert_header("content-encoding", encoding).unwrap();
    }
    let stream = mode & 0x80 != 0;
    let kind = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    resp.insert_header("content-type", kind).unwrap();
    let mut tap = Tap::for_response(&resp, false, q).unwrap();
    let step = usize::from(mode >> 3 & 0x0f) + 1;
    for chunk in rest.chunks(step) {
        tap.feed(chunk, q);
    }
    let _ = tap.finish(q);

    if stream {
        let mut whole = Sse::default();
        whole.feed(rest, q);
        let mut cut = Sse::default();
        for chunk in rest.chunks(step) {
            cut.feed(chunk, q);
        }
        assert_eq!(whole.finish(q), cut.finish(q));
    }
});
