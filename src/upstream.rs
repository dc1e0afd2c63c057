//! How blueshift reaches a color's backends: a Pingora peer per backend that speaks the color's
//! protocol (HTTP/1.1 or HTTP/2, in cleartext or over TLS with the color's server name and CA),
//! used alike by the proxy, the mirrors and the health checks.

use std::sync::Arc;
use std::time::Duration;

use pingora_core::protocols::tls::CaType;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{parse_x509, WrappedX509};

use crate::policy::{BackendSpec, Color, Timeouts};

/// Keep-alive of idle upstream connections in Pingora's pool.
pub const IDLE: Duration = Duration::from_secs(60);

/// Concurrent streams on one HTTP/2 connection to a backend before another is opened.
const H2_STREAMS: usize = 128;

/// A color's private CA as Pingora takes it, built once per snapshot and shared by its peers.
pub fn ca(color: &Color) -> Option<Arc<CaType>> {
    let certs = color.tls.ca.as_ref()?;
    // Each was parsed when the policy loaded, so parse_x509 (which panics on bad DER) cannot.
    let wrapped: Vec<WrappedX509> = certs
        .iter()
        .map(|der| WrappedX509::new(der.clone(), parse_x509))
        .collect();
    Some(Arc::from(wrapped))
}

/// A peer for one backend of `color`, with the policy's timeouts.
pub fn peer(b: &BackendSpec, color: &Color, ca: Option<&Arc<CaType>>, t: &Timeouts) -> HttpPeer {
    let sni = color.tls.sni.clone().unwrap_or_else(|| b.host.clone());
    let mut peer = HttpPeer::new(b.addr, color.protocol.tls(), sni);
    let o = &mut peer.options;
    o.connection_timeout = Some(t.connect);
    o.total_connection_timeout = Some(t.connect);
    o.read_timeout = Some(t.read);
    o.write_timeout = Some(t.read);
    o.idle_timeout = Some(IDLE);
    if color.protocol.h2() {
        // HTTP/2 only: over TLS by ALPN, in cleartext with prior knowledge (h2c).
        o.set_http_version(2, 2);
        o.max_h2_streams = H2_STREAMS;
    }
    o.ca = ca.cloned();
    peer
}
