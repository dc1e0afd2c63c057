//! Which route takes a request: the first, in policy order, whose `match` holds.
//!
//! Trying each route in turn would cost every request a look at every route. Instead the
//! routes are indexed by what most of them match on: a hash map from exact hosts (and one from
//! `*.` domains) and a trie of path segments, each entry a set of routes as a bitset. A request
//! looks its host up once and walks its path once, ORing the sets it meets; the AND of the two is
//! every route whose host and path hold, and the lowest set bit that also passes its headers and
//! model is the route. The cost grows with the path's depth and the host's dots, not with the
//! number of routes (`benches/decision.rs`, BENCHMARKS.md). Hashing uses FNV-1a: keys are short.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use pingora_http::RequestHeader;

use crate::config::{header_is, Host, Match, Route};

/// FNV-1a as a `Hasher`, for the short keys of the index (hosts, path segments).
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Map<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// A set of routes, one bit each (route `i` is bit `i % 64` of word `i / 64`).
type Bits = Box<[u64]>;

/// Routes set inline up to this many words (1,024 routes); more take one allocation a request.
const INLINE_WORDS: usize = 16;

#[derive(Default)]
struct Node {
    children: Map<Node>,
    /// Routes whose `path_prefix` ends at this node.
    here: Option<Bits>,
}

/// What [`Table::find`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// This route takes the request.
    Route(usize),
    /// A route that matches on the body's model field holds on everything else: read the body
    /// and ask again with the model.
    NeedsModel,
    /// No route takes the request.
    Nothing,
}

/// The routes of one policy, indexed.
pub struct Table {
    /// The match of each route, in policy order.
    matches: Vec<Match>,
    words: usize,
    /// One route that takes everything: nothing to look at.
    only_catch_all: bool,
    exact_hosts: Map<Bits>,
    host_suffixes: Map<Bits>,
    /// Routes without `host`.
    any_host: Bits,
    paths: Node,
    /// Routes without `path_prefix`.
    any_path: Bits,
}

fn set(bits: &mut Option<Bits>, words: usize, i: usize) {
    bits.get_or_insert_with(|| vec![0; words].into_boxed_slice())[i / 64] |= 1 << (i % 64);
}

fn empty(words: usize) -> Bits {
    vec![0; words].into_boxed_slice()
}

fn or(acc: &mut [u64], bits: &[u64]) {
    for (a, b) in acc.iter_mut().zip(bits) {
        *a |= b;
    }
}

/// The path's segments after its first `/` (`/v1/chat/` → `v1`, `chat`, ``).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

impl Table {
    /// Indexes the routes of a policy.
    pub fn new(routes: &[Route]) -> Table {
        let n = routes.len();
        let words = n.div_ceil(64).max(1);
        let mut t = Table {
            matches: routes.iter().map(|r| r.matches.clone()).collect(),
            words,
            only_catch_all: n == 1 && routes[0].matches.is_catch_all(),
            exact_hosts: Map::default(),
            host_suffixes: Map::default(),
            any_host: empty(words),
            paths: Node::default(),
            any_path: empty(words),
        };
        for (i, r) in routes.iter().enumerate() {
            let m = &r.matches;
            let (map, key) = match &m.host {
                None => {
                    t.any_host[i / 64] |= 1 << (i % 64);
                    (None, "")
                }
                Some(Host::Exact(h)) => (Some(&mut t.exact_hosts), h.as_str()),
                Some(Host::Suffix(s)) => (Some(&mut t.host_suffixes), s.as_str()),
            };
            if let Some(map) = map {
                let mut entry = map.remove(key);
                set(&mut entry, words, i);
                map.insert(key.into(), entry.unwrap_or_else(|| empty(words)));
            }
            match &m.path_prefix {
                None => t.any_path[i / 64] |= 1 << (i % 64),
                Some(p) => {
                    let mut node = &mut t.paths;
                    for seg in segments(p) {
                        node = node.children.entry(seg.into()).or_default();
                    }
                    set(&mut node.here, words, i);
                }
            }
        }
        t
    }

    /// The first route whose match holds for `req`; `model` is the body's model field once read
    /// (`Some(None)`: read, and it has none), `None` before.
    pub fn find(&self, req: &RequestHeader, model: Option<Option<&str>>) -> Found {
        if self.only_catch_all {
            return Found::Route(0);
        }
        let mut inline = [0u64; INLINE_WORDS];
        let mut heap = Vec::new();
        let (hosts, paths): (&mut [u64], &mut [u64]) = if self.words * 2 <= INLINE_WORDS {
            inline[..self.words * 2].split_at_mut(self.words)
        } else {
            heap.resize(self.words * 2, 0);
            heap.split_at_mut(self.words)
        };
        self.hosts(host(req).as_deref().unwrap_or(""), hosts);
        self.paths(req.uri.path(), paths);
        for (w, (h, p)) in hosts.iter().zip(paths.iter()).enumerate() {
            let mut candidates = h & p;
            while candidates != 0 {
                let i = w * 64 + candidates.trailing_zeros() as usize;
                candidates &= candidates - 1;
                let m = &self.matches[i];
                if !m.headers.iter().all(|(k, v)| header_is(&req.headers, k, v)) {
                    continue;
                }
                match (&m.model, model) {
                    (None, _) => return Found::Route(i),
                    (Some(_), None) => return Found::NeedsModel,
                    (Some(want), Some(got)) if got == Some(want.as_str()) => {
                        return Found::Route(i)
                    }
                    (Some(_), Some(_)) => continue,
                }
            }
        }
        Found::Nothing
    }

    /// Routes whose host condition holds for `host` (lowercase, no port).
    fn hosts(&self, host: &str, acc: &mut [u64]) {
        acc.copy_from_slice(&self.any_host);
        if let Some(bits) = self.exact_hosts.get(host) {
            or(acc, bits);
        }
        if self.host_suffixes.is_empty() {
            return;
        }
        // `*.example.com` takes `a.example.com` and `a.b.example.com`: every suffix after a dot.
        for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
            if let Some(bits) = self.host_suffixes.get(&host[at..]) {
                or(acc, bits);
            }
        }
    }

    /// Routes whose path prefix holds for `path`.
    fn paths(&self, path: &str, acc: &mut [u64]) {
        acc.copy_from_slice(&self.any_path);
        let mut node = &self.paths;
        for seg in segments(path) {
            match node.children.get(seg) {
                Some(next) => node = next,
                None => return,
            }
            if let Some(bits) = &node.here {
                or(acc, bits);
            }
        }
    }
}

/// The request's host, lowercase and without a port: HTTP/2's `:authority` or the `Host` header.
pub fn host(req: &RequestHeader) -> Option<std::borrow::Cow<'_, str>> {
    let raw = match req.uri.authority() {
        Some(a) => a.as_str(),
        None => req.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let name = match raw.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(rest) => rest.split_once(']').map_or(rest, |(ip, _)| ip),
        None => raw.split_once(':').map_or(raw, |(h, _)| h),
    };
    let name = name.trim_end_matches('.');
    Some(match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Vec<Route> {
        let policy = format!(
            "listen: 127.0.0.1:1\nrouting: {{max_body: 1KiB}}\nroutes:\n{}",
            text.lines()
                .map(|l| format!(
                    "  - {l}, colors: {{blue: {{backends: [{{addr: 127.0.0.1:2}}]}}}}}}\n"
                ))
                .collect::<String>()
        );
        crate::config::parse(&policy).unwrap().routes
    }

    fn req(host: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        r.insert_header("host", host).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn the_first_route_whose_match_holds_takes_the_request() {
        let t = Table::new(&routes(
            "{name: sentiment, match: {path_prefix: /v1/sentiment}\n\
             {name: llama, match: {path_prefix: /v1/chat/completions, model: llama}\n\
             {name: ranker, match: {host: ranker.internal, headers: {x-tenant: acme}}\n\
             {name: wild, match: {host: '*.example.com'}\n\
             {name: fallback",
        ));
        let find = |host, path, headers: &[(&str, &str)]| t.find(&req(host, path, headers), None);
        assert_eq!(find("a", "/v1/sentiment", &[]), Found::Route(0));
        assert_eq!(find("a", "/v1/sentiment/batch?x=1", &[]), Found::Route(0));
        assert_eq!(
            find("a", "/v1/sentimentx", &[]),
            Found::Route(4),
            "segment-wise prefixes"
        );
        assert_eq!(find("a", "/v1/chat/completions", &[]), Found::NeedsModel);
        let llama = req("a", "/v1/chat/completions", &[]);
        assert_eq!(t.find(&llama, Some(Some("llama"))), Found::Route(1));
        assert_eq!(t.find(&llama, Some(Some("mistral"))), Found::Route(4));
        assert_eq!(t.find(&llama, Some(None)), Found::Route(4));
        assert_eq!(
            find("Ranker.Internal:8080", "/", &[("x-tenant", "acme")]),
            Found::Route(2)
        );
        assert_eq!(
            find("ranker.internal", "/", &[("x-tenant", "other")]),
            Found::Route(4)
        );
        assert_eq!(find("a.b.example.com", "/", &[]), Found::Route(3));
        assert_eq!(
            find("example.com", "/", &[]),
            Found::Route(4),
            "*. is not the apex"
        );
    }

    #[test]
    fn without_a_catch_all_some_requests_have_no_route() {
        let t = Table::new(&routes(
            "{name: a, match: {path_prefix: /a}\n{name: b, match: {host: b}",
        ));
        assert_eq!(t.find(&req("x", "/a/1", &[]), None), Found::Route(0));
        assert_eq!(t.find(&req("b", "/zzz", &[]), None), Found::Route(1));
        assert_eq!(t.find(&req("x", "/zzz", &[]), None), Found::Nothing);
    }

    #[test]
    fn many_routes_keep_their_order_across_words() {
        let text: Vec<String> = (0..150)
            .map(|i| format!("{{name: r{i}, match: {{path_prefix: /m/{}}}", i % 100))
            .collect();
        let t = Table::new(&routes(&text.join("\n")));
        assert_eq!(t.find(&req("x", "/m/7/infer", &[]), None), Found::Route(7));
        assert_eq!(t.find(&req("x", "/m/99", &[]), None), Found::Route(99));
        assert_eq!(t.find(&req("x", "/m/100", &[]), None), Found::Nothing);
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        let r = |h: &str| req(h, "/", &[]);
        assert_eq!(
            host(&r("API.Example.com:443")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host(&r("[::1]:8080")).as_deref(), Some("::1"));
        assert_eq!(host(&r("example.com.")).as_deref(), Some("example.com"));
    }
}
