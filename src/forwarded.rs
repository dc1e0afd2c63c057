//! `X-Forwarded-For` and `X-Forwarded-Proto` on every request sent to a model, as nginx's
//! `$proxy_add_x_forwarded_for` and `$scheme` would set them.

use std::fmt::Write;
use std::net::IpAddr;

use pingora_core::Result;
use pingora_http::RequestHeader;

use http::header::{HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Appends the client's address to any chain the request brought, and sets the scheme unless a
/// TLS terminator in front has already set it. One buffer; names parsed once, and the headers
/// edited as a plain map ([`crate::headers`]).
pub fn add(req: &mut RequestHeader, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    crate::headers::edit_request(req, |headers| set(headers, client, scheme))
}

fn set(headers: &mut HeaderMap, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    headers.reserve(2);
    if let Some(ip) = client {
        let mut value = String::with_capacity(48);
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                value.push_str(v);
                value.push_str(", ");
            }
        }
        push_ip(&mut value, ip);
        let value = HeaderValue::try_from(value).map_err(|e| {
            pingora_core::Error::because(
                pingora_core::ErrorType::InvalidHTTPHeader,
                "x-forwarded-for",
                e,
            )
        })?;
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        let proto = match scheme {
            "https" => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        };
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    Ok(())
}

/// Writes `ip` as `Display` would; IPv4 digit by digit, which skips the formatting machinery
/// that costs more than the rest of this header.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        // Writing to a String cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
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
                let mut s = String::new();
                push_ip(&mut s, ip);
                assert_eq!(s, ip.to_string());
            }
        }
        let mut s = String::new();
        push_ip(&mut s, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(s, "::1");
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
