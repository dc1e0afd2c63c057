//! `X-Forwarded-For` and `X-Forwarded-Proto` on every request sent to a model, as nginx's
//! `$proxy_add_x_forwarded_for` and `$scheme` would set them.

use std::fmt::Write;
use std::net::IpAddr;

use pingora_core::Result;
use pingora_http::RequestHeader;

use http::header::HeaderValue;
use http::HeaderName;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Appends the client's address to any chain the request brought, and sets the scheme unless a
/// TLS terminator in front has already set it. One buffer, names and schemes built once.
pub fn add(req: &mut RequestHeader, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    if let Some(ip) = client {
        let mut value = String::with_capacity(48);
        for v in req.headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                value.push_str(v);
                value.push_str(", ");
            }
        }
        // Writing to a String cannot fail.
        let _ = write!(value, "{ip}");
        let value = HeaderValue::try_from(value).map_err(|e| {
            pingora_core::Error::because(
                pingora_core::ErrorType::InvalidHTTPHeader,
                "x-forwarded-for",
                e,
            )
        })?;
        req.insert_header(X_FORWARDED_FOR.clone(), value)?;
    }
    if !req.headers.contains_key(&X_FORWARDED_PROTO) {
        let proto = match scheme {
            "https" => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        };
        req.insert_header(X_FORWARDED_PROTO.clone(), proto)?;
    }
    Ok(())
}
