//! TLS at the edge: the certificate a listener serves, consulted on every handshake and swapped
//! live when its files change.
//!
//! rustls (Pingora's `rustls` feature) does the TLS: TLS 1.2 and 1.3, ALPN, no system library to
//! install, and a certificate resolver consulted on every handshake, which is what lets a pair
//! be swapped without a restart.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::certs::{load_pair, CertInfo};
use crate::config::TlsFiles;

/// The certificate a TLS listener serves: consulted on every handshake, swapped atomically.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    info: Mutex<CertInfo>,
}

impl CertStore {
    /// Loads the pair; at start a pair that does not load is an error.
    pub fn new(files: TlsFiles) -> Result<Arc<CertStore>, String> {
        let pair = load_pair(&files)?;
        Ok(Arc::new(CertStore {
            current: ArcSwap::new(pair.key),
            info: Mutex::new(CertInfo {
                files,
                subject: pair.subject,
                not_after: pair.not_after,
                error: None,
            }),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CertInfo> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the files: a good pair serves new handshakes from now on; a broken one changes
    /// nothing but the error shown. `Ok(true)` when a different pair was loaded.
    pub fn reload(&self) -> Result<bool, String> {
        let files = self.lock().files.clone();
        match load_pair(&files) {
            Ok(pair) => {
                let changed = pair.key.cert != self.current.load().cert;
                self.current.store(pair.key);
                let mut info = self.lock();
                info.subject = pair.subject;
                info.not_after = pair.not_after;
                info.error = None;
                Ok(changed)
            }
            Err(e) => {
                self.lock().error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// What it serves, and the last load's error.
    pub fn info(&self) -> CertInfo {
        self.lock().clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::certs::self_signed;

    fn write(dir: &std::path::Path, pem: &(String, String)) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("live.crt"),
            key: dir.join("live.key"),
        };
        std::fs::write(&files.cert, &pem.0).unwrap();
        std::fs::write(&files.key, &pem.1).unwrap();
        files
    }

    fn pair(name: &str) -> (String, String) {
        let g = self_signed(&[name], 1).unwrap();
        (g.cert_pem, g.key_pem)
    }

    #[test]
    fn a_store_swaps_to_a_good_pair_and_keeps_the_old_one_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(dir.path(), &pair("one.test"));
        let store = CertStore::new(files.clone()).unwrap();
        let first = store.current.load_full();
        write(dir.path(), &pair("two.test"));
        assert_eq!(store.reload(), Ok(true));
        assert_eq!(store.info().subject, "CN=two.test");
        let second = store.current.load_full();
        assert_ne!(first.cert, second.cert);
        std::fs::write(&files.key, "garbage").unwrap();
        assert!(store.reload().is_err());
        let info = store.info();
        assert_eq!(info.subject, "CN=two.test", "the old pair keeps serving");
        assert!(info.error.unwrap().contains("holds no PEM private key"));
        assert_eq!(store.current.load_full().cert, second.cert);
    }
}
