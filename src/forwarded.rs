//! `X-Forwarded-For` and `X-Forwarded-Proto` on every request sent to a model, as nginx's
//! `$proxy_add_x_forwarded_for` and `$scheme` would set them.

use std::net::IpAddr;

use pingora_core::Result;
use pingora_http::RequestHeader;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Appends the client's address to any chain the request brought, and sets the scheme unless a
/// TLS terminator in front has already set it.
pub fn add(req: &mut RequestHeader, client: Option<IpAddr>, scheme: &'static str) -> Result<()> {
    if let Some(ip) = client {
        let chain = req
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let value = match chain.is_empty() {
            true => ip.to_string(),
            false => format!("{chain}, {ip}"),
        };
        req.insert_header(X_FORWARDED_FOR, value)?;
    }
    if !req.headers.contains_key(X_FORWARDED_PROTO) {
        req.insert_header(X_FORWARDED_PROTO, scheme)?;
    }
    Ok(())
}
