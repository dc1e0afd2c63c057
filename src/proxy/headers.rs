//! Adding headers to what Pingora forwards, as plain `http::HeaderMap`s.
//!
//! Pingora keeps a second map with each header name's case, and its `insert_header` parses the
//! name again and copies custom ones into new buffers on every call, in both maps; they were
//! sized for the headers parsed, so the first inserts also grow both. For the four headers
//! blueshift adds to a request and its answer (`X-Forwarded-For`, `X-Forwarded-Proto`,
//! `x-blueshift-color`, `Set-Cookie`) that was a tenth of all the instructions a request costs
//! (`benches/instructions.sh`). Here the header is taken apart into its `http` parts, edited
//! with names parsed once, and put back: header names are then written as Pingora writes them
//! for HTTP/2 peers, the common ones title-cased and the rest in lower case (HAProxy writes them
//! all in lower case; names are case-insensitive, RFC 9110 section 5.1). What else the
//! conversion drops is kept: a request target that does not round-trip through the URI
//! (absolute-form, bytes that are not UTF-8), HTTP/2's end-of-stream choice, and an answer's
//! own reason phrase.

use http::HeaderMap;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

/// Runs `edit` on the request's headers; the request is whole again whatever `edit` returns.
pub fn edit_request<T>(
    req: &mut RequestHeader,
    edit: impl FnOnce(&mut HeaderMap) -> Result<T>,
) -> Result<T> {
    // The target as it goes on the wire, when the URI alone would not give it back.
    let (raw, from_uri) = (req.raw_path(), req.uri.path_and_query());
    let raw = (Some(raw) != from_uri.map(|p| p.as_str().as_bytes())).then(|| raw.to_vec());
    let end_stream = req.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, empty));
    let out = edit(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw {
        req.set_raw_path(&raw)?;
    }
    if let Some(end_stream) = end_stream {
        req.set_send_end_stream(end_stream);
    }
    out
}

/// Runs `edit` on the answer's headers; the answer is whole again whatever `edit` returns.
pub fn edit_response<T>(
    resp: &mut ResponseHeader,
    edit: impl FnOnce(&mut HeaderMap) -> Result<T>,
) -> Result<T> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(resp, empty));
    let out = edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
    if reason.is_some() {
        resp.set_reason_phrase(reason.as_deref())?;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    fn wire(req: &RequestHeader) -> String {
        let mut buf = Vec::new();
        req.header_to_h1_wire(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_request_keeps_its_headers_in_order_and_gets_the_new_ones() {
        let mut req = RequestHeader::build("POST", b"/predict?x=1", None).unwrap();
        req.append_header("Host", "m").unwrap();
        req.append_header("X-Api-Key", "k").unwrap();
        req.append_header("Accept", "a").unwrap();
        req.append_header("Accept", "b").unwrap();
        edit_request(&mut req, |h| {
            h.insert(
                HeaderName::from_static("x-new"),
                HeaderValue::from_static("v"),
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(
            wire(&req),
            "Host: m\r\nx-api-key: k\r\naccept: a\r\naccept: b\r\nx-new: v\r\n"
        );
        assert_eq!(req.raw_path(), b"/predict?x=1");
        assert_eq!(req.method, http::Method::POST);
    }

    #[test]
    fn targets_the_uri_cannot_give_back_are_kept() {
        for target in [
            &b"http://example.com/a?b"[..],
            b"/caf\xc3\xa9",
            b"/\xff",
            b"*",
        ] {
            let mut req = RequestHeader::build("OPTIONS", target, None).unwrap();
            edit_request(&mut req, |_| Ok(())).unwrap();
            assert_eq!(
                req.raw_path(),
                target,
                "{}",
                String::from_utf8_lossy(target)
            );
        }
    }

    #[test]
    fn an_http2_request_keeps_its_end_of_stream_choice() {
        let mut req = RequestHeader::build("POST", b"/", None).unwrap();
        req.set_version(http::Version::HTTP_2);
        req.set_send_end_stream(false);
        edit_request(&mut req, |_| Ok(())).unwrap();
        assert_eq!(req.send_end_stream(), Some(false));
    }

    #[test]
    fn an_answer_keeps_its_status_reason_and_headers() {
        let mut resp = ResponseHeader::build(299, None).unwrap();
        resp.set_reason_phrase(Some("Fine Anyway")).unwrap();
        resp.append_header("Content-Type", "application/json")
            .unwrap();
        edit_response(&mut resp, |h| {
            h.append(http::header::SET_COOKIE, HeaderValue::from_static("a=b"));
            Ok(())
        })
        .unwrap();
        assert_eq!(resp.status, 299);
        assert_eq!(resp.get_reason_phrase(), Some("Fine Anyway"));
        assert_eq!(resp.headers["content-type"], "application/json");
        assert_eq!(resp.headers["set-cookie"], "a=b");
        let mut ok = ResponseHeader::build(200, None).unwrap();
        edit_response(&mut ok, |_| Ok(())).unwrap();
        assert_eq!(ok.get_reason_phrase(), Some("OK"));
    }

    #[test]
    fn a_failed_edit_still_leaves_the_header_whole() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.append_header("Host", "m").unwrap();
        let failed: Result<()> = edit_request(&mut req, |_| {
            pingora_core::Error::e_explain(pingora_core::ErrorType::InternalError, "no")
        });
        assert!(failed.is_err());
        assert_eq!(req.headers["host"], "m");
        assert_eq!(req.raw_path(), b"/x");
    }
}
