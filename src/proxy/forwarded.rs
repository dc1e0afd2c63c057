//! `X-Forwarded-For` and `X-Forwarded-Proto` on every request sent to a model, as nginx's
//! `$proxy_add_x_forwarded_for` and `$scheme` would set them.

use std::io::Write;
use std::net::IpAddr;

use pingora_core::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use bytes::Bytes;
use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Appends the client's address to any chain the request brought, and sets the scheme unless a
/// TLS terminator in front has already set it. One buffer; names parsed once, and the headers
/// edited as a plain map ([`crate::proxy::headers`]).
pub fn add(req: &mut RequestHeader, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    crate::proxy::headers::edit_request(req, |headers| set(headers, client, scheme))
}

/// The client's address and the scheme it used, as `add` takes them.
pub fn who_asked(session: &Session) -> (Option<IpAddr>, &'static str) {
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    (client, if tls { "https" } else { "http" })
}

fn set(headers: &mut HeaderMap, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    headers.reserve(2);
    if let Some(ip) = client {
        let mut addr = [0u8; 64];
        let addr = push_ip(&mut addr, ip);
        // One lookup for both the chain the request brought and the new value; the value is
        // built at its exact size, so it becomes the header's bytes without another allocation.
        let invalid = |e| {
            pingora_core::Error::because(
                pingora_core::ErrorType::InvalidHTTPHeader,
                "x-forwarded-for",
                e,
            )
        };
        match headers.entry(&X_FORWARDED_FOR) {
            Entry::Vacant(e) => {
                e.insert(HeaderValue::from_bytes(addr).map_err(invalid)?);
            }
            Entry::Occupied(mut e) => {
                let chain = || e.iter().filter(|v| v.to_str().is_ok());
                let len = chain().map(|v| v.len() + 2).sum::<usize>() + addr.len();
                let mut value = Vec::with_capacity(len);
                for v in chain() {
                    value.extend_from_slice(v.as_bytes());
                    value.extend_from_slice(b", ");
                }
                value.extend_from_slice(addr);
                e.insert(HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(invalid)?);
            }
        }
    }
    if let Entry::Vacant(e) = headers.entry(&X_FORWARDED_PROTO) {
        e.insert(match scheme {
            "https" => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        });
    }
    Ok(())
}

/// Writes `ip` into `buf` as `Display` would and returns what it wrote; IPv4 digit by digit,
/// which skips the formatting machinery that costs more than the rest of this header.
fn push_ip(buf: &mut [u8; 64], ip: IpAddr) -> &[u8] {
    let mut n = 0;
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
        }
        IpAddr::V6(v6) => {
            // An IPv6 address is at most 45 bytes written out, so this write cannot fail.
            let mut rest = &mut buf[..];
            let _ = write!(rest, "{v6}");
            n = 64 - rest.len();
        }
    }
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_is_written_as_display_writes_it() {
        let samples = [0u8, 1, 9, 10, 42, 99, 100, 101, 199, 200, 250, 255];
        for a in samples {
            for b in samples {
                let ip = IpAddr::V4(Ipv4Addr::new(a, b, 255 - a, b / 2));
                let mut buf = [0u8; 64];
                assert_eq!(push_ip(&mut buf, ip), ip.to_string().as_bytes());
            }
        }
        let mut buf = [0u8; 64];
        assert_eq!(push_ip(&mut buf, IpAddr::V6(Ipv6Addr::LOCALHOST)), b"::1");
        let longest: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(
            push_ip(&mut buf, IpAddr::V6(longest)),
            longest.to_string().as_bytes()
        );
    }

    #[test]
    fn the_chain_grows_and_the_scheme_is_kept() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Forwarded-For", "10.0.0.1").unwrap();
        req.append_header("x-forwarded-for", "10.0.0.2").unwrap();
        req.append_header("X-Forwarded-Proto", "https").unwrap();
        add(
            &mut req,
            Some(IpAddr::V4(Ipv4Addr::new(192, 168, 7, 30))),
            "http",
        )
        .unwrap();
        let xff: Vec<_> = req.headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, ["10.0.0.1, 10.0.0.2, 192.168.7.30"]);
        assert_eq!(req.headers[&X_FORWARDED_PROTO], "https");
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert_eq!(wire.matches("x-forwarded-for").count(), 1, "{wire}");
    }

    #[test]
    fn a_request_without_either_gets_both() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("Host", "m").unwrap();
        add(&mut req, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), "https").unwrap();
        assert_eq!(req.headers[&X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(req.headers[&X_FORWARDED_PROTO], "https");
    }
}
