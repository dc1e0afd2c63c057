//! A route's `match:` (host, path prefix, headers, model), and the routes that can never match
//! because an earlier one takes every request they would.

use http::{HeaderName, HeaderValue};
use marked_yaml::{Span, Spanned};

use super::checker::{at, Checker};
use super::file::MatchFile;
use super::{Problem, Route};

/// A route's `match:`: every condition given must hold; none at all takes every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// The request's host (its `Host`, or HTTP/2's `:authority`), without the port.
    pub host: Option<Host>,
    /// The path starts with these segments (`/v1/chat` takes `/v1/chat` and `/v1/chat/x`,
    /// not `/v1/chatx`); no trailing `/`.
    pub path_prefix: Option<String>,
    /// Headers that must be present with exactly these values.
    pub headers: Vec<(HeaderName, String)>,
    /// The JSON body's model field (see [`super::Routing`]) must be this string.
    pub model: Option<String>,
}

/// What `match.host` takes: one host, or every host under a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `ranker.internal`, lowercase.
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any host ending so (not `example.com` itself).
    Suffix(String),
}

impl Match {
    /// Whether this match takes every request.
    pub fn is_catch_all(&self) -> bool {
        *self == Match::default()
    }
}

/// `match:`; a condition with a problem is left out (and reported).
pub(super) fn matches(c: &mut Checker, m: Option<&Spanned<MatchFile>>) -> Match {
    let Some(m) = m else {
        return Match::default();
    };
    let host = m.host.as_ref().and_then(|h| host(c, h));
    let path_prefix = m.path_prefix.as_ref().and_then(|p| {
        let text = p.trim();
        let bad = !text.starts_with('/')
            || text.contains(|ch: char| ch.is_whitespace() || ch == '?' || ch == '#');
        if bad {
            c.report(
                p.span(),
                format!(
                    "match.path_prefix: `{}` must start with / and hold no spaces, ? or #",
                    &**p
                ),
            );
            return None;
        }
        // `/v1/` and `/v1` take the same paths; `/` takes every path, as no prefix does.
        let trimmed = text.trim_end_matches('/');
        (!trimmed.is_empty()).then(|| trimmed.to_owned())
    });
    let mut headers = Vec::new();
    for (name, value) in m.headers.iter().flat_map(|h| h.iter()) {
        let Some(header) = c.header("match.headers", name) else {
            continue;
        };
        if header == http::header::HOST {
            c.report(
                name.span(),
                "match.headers: match the host with match.host (HTTP/2 requests send it as :authority)".into(),
            );
            continue;
        }
        if HeaderValue::from_str(value).is_err() {
            c.report(
                value.span(),
                format!(
                    "match.headers.{header}: `{}` is not a valid header value",
                    &**value
                ),
            );
            continue;
        }
        headers.push((header, value.to_string()));
    }
    let model = m.model.as_ref().and_then(|v| {
        if v.trim().is_empty() {
            c.report(
                v.span(),
                "match.model: give the model's name (e.g. llama-3-8b)".into(),
            );
            return None;
        }
        Some(v.trim().to_owned())
    });
    Match {
        host,
        path_prefix,
        headers,
        model,
    }
}

fn host(c: &mut Checker, h: &Spanned<String>) -> Option<Host> {
    let text = h.trim().to_ascii_lowercase();
    let (wild, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        let why = match name.contains(':') {
            true => "has a port: give the host alone".to_owned(),
            false => "is not a host name (write e.g. ranker.internal or *.example.com)".to_owned(),
        };
        c.report(h.span(), format!("match.host: `{}` {why}", &**h));
        return None;
    }
    Some(match wild {
        true => Host::Suffix(format!(".{name}")),
        false => Host::Exact(name.to_owned()),
    })
}

/// Whether every request `b` takes, `a` takes too (so `b` after `a` never matches).
pub fn covers(a: &Match, b: &Match) -> bool {
    let host = match (&a.host, &b.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(Host::Exact(x)), Some(Host::Exact(y))) => x == y,
        (Some(Host::Suffix(x)), Some(Host::Exact(y))) => y.ends_with(x.as_str()),
        (Some(Host::Suffix(x)), Some(Host::Suffix(y))) => y.ends_with(x.as_str()),
        (Some(Host::Exact(_)), Some(Host::Suffix(_))) => false,
    };
    let path = match (&a.path_prefix, &b.path_prefix) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => {
            y == x || (y.starts_with(x.as_str()) && y.as_bytes().get(x.len()) == Some(&b'/'))
        }
    };
    let headers = a.headers.iter().all(|h| b.headers.contains(h));
    let model = a.model.is_none() || a.model == b.model;
    host && path && headers && model
}

/// One warning for each route an earlier route covers, at the later route's `spans` entry.
pub(super) fn shadowed(routes: &[Route], spans: &[Span]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (j, later) in routes.iter().enumerate() {
        let Some(earlier) = routes[..j]
            .iter()
            .find(|r| covers(&r.matches, &later.matches))
        else {
            continue;
        };
        let how = match earlier.matches.is_catch_all() {
            true => format!(
                "`{}` before it has no match and takes every request",
                earlier.name
            ),
            false if earlier.matches == later.matches => {
                format!("`{}` before it has the same match", earlier.name)
            }
            false => format!(
                "`{}` before it takes every request it would (its match is broader)",
                earlier.name
            ),
        };
        out.push(Problem {
            at: spans.get(j).and_then(at),
            message: format!("route `{}` can never match: {how}", later.name),
        });
    }
    out
}

/// `match.headers` as Pingora compares them.
pub fn header_is(req: &http::HeaderMap, name: &HeaderName, value: &str) -> bool {
    req.get_all(name)
        .iter()
        .any(|v| v.as_bytes() == value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: Option<&str>, path: Option<&str>, model: Option<&str>) -> Match {
        Match {
            host: host.map(|h| match h.strip_prefix('*') {
                Some(s) => Host::Suffix(s.to_owned()),
                None => Host::Exact(h.to_owned()),
            }),
            path_prefix: path.map(str::to_owned),
            headers: vec![],
            model: model.map(str::to_owned),
        }
    }

    #[test]
    fn a_broader_match_covers_a_narrower_one_and_never_the_other_way() {
        let any = Match::default();
        let chat = m(None, Some("/v1/chat"), None);
        let llama = m(None, Some("/v1/chat/completions"), Some("llama"));
        assert!(covers(&any, &chat) && covers(&chat, &llama));
        assert!(!covers(&chat, &any) && !covers(&llama, &chat));
        assert!(!covers(
            &m(None, Some("/v1/chat"), None),
            &m(None, Some("/v1/chatx"), None)
        ));
        assert!(covers(
            &m(Some("*.example.com"), None, None),
            &m(Some("a.example.com"), None, None)
        ));
        assert!(!covers(
            &m(Some("*.example.com"), None, None),
            &m(Some("example.com"), None, None)
        ));
        assert!(!covers(
            &m(Some("a.example.com"), None, None),
            &m(Some("*.example.com"), None, None)
        ));
        let tenant = Match {
            headers: vec![(HeaderName::from_static("x-tenant"), "acme".into())],
            ..Match::default()
        };
        assert!(!covers(&tenant, &any) && covers(&any, &tenant));
        assert!(!covers(
            &m(None, None, Some("a")),
            &m(None, None, Some("b"))
        ));
    }
}
