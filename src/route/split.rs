//! Pure color choice: what a request brings, weighted split, header hashing, cookie pins and
//! overrides. No I/O.
//!
//! Header affinity uses weighted rendezvous hashing: every color scores the session key with
//! `-ln(u) / weight`, where `u` is a stable hash of (key, color name), and the lowest score
//! wins. A color wins with probability weight/sum, raising one color's weight only lowers its
//! own scores (so sessions only move onto it), and the hash depends on nothing but the key and
//! the color names, so every replica agrees without sharing state.

use pingora_http::RequestHeader;

use crate::config::Route;

/// The routing table of one snapshot: what [`decide`] needs and nothing else.
#[derive(Debug, Clone)]
pub struct Table {
    /// Color names, in policy order.
    pub names: Vec<String>,
    /// Effective weight per color (after health, rollback and rollout); 0 for ineligible ones.
    pub weights: Vec<u32>,
    /// Whether a color may take traffic at all (in policy, healthy backend, not rolled back).
    pub eligible: Vec<bool>,
    /// Per-color hash seed, derived from the name only.
    pub seeds: Vec<u64>,
    /// Index of the stable color.
    pub stable: usize,
}

/// Why a request went to its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The override header named it.
    Override(usize),
    /// A valid affinity cookie pinned it.
    Pinned(usize),
    /// The affinity header's value hashed to it.
    Hashed(usize),
    /// A new session (or a re-assigned one) drawn by weight.
    New(usize),
}

impl Decision {
    /// The chosen color.
    pub fn color(self) -> usize {
        match self {
            Decision::Override(c)
            | Decision::Pinned(c)
            | Decision::Hashed(c)
            | Decision::New(c) => c,
        }
    }
}

/// Why no color could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The override header names no color of the policy.
    UnknownColor,
    /// The override header names a color that cannot take traffic.
    Unavailable(usize),
    /// No color can take traffic.
    NothingEligible,
}

/// What a request brings that matters for routing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inputs<'a> {
    /// Value of the override header, if the policy has one and the request sent it.
    pub override_color: Option<&'a [u8]>,
    /// Value of the affinity cookie, if any.
    pub cookie: Option<&'a [u8]>,
    /// Value of the affinity header, if any.
    pub session_key: Option<&'a [u8]>,
}

/// What a request brings that the split looks at: override, affinity cookie, session header.
/// One pass over the headers: for the handful an API client sends, cheaper than a lookup of each
/// (hashing a custom name, probing for an absent cookie), ~220 instructions a request.
pub fn inputs<'a>(req: &'a RequestHeader, p: &Route) -> Inputs<'a> {
    let affinity = p.affinity.as_ref();
    let cookie = affinity.and_then(|a| a.cookie.as_deref());
    let (over, session) = (
        p.override_header.as_ref(),
        affinity.and_then(|a| a.header.as_ref()),
    );
    let mut input = Inputs::default();
    for (name, value) in req.headers.iter() {
        let v = value.as_bytes();
        if Some(name) == over {
            input.override_color.get_or_insert(v);
        }
        if Some(name) == session {
            input.session_key.get_or_insert(v);
        }
        if let (true, Some(c), None) = (name == http::header::COOKIE, cookie, input.cookie) {
            input.cookie = crate::route::affinity::find(v, c.as_bytes());
        }
    }
    input
}

impl Table {
    /// Builds a table; `seeds` are derived from the names.
    pub fn new(names: Vec<String>, weights: Vec<u32>, eligible: Vec<bool>, stable: usize) -> Self {
        let seeds = names.iter().map(|n| fnv1a(n.as_bytes())).collect();
        Table {
            names,
            weights,
            eligible,
            seeds,
            stable,
        }
    }

    /// The index of the color with this name.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.names.iter().position(|n| n.as_bytes() == name)
    }

    /// A color's weight for new sessions: 0 unless it is eligible.
    fn weight(&self, i: usize) -> u64 {
        if self.eligible[i] {
            u64::from(self.weights[i])
        } else {
            0
        }
    }

    /// Index of a color that takes traffic when all eligible weights are 0.
    fn fallback(&self) -> Option<usize> {
        if self.eligible[self.stable] {
            Some(self.stable)
        } else {
            self.eligible.iter().position(|e| *e)
        }
    }

    /// Draws a color by weight; `r` is uniform over `u32`.
    pub fn pick_weighted(&self, r: u32) -> Option<usize> {
        let total: u64 = (0..self.weights.len()).map(|i| self.weight(i)).sum();
        if total == 0 {
            return self.fallback();
        }
        let mut point = (u64::from(r) * total) >> 32;
        for i in 0..self.weights.len() {
            let w = self.weight(i);
            if point < w {
                return Some(i);
            }
            point -= w;
        }
        self.fallback()
    }

    /// The color a session key hashes to (weighted rendezvous hashing).
    pub fn pick_hashed(&self, key: &[u8]) -> Option<usize> {
        let key = fnv1a(key);
        let mut best: Option<(usize, f64)> = None;
        for i in 0..self.weights.len() {
            let w = self.weight(i);
            if w == 0 {
                continue;
            }
            let u = unit(mix(key ^ self.seeds[i]));
            let score = -u.ln() / w as f64;
            if best.is_none_or(|(_, s)| score < s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i).or_else(|| self.fallback())
    }
}

/// Chooses a color for one request. `r` is a uniform random number for the weighted draw.
pub fn decide(t: &Table, input: Inputs<'_>, r: u32) -> Result<Decision, Refusal> {
    if let Some(name) = input.override_color {
        let i = t.find(name.trim_ascii()).ok_or(Refusal::UnknownColor)?;
        return if t.eligible[i] {
            Ok(Decision::Override(i))
        } else {
            Err(Refusal::Unavailable(i))
        };
    }
    if let Some(key) = input.session_key.filter(|k| !k.is_empty()) {
        return t
            .pick_hashed(key)
            .map(Decision::Hashed)
            .ok_or(Refusal::NothingEligible);
    }
    if let Some(i) = input.cookie.and_then(|v| t.find(v)) {
        if t.eligible[i] {
            return Ok(Decision::Pinned(i));
        }
    }
    t.pick_weighted(r)
        .map(Decision::New)
        .ok_or(Refusal::NothingEligible)
}

/// 64-bit FNV-1a: stable across builds, platforms and replicas (unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64's finalizer: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a hash to (0, 1], never 0 so that `ln` stays finite.
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_read_in_one_pass_as_lookups_would_read_them() {
        let p = crate::config::parse(
            "listen: 127.0.0.1:8080\ncolors:\n  blue: {backends: [{addr: 127.0.0.1:5001}]}\n\
             stable: blue\naffinity: {cookie: bs, header: x-session}\n\
             override_header: x-color\n",
        )
        .unwrap();
        let p = &p.routes[0];
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in [
            ("cookie", "a=1; other=2"),
            ("x-color", "green"),
            ("cookie", "theme=dark; bs=blue"),
            ("x-session", "user-1"),
            ("x-color", "blue"),
            ("cookie", "bs=green"),
        ] {
            req.append_header(k, v).unwrap();
        }
        let i = inputs(&req, p);
        assert_eq!(i.cookie, Some(&b"blue"[..]), "the first cookie named bs");
        assert_eq!(i.override_color, Some(&b"green"[..]), "the first override");
        assert_eq!(i.session_key, Some(&b"user-1"[..]));
        let bare = RequestHeader::build("GET", b"/", None).unwrap();
        let i = inputs(&bare, p);
        assert!(i.cookie.is_none() && i.override_color.is_none() && i.session_key.is_none());
    }

    fn table(weights: &[u32]) -> Table {
        let names = (0..weights.len()).map(|i| format!("c{i}")).collect();
        Table::new(names, weights.to_vec(), vec![true; weights.len()], 0)
    }

    #[test]
    fn weighted_draw_follows_weights() {
        let t = table(&[90, 10]);
        let n = 100_000u32;
        let step = u32::MAX / n;
        let second = (0..n)
            .filter(|k| t.pick_weighted(k * step) == Some(1))
            .count();
        assert!((9_900..=10_100).contains(&second), "got {second}");
    }

    #[test]
    fn weighted_draw_never_picks_weight_zero() {
        let t = table(&[0, 5, 0]);
        for r in [0, 1, u32::MAX / 2, u32::MAX] {
            assert_eq!(t.pick_weighted(r), Some(1));
        }
    }

    #[test]
    fn all_zero_weights_fall_back_to_stable_or_any_eligible() {
        let mut t = table(&[0, 0]);
        assert_eq!(t.pick_weighted(7), Some(0));
        t.eligible[0] = false;
        assert_eq!(t.pick_weighted(7), Some(1));
        t.eligible[1] = false;
        assert_eq!(t.pick_weighted(7), None);
    }

    #[test]
    fn hashed_shares_follow_weights() {
        let t = table(&[70, 30]);
        let second = (0..20_000)
            .filter(|k| t.pick_hashed(format!("user-{k}").as_bytes()) == Some(1))
            .count();
        assert!((5_700..=6_300).contains(&second), "got {second}");
    }

    #[test]
    fn hashing_is_monotonic_when_a_weight_rises_or_falls() {
        let keys: Vec<String> = (0..5_000).map(|k| format!("session-{k}")).collect();
        let steps = [[100, 0], [90, 10], [50, 50], [10, 90], [0, 100]];
        for pair in steps.windows(2) {
            let before = table(&pair[0]);
            let after = table(&pair[1]);
            for k in &keys {
                let (b, a) = (
                    before.pick_hashed(k.as_bytes()),
                    after.pick_hashed(k.as_bytes()),
                );
                // color 1 only gains weight along these steps: nobody may leave it.
                assert!(
                    !(b == Some(1) && a == Some(0)),
                    "{k} moved off a color whose weight rose"
                );
            }
        }
        // Three colors: lowering c2 only moves sessions off c2; c0 and c1 keep theirs.
        let before = table(&[30, 30, 40]);
        let after = table(&[30, 30, 5]);
        for k in &keys {
            let (b, a) = (
                before.pick_hashed(k.as_bytes()),
                after.pick_hashed(k.as_bytes()),
            );
            if b != Some(2) {
                assert_eq!(
                    b, a,
                    "{k} moved between colors whose weights did not change"
                );
            }
        }
    }

    #[test]
    fn hashing_is_the_same_for_the_same_key() {
        let t = table(&[50, 50]);
        assert_eq!(t.pick_hashed(b"abc"), t.pick_hashed(b"abc"));
        // Published FNV-1a test vectors: replicas built anywhere must agree.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn decide_prefers_override_then_header_then_cookie() {
        let t = table(&[100, 0]);
        let input = Inputs {
            override_color: Some(b"c1"),
            cookie: Some(b"c0"),
            session_key: None,
        };
        assert_eq!(decide(&t, input, 0), Ok(Decision::Override(1)));
        let input = Inputs {
            override_color: None,
            cookie: Some(b"c1"),
            session_key: None,
        };
        assert_eq!(
            decide(&t, input, 0),
            Ok(Decision::Pinned(1)),
            "weight 0 keeps pinned sessions"
        );
        let input = Inputs {
            override_color: None,
            cookie: Some(b"c1"),
            session_key: Some(b"k"),
        };
        assert_eq!(decide(&t, input, 0), Ok(Decision::Hashed(0)));
    }

    #[test]
    fn decide_reassigns_garbage_unknown_and_ineligible_pins() {
        let mut t = table(&[100, 0]);
        for cookie in [&b"\xff\x00garbage"[..], b"purple", b"", b"c0 ", b"C1"] {
            let input = Inputs {
                cookie: Some(cookie),
                ..Default::default()
            };
            assert_eq!(
                decide(&t, input, 0),
                Ok(Decision::New(0)),
                "cookie {cookie:?}"
            );
        }
        t.eligible[1] = false;
        let input = Inputs {
            cookie: Some(b"c1"),
            ..Default::default()
        };
        assert_eq!(decide(&t, input, 0), Ok(Decision::New(0)));
    }

    #[test]
    fn decide_refuses_unknown_and_unavailable_overrides() {
        let mut t = table(&[50, 50]);
        t.eligible[1] = false;
        let input = |c: &'static [u8]| Inputs {
            override_color: Some(c),
            ..Default::default()
        };
        assert_eq!(decide(&t, input(b"purple"), 0), Err(Refusal::UnknownColor));
        assert_eq!(decide(&t, input(b"c1"), 0), Err(Refusal::Unavailable(1)));
        t.eligible[0] = false;
        assert_eq!(
            decide(&t, Inputs::default(), 0),
            Err(Refusal::NothingEligible)
        );
    }
}
