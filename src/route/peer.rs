//! How blueshift reaches a color's backends: a Pingora peer per backend that speaks the color's
//! protocol (HTTP/1.1 or HTTP/2, in cleartext or over TLS with the color's server name and CA),
//! used alike by the proxy, the mirrors and the health checks.

use std::sync::Arc;
use std::time::Duration;

use pingora_core::protocols::tls::CaType;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{parse_x509, WrappedX509};

use crate::config::{BackendSpec, Color, Timeouts};

/// How long an idle upstream connection stays in Pingora's pool: until the backend closes it
/// (the pool watches each one; model servers close idle connections after seconds, uvicorn 5 s,
/// gunicorn 2 s) or `app::server::UPSTREAM_POOL` newer ones push it out, not on a timer of
/// ours. A timer costs a registration on every release: 2% of a tiny request's instructions
/// (`benches/instructions.sh`, BENCHMARKS.md).
pub const IDLE: Option<Duration> = None;

/// Concurrent streams on one HTTP/2 connection to a backend before another is opened.
const H2_STREAMS: usize = 128;

/// Whether `e` failed for want of this host's own resources (file descriptors, memory, local
/// ports) rather than because of the backend: such failures are not held against a model, by
/// the health checks or by the rollback judge.
pub fn local_exhaustion(e: &pingora_core::Error) -> bool {
    // Linux's EMFILE, ENFILE, ENOMEM, EADDRNOTAVAIL (no ephemeral port left) and ENOBUFS.
    const LOCAL: [i32; 5] = [24, 23, 12, 99, 105];
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|code| LOCAL.contains(&code))
}

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
    o.idle_timeout = IDLE;
    if color.protocol.h2() {
        // HTTP/2 only: over TLS by ALPN, in cleartext with prior knowledge (h2c).
        o.set_http_version(2, 2);
        o.max_h2_streams = H2_STREAMS;
    }
    o.ca = ca.cloned();
    peer
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::{Error, ErrorType};

    #[test]
    fn only_this_hosts_own_shortages_are_local() {
        let because = |code| {
            let io = std::io::Error::from_raw_os_error(code);
            Error::because(ErrorType::ConnectError, "connecting", io)
        };
        assert!(local_exhaustion(&because(24)), "EMFILE");
        assert!(local_exhaustion(&because(99)), "EADDRNOTAVAIL");
        assert!(
            !local_exhaustion(&because(111)),
            "ECONNREFUSED is the backend's"
        );
        assert!(!local_exhaustion(&Error::new(ErrorType::ConnectTimedout)));
    }
}
