//! The certificate files a policy names: a listener's pair, loaded and checked (it must load when
//! the policy does, and again each time its files change); the private CAs colors trust upstream;
//! and self-signed certificates for the demo and the tests.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// A loaded, checked certificate pair.
#[derive(Debug, Clone)]
pub struct Pair {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf's subject, e.g. `CN=api.example.com`.
    pub subject: String,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string().to_lowercase(),
        };
        format!("cannot read {}: {why}", path.display())
    })
}

/// Reads the PEM certificates of a file, each checked to be an X.509 certificate.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    for (i, c) in certs.iter().enumerate() {
        if x509_parser::parse_x509_certificate(c).is_err() {
            return Err(format!(
                "certificate {} of {} does not parse as X.509",
                i + 1,
                path.display()
            ));
        }
    }
    Ok(certs)
}

/// Which file of a pair is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faulty {
    /// The certificate file (unreadable, not PEM, not X.509).
    Cert,
    /// The key file (unreadable, no key, a key that does not match the certificate).
    Key,
}

/// Reads a certificate chain (leaf first) and its private key, and checks that they match.
pub fn load_pair(files: &TlsFiles) -> Result<Pair, String> {
    load_pair_at(files).map_err(|(_, e)| e)
}

/// As [`load_pair`], saying which file is at fault.
pub fn load_pair_at(files: &TlsFiles) -> Result<Pair, (Faulty, String)> {
    let certs = certificates(&files.cert).map_err(|e| (Faulty::Cert, e))?;
    let key_pem = read(&files.key).map_err(|e| (Faulty::Key, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        let e = format!("{} holds no PEM private key", files.key.display());
        (Faulty::Key, e)
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        let e = format!(
            "the key in {} is not an RSA, ECDSA or Ed25519 key rustls can use",
            files.key.display()
        );
        (Faulty::Key, e)
    })?;
    let (subject, not_after) = {
        let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).map_err(|_| {
            let e = format!("{} does not parse as X.509", files.cert.display());
            (Faulty::Cert, e)
        })?;
        let secs = leaf.validity().not_after.timestamp().max(0) as u64;
        (
            leaf.subject().to_string(),
            UNIX_EPOCH + Duration::from_secs(secs),
        )
    };
    let key = CertifiedKey::new(certs, signer);
    key.keys_match().map_err(|_| {
        let e = format!(
            "the key in {} does not match the certificate in {}",
            files.key.display(),
            files.cert.display()
        );
        (Faulty::Key, e)
    })?;
    Ok(Pair {
        key: Arc::new(key),
        subject,
        not_after,
    })
}

/// Reads a bundle of CA certificates (PEM) as DER, each checked to parse.
pub fn load_ca(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    Ok(certificates(path)?
        .into_iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// What `/status.tls` shows of a listener's certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// The files.
    pub files: TlsFiles,
    /// Subject of the pair being served.
    pub subject: String,
    /// When it expires.
    pub not_after: SystemTime,
    /// Why the last load failed, while the old pair keeps serving.
    pub error: Option<String>,
}

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

/// A self-signed certificate for `names` (DNS names or IP addresses), valid for `days` from now.
pub fn self_signed(names: &[&str], days: u64) -> Result<Generated, String> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params =
        rcgen::CertificateParams::new(names.clone()).map_err(|e| format!("bad name: {e}"))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(days * 86_400)).into();
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign a certificate: {e}"))?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, g: &Generated, name: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, &g.cert_pem).unwrap();
        std::fs::write(&files.key, &g.key_pem).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_with_its_subject_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(
            dir.path(),
            &self_signed(&["api.example.com"], 30).unwrap(),
            "a",
        );
        let pair = load_pair(&files).unwrap();
        assert_eq!(pair.subject, "CN=api.example.com");
        let left = pair.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(29 * 86_400) && left < Duration::from_secs(31 * 86_400));
    }

    #[test]
    fn broken_pairs_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), &self_signed(&["a.test"], 1).unwrap(), "a");
        let b = write(dir.path(), &self_signed(&["b.test"], 1).unwrap(), "b");
        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = load_pair(&mismatched).unwrap_err();
        assert!(
            e.starts_with("the key in ") && e.contains("does not match the certificate"),
            "{e}"
        );
        let missing = TlsFiles {
            cert: dir.path().join("nope.crt"),
            key: a.key.clone(),
        };
        assert!(load_pair(&missing)
            .unwrap_err()
            .ends_with("nope.crt: no such file"));
        let swapped = TlsFiles {
            cert: a.key.clone(),
            key: a.cert.clone(),
        };
        assert!(load_pair(&swapped)
            .unwrap_err()
            .contains("holds no PEM certificate"));
    }
}
