//! The process's log: `env_logger` (`RUST_LOG`, `info` by default), with one of Pingora's lines
//! put where it belongs.
//!
//! Load balancers (an AWS NLB's TCP health check) and Kubernetes' `tcpSocket` probes open a
//! connection to a TLS listener and close it before any TLS. Pingora logs each as an error
//! (`Downstream handshake error ... tls handshake eof`), which under a probe every few seconds
//! from every balancer node buries the errors that matter. blueshift logs that one case at debug
//! level, as Grafana and nginx do; every other handshake failure (a client speaking plain HTTP to
//! the TLS port, no shared protocol version, a bad certificate) stays an error.

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

/// `env_logger`, with connections closed before their TLS handshake logged at debug level.
struct Probes(env_logger::Logger);

impl Log for Probes {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        let probe = record.level() == Level::Error
            && record.target() == LISTENER
            && closed_before_tls(&record.args().to_string());
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

/// Whether Pingora's message is the one for a connection that closed before its TLS handshake
/// began: `Downstream handshake error from ADDR: ... tls handshake eof`.
fn closed_before_tls(message: &str) -> bool {
    message.starts_with("Downstream handshake error") && message.ends_with("tls handshake eof")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_closed_before_tls_is_a_probe() {
        assert!(closed_before_tls(
            "Downstream handshake error from 127.0.0.1:38398:  TLSHandshakeFailure context: \
             TLS accept() failed:  TLSHandshakeFailure context: tls connect error: tls handshake eof"
        ));
        // Real failures: plain HTTP on the TLS port, no common version, a reset mid-handshake.
        for real in [
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: TLS \
             accept() failed: received corrupt message of type InvalidContentType",
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: TLS \
             accept() failed: peer is incompatible: NoCipherSuitesInCommon",
            "Downstream handshake error from 10.0.0.7:4242:  TLSHandshakeFailure context: \
             Connection reset by peer (os error 104)",
            "tls handshake eof",
        ] {
            assert!(!closed_before_tls(real), "{real}");
        }
    }
}
