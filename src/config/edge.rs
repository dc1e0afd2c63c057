//! `listen:`: where the proxy listens, in plain HTTP or terminating TLS with a certificate pair
//! that must load now.

use std::net::SocketAddr;

use marked_yaml::{Span, Spanned};

use super::checker::Checker;
use super::file::{self, ListenEntry, Text};
use super::{Listener, TlsFiles};
use crate::config::certs::Faulty;

/// The listeners; every problem is reported, with the admin address's conflicts too.
pub(super) fn listeners(
    c: &mut Checker,
    listen: Option<&Spanned<file::Listen>>,
    admin: Option<SocketAddr>,
    admin_text: Option<&Text>,
) -> Vec<Listener> {
    let Some(l) = listen else {
        c.report(
            &Span::new_blank(),
            "`listen` is required (e.g. listen: 127.0.0.1:8080)".into(),
        );
        return vec![];
    };
    if l.0.is_empty() {
        c.report(l.span(), "listen: give at least one address".into());
        return vec![];
    }
    let mut out: Vec<Listener> = Vec::new();
    for (i, entry) in l.0.iter().enumerate() {
        // A lone `host:port` has no span of its own: point at `listen`.
        let span = match entry.span().start() {
            Some(_) => *entry.span(),
            None => *l.span(),
        };
        let key = match l.0.len() {
            1 => "listen".to_owned(),
            _ => format!("listen[{i}]"),
        };
        let (addr, tls) = match &**entry {
            ListenEntry::Addr(a) => (
                c.socket_addr(&key, &Spanned::new(span, a.clone()), &span),
                None,
            ),
            ListenEntry::Full(f) => (
                c.socket_addr(&format!("{key}.addr"), &f.addr, f.addr.span()),
                f.tls.as_ref().and_then(|t| pair(c, &key, t)),
            ),
        };
        let Some(addr) = addr else { continue };
        if out.iter().any(|o| o.addr == addr) {
            c.report(&span, format!("listen: {addr} is listed twice"));
            continue;
        }
        if Some(addr) == admin {
            let at = admin_text.map_or(span, |a| *a.span());
            c.report(
                &at,
                format!("admin: {addr} is also a listen address; give the admin API its own port"),
            );
        }
        out.push(Listener { addr, tls });
    }
    out
}

/// A listener's `tls:` pair, which must load and match now.
fn pair(c: &mut Checker, key: &str, t: &Spanned<file::ListenerTlsFile>) -> Option<TlsFiles> {
    let cert = c.path(&format!("{key}.tls.cert"), &t.cert);
    let key_file = c.path(&format!("{key}.tls.key"), &t.key);
    let files = TlsFiles {
        cert: cert?,
        key: key_file?,
    };
    match crate::config::certs::load_pair_at(&files) {
        Ok(_) => Some(files),
        Err((faulty, e)) => {
            let at = match faulty {
                Faulty::Cert => t.cert.span(),
                Faulty::Key => t.key.span(),
            };
            c.report(at, format!("{key}.tls: {e}"));
            None
        }
    }
}
