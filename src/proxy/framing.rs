//! What a request head must look like before blueshift forwards it, beyond what Pingora's parser
//! already enforces, and the size limit on heads.
//!
//! Pingora 0.9 refuses with 400 a Transfer-Encoding whose last coding is not `chunked`, any
//! Transfer-Encoding in an HTTP/1.0 request, Content-Length values that differ or are not
//! numbers, and an ambiguous authority (two Host headers); a request with both Content-Length
//! and Transfer-Encoding it forwards as RFC 9112 section 6.3 allows (the length removed, the
//! body read as chunked) and closes the connection after it. What it lets through is refused
//! here: an HTTP/1.1 request without Host (RFC 9112 section 3.2); more than one Content-Length,
//! even agreeing, or a list of them (Pingora would forward the duplicates); chunked applied twice
//! (section 6.1) with 400; and other transfer codings, which blueshift does not implement, with
//! 501 (section 6.1). Two more are refused because servers disagree on them, which is how
//! requests get smuggled: a body on GET or HEAD (RFC 9110 section 9.3.1 gives it no meaning, so
//! an origin may skip it and read it as the next request; `Content-Length: 0` passes, and is
//! not forwarded), and a
//! header whose name spells Content-Length or Transfer-Encoding with other separators
//! (`Transfer_Encoding`, `content--length`), which some servers fold into the real one. HTTP/2
//! requests are framed by their frames, so only the size limit applies.
//!
//! Pingora percent-encodes control bytes and spaces in a request target rather than refusing
//! them (`/a\0b` reaches the origin as `/a%00b`, and a bare line feed gets 400), so what is
//! forwarded is unambiguous; `tests/desync.rs` holds blueshift to that against AWS's
//! `http_desync_guardian` corpus.

use http::header::{CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::Version;
use pingora_http::RequestHeader;

/// Largest request head passed upstream, like HAProxy's and nginx's few-KiB buffers but roomier
/// for the long tokens ML clients send; Pingora alone would accept 1 MiB.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Why a request is refused: its status and a line for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400 or 431.
    pub status: u16,
    /// What is wrong, and where the rule comes from.
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> Refusal {
    Refusal {
        status: 400,
        reason,
    }
}

/// What a request head that passed asks of blueshift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// `Expect: 100-continue` (HTTP/1.1 and later; HTTP/1.0 has no such thing, RFC 9110 section
    /// 10.1.1): the client waits for a `100 Continue` before it sends the body. blueshift sends
    /// it itself and does not pass the expectation on, as nginx and Envoy do, so a model server
    /// that never answers one (many do not) costs no client the second curl waits by default.
    pub expects_continue: bool,
    /// A `Content-Length` (of 0, or [`check`] refuses it) on GET or HEAD, not to be forwarded.
    pub empty_length: bool,
}

/// Checks a request head.
pub fn check(req: &RequestHeader) -> Result<Head, Refusal> {
    let seen = Seen::scan(req);
    if seen.size + req.uri.path().len() > MAX_REQUEST_HEAD {
        return Err(Refusal {
            status: 431,
            reason: "request headers are larger than 64 KiB",
        });
    }
    match req.version {
        Version::HTTP_11 => {
            host(&seen)?;
            body_length(req, &seen)?;
        }
        Version::HTTP_10 | Version::HTTP_09 => body_length(req, &seen)?,
        _ => {}
    }
    Ok(Head {
        expects_continue: seen.expect_continue && req.version >= Version::HTTP_11,
        empty_length: seen.lengths > 0
            && matches!(req.method, http::Method::GET | http::Method::HEAD),
    })
}

/// What one pass over a head's headers found, for the rules below (a pass instead of a lookup
/// per rule: the checks cost a request ~1,400 instructions that way, half of them lookups).
#[derive(Default)]
struct Seen<'a> {
    /// The head's size, names and values with their separators.
    size: usize,
    hosts: usize,
    /// The first Host.
    host: Option<&'a [u8]>,
    lengths: usize,
    /// A Content-Length that is a list.
    length_list: bool,
    /// A Content-Length other than 0.
    length_not_zero: bool,
    transfer_encoding: bool,
    /// The framing header the first lookalike name imitates.
    lookalike: Option<&'static str>,
    /// `Expect: 100-continue`.
    expect_continue: bool,
}

impl<'a> Seen<'a> {
    fn scan(req: &'a RequestHeader) -> Self {
        let mut s = Seen::default();
        for (name, value) in req.headers.iter() {
            s.size += name.as_str().len() + value.len() + 4;
            let v = value.as_bytes();
            if name == HOST {
                s.hosts += 1;
                s.host.get_or_insert(v);
            } else if name == CONTENT_LENGTH {
                s.lengths += 1;
                s.length_list |= v.contains(&b',');
                s.length_not_zero |= v.trim_ascii() != b"0";
            } else if name == TRANSFER_ENCODING {
                s.transfer_encoding = true;
            } else if name == EXPECT {
                s.expect_continue |= v.eq_ignore_ascii_case(b"100-continue");
            } else if s.lookalike.is_none() {
                s.lookalike = lookalike(name.as_str());
            }
        }
        s
    }
}

/// What `check` lets through but need not go on: `Content-Length: 0` on GET and HEAD, which
/// carries nothing and which some servers take as a sign of a body to come, and an
/// `Expect: 100-continue` blueshift has answered (`head`). Each is removed only where `check`
/// saw it: a removal costs ~250 instructions even when the header is absent.
pub fn tidy(req: &mut RequestHeader, head: Head) {
    if head.empty_length {
        req.remove_header(&CONTENT_LENGTH);
    }
    if head.expects_continue {
        req.remove_header(&EXPECT);
    }
}

/// The framing header a name imitates: one that reads as Content-Length or Transfer-Encoding,
/// or as the start of one, once separators are ignored (`transfer_encoding`, `content--length`,
/// `content length`, `content-lengt-`), and is at least as long. The rule is that of AWS's
/// `http_desync_guardian`, so nothing it would call suspicious is forwarded.
fn lookalike(name: &str) -> Option<&'static str> {
    [
        ("content-length", "Content-Length"),
        ("transfer-encoding", "Transfer-Encoding"),
    ]
    .into_iter()
    .find(|(real, _)| imitates(name.as_bytes(), real.as_bytes()))
    .map(|(_, shown)| shown)
}

/// Walks `real` over `name`: letters must match in order, the hyphen takes any one byte and the
/// separators after it; at the first difference, `name` must hold no more letters or digits.
fn imitates(name: &[u8], real: &[u8]) -> bool {
    if name.len() < real.len() || name.eq_ignore_ascii_case(real) {
        return false;
    }
    let next_alnum = |from: usize| {
        from + name[from..]
            .iter()
            .position(u8::is_ascii_alphanumeric)
            .unwrap_or(name.len() - from)
    };
    let mut i = next_alnum(0);
    for &c in real {
        if i == name.len() {
            return false;
        }
        if c == b'-' {
            i = next_alnum(i + 1);
        } else if name[i].eq_ignore_ascii_case(&c) {
            i += 1;
        } else {
            break;
        }
    }
    next_alnum(i) == name.len()
}

/// RFC 9112 §3.2: exactly one Host, with a valid value.
fn host(seen: &Seen) -> Result<(), Refusal> {
    let Some(host) = seen.host else {
        return Err(bad(
            "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)",
        ));
    };
    if seen.hosts > 1 {
        return Err(bad("more than one Host header (RFC 9112 section 3.2)"));
    }
    let valid = host
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+;=%".contains(b));
    match valid {
        true => Ok(()),
        false => Err(bad(
            "the Host header is not a valid host (RFC 9112 section 3.2)",
        )),
    }
}

/// One Content-Length, chunked once as the only transfer coding, no body on GET or HEAD, and no
/// lookalikes of either header.
fn body_length(req: &RequestHeader, seen: &Seen) -> Result<(), Refusal> {
    match seen.lookalike {
        Some("Content-Length") => {
            return Err(bad(
                "a header name that spells Content-Length with other separators is refused",
            ))
        }
        Some(_) => {
            return Err(bad(
                "a header name that spells Transfer-Encoding with other separators is refused",
            ))
        }
        None => {}
    }
    if matches!(req.method, http::Method::GET | http::Method::HEAD)
        && (seen.length_not_zero || seen.transfer_encoding)
    {
        return Err(bad(
            "a GET or HEAD request with a body is refused (RFC 9110 section 9.3.1)",
        ));
    }
    if seen.lengths > 1 || seen.length_list {
        return Err(bad("more than one Content-Length (RFC 9110 section 8.6)"));
    }
    if !seen.transfer_encoding {
        return Ok(());
    }
    let mut codings = req
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|c| c.trim_ascii());
    let Some(first) = codings.next() else {
        return Ok(());
    };
    let rest: Vec<&[u8]> = codings.collect();
    match (first, rest.as_slice()) {
        (c, []) if c.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ if rest
            .iter()
            .chain([&first])
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count()
            > 1 =>
        {
            Err(bad("chunked applied more than once (RFC 9112 section 6.1)"))
        }
        (_, [.., last]) if last.eq_ignore_ascii_case(b"chunked") => Err(Refusal {
            status: 501,
            reason:
                "transfer codings other than chunked are not implemented (RFC 9112 section 6.1)",
        }),
        // Pingora refuses a last coding other than chunked before this runs.
        _ => Err(bad(
            "chunked is not the last transfer coding (RFC 9112 section 6.1)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/predict", None).unwrap();
        r.set_version(version);
        for (k, v) in headers {
            r.append_header(k.to_string(), v.to_string()).unwrap();
        }
        r
    }

    fn reason(version: Version, headers: &[(&str, &str)]) -> Option<&'static str> {
        check(&req(version, headers)).err().map(|r| r.reason)
    }

    const H11: Version = Version::HTTP_11;

    #[test]
    fn well_framed_requests_pass() {
        assert_eq!(reason(H11, &[("host", "api.example.com")]), None);
        assert_eq!(reason(H11, &[("host", "127.0.0.1:8080")]), None);
        assert_eq!(reason(H11, &[("host", "[::1]:80")]), None);
        assert_eq!(
            reason(Version::HTTP_10, &[]),
            None,
            "HTTP/1.0 may omit Host"
        );
        assert_eq!(
            reason(Version::HTTP_2, &[]),
            None,
            "HTTP/2 is framed by its frames"
        );
    }

    #[test]
    fn host_is_required_once_and_valid() {
        assert!(reason(H11, &[]).unwrap().contains("needs a Host"));
        assert!(reason(H11, &[("host", "a"), ("host", "b")])
            .unwrap()
            .contains("more than one Host"));
        assert!(reason(H11, &[("host", "a b")])
            .unwrap()
            .contains("not a valid host"));
        assert!(reason(H11, &[("host", "a/b")])
            .unwrap()
            .contains("not a valid host"));
    }

    #[test]
    fn lengths_and_codings_beyond_pingoras_checks() {
        let h = ("host", "x");
        let status = |headers: &[(&str, &str)]| check(&req(H11, headers)).err().map(|r| r.status);
        assert_eq!(status(&[h, ("content-length", "5")]), None);
        assert_eq!(
            status(&[h, ("content-length", "5"), ("content-length", "5")]),
            Some(400)
        );
        assert_eq!(status(&[h, ("content-length", "5, 5")]), Some(400));
        assert_eq!(status(&[h, ("transfer-encoding", "chunked")]), None);
        assert_eq!(status(&[h, ("transfer-encoding", "Chunked")]), None);
        assert_eq!(
            status(&[h, ("transfer-encoding", "chunked, chunked")]),
            Some(400)
        );
        assert_eq!(
            status(&[
                h,
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            Some(400)
        );
        assert_eq!(
            status(&[h, ("transfer-encoding", "gzip, chunked")]),
            Some(501)
        );
        assert_eq!(
            status(&[
                h,
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ]),
            Some(501)
        );
        assert_eq!(
            status(&[h, ("transfer-encoding", "chunked, gzip")]),
            Some(400)
        );
        assert_eq!(status(&[h, ("transfer-encoding", ", chunked")]), Some(501));
    }

    #[test]
    fn bodies_on_get_and_lookalike_framing_headers_are_refused() {
        let get = |headers: &[(&str, &str)]| {
            let mut r = req(H11, headers);
            r.set_method(http::Method::GET);
            check(&r).err().map(|r| r.reason)
        };
        let h = ("host", "x");
        assert_eq!(get(&[h]), None);
        assert_eq!(get(&[h, ("content-length", "0")]), None);
        assert!(get(&[h, ("content-length", "5")]).unwrap().contains("GET"));
        assert!(get(&[h, ("transfer-encoding", "chunked")])
            .unwrap()
            .contains("GET"));
        for name in [
            "transfer_encoding",
            "transfer---encoding",
            "-transfer-encoding",
        ] {
            let r = reason(H11, &[h, (name, "chunked")]);
            assert!(r.unwrap().contains("Transfer-Encoding"), "{name}");
        }
        let r = reason(H11, &[h, ("content_length", "5")]);
        assert!(r.unwrap().contains("Content-Length"));
        assert_eq!(reason(H11, &[h, ("x-content-length-hint", "5")]), None);
        assert_eq!(reason(H11, &[h, ("content-type-hint", "5")]), None);
        assert_eq!(reason(H11, &[h, ("content-lengths", "5")]), None);
        assert_eq!(reason(H11, &[h, ("content-length", "5")]), None);
        assert_eq!(reason(H11, &[h, ("x_api_key", "k")]), None);
    }

    #[test]
    fn an_empty_length_on_get_is_not_forwarded() {
        let mut r = req(H11, &[("host", "x"), ("content-length", "0")]);
        let head = check(&r).unwrap();
        assert!(!head.empty_length);
        tidy(&mut r, head);
        assert!(
            r.headers.contains_key(CONTENT_LENGTH),
            "POST keeps its length"
        );
        r.set_method(http::Method::GET);
        let head = check(&r).unwrap();
        assert!(head.empty_length);
        tidy(&mut r, head);
        assert!(!r.headers.contains_key(CONTENT_LENGTH));
        let mut get = req(H11, &[("host", "x")]);
        get.set_method(http::Method::GET);
        assert!(!check(&get).unwrap().empty_length, "nothing to remove");
    }

    #[test]
    fn a_100_continue_expectation_is_answered_here_and_not_passed_on() {
        let expects = |version, value: &str| {
            let headers = [("host", "x"), ("content-length", "5"), ("expect", value)];
            check(&req(version, &headers)).map(|h| h.expects_continue)
        };
        assert_eq!(expects(H11, "100-continue"), Ok(true));
        assert_eq!(expects(H11, "100-Continue"), Ok(true));
        assert_eq!(expects(H11, "something-else"), Ok(false));
        // HTTP/1.0 has no 100 Continue: the expectation is ignored (RFC 9110 section 10.1.1).
        assert_eq!(expects(Version::HTTP_10, "100-continue"), Ok(false));
        let mut r = req(H11, &[("host", "x"), ("expect", "100-continue")]);
        let head = check(&r).unwrap();
        tidy(&mut r, head);
        assert!(!r.headers.contains_key(EXPECT));
    }

    #[test]
    fn large_heads_get_431() {
        let big = "a".repeat(MAX_REQUEST_HEAD);
        let r = check(&req(H11, &[("host", "x"), ("x-big", &big)]));
        assert_eq!(r.map_err(|r| r.status), Err(431));
    }
}
