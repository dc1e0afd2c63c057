//! The process's log: `env_logger` (`RUST_LOG`, `info` by default), with one of Pingora's lines
//! put where it belongs.
//!
//! Load balancers (an AWS NLB's TCP health check) and Kubernetes' `tcpSocket` probes open a
//! connection to a TLS listener and close it before any TLS. Pingora logs each as an error
//! (`Downstream handshake error ... tls handshake eof`), which under a probe every few seconds
//! from every balancer node buries the errors that matter. A client that resets its connection
//! mid-handshake (a probe closed with RST, a load generator stopping, a user gone) is the same:
//! the client left. blueshift logs those at debug level, as Grafana does and as nginx logs a
//! reset during its SSL handshake (`info`); every other handshake failure (a client speaking
//! plain HTTP to the TLS port, no shared protocol version, a bad certificate) stays an error.

use log::{Level, Log, Metadata, Record};

/// Installs the logger for the whole process.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Probes(inner))).is_ok() {
        log::set_max_level(max);
    }
}

/// `env_logger`, with clients that left before their TLS handshake finished logged at debug level.
struct Probes(env_logger::Logger);

impl Log for Probes {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        let probe = record.level() == Level::Error
            && record.target() == LISTENER
            && left_before_tls(&record.args().to_string());
        if !probe {
            return self.0.log(record);
        }
        let debug = Record::builder()
            .args(*record.args())
            .level(Level::Debug)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        if self.0.enabled(debug.metadata()) {
            self.0.log(&debug);
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// Where Pingora logs a failed handshake; only its errors are formatted and looked at (they are
/// rare).
const LISTENER: &str = "pingora_core::services::listening";

/// Whether Pingora's message is for a client that left before its TLS handshake finished: it
/// closed before the handshake began (`Downstream handshake error from ADDR: ... tls handshake
/// eof`), or reset the connection, or was gone when the server answered (ECONNRESET, EPIPE).
fn left_before_tls(message: &str) -> bool {
    message.starts_with("Downstream handshake error")
        && ["tls handshake eof", "(os error 104)", "(os error 32)"]
            .iter()
            .any(|end| message.ends_with(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_that_left_is_a_probe() {
        for left in [
            "Downstream handshake error from 127.0.0.1:38398:  TLSHandshakeFailure context: \
             TLS accept() failed:  TLSHandshakeFailure context: tls connect error: tls handshake eof",
            "Downstream handshake error from 127.0.0.1:38398:  TLSHandshakeFailure context: TLS \
             accept() failed:  TLSHandshakeFailure context: tls connect error: Connection reset by \
             peer (os error 104)",
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: \
             Broken pipe (os error 32)",
        ] {
            assert!(left_before_tls(left), "{left}");
        }
        // Real failures: plain HTTP on the TLS port, no common version, a refused certificate.
        for real in [
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: TLS \
             accept() failed: received corrupt message of type InvalidContentType",
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: TLS \
             accept() failed: peer is incompatible: NoCipherSuitesInCommon",
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: TLS \
             accept() failed: received fatal alert: UnknownCA",
            "tls handshake eof",
            "Connection reset by peer (os error 104)",
        ] {
            assert!(!left_before_tls(real), "{real}");
        }
    }
}
