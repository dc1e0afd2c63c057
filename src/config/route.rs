//! One route's per-model keys: its colors, stable color, split, affinity, override header,
//! rollback limits, rollout, quality gates and shadow. The same checks run on the top-level
//! keys of a policy without `routes:` (its one route) and on each entry of `routes:`.

use std::time::Duration;

use indexmap::IndexMap;
use marked_yaml::{Span, Spanned};

use super::checker::{valid_cookie_name, Checker};
use super::file::{self, ColorFile, Text};
use super::{Affinity, Color, Health, LatencyMode, Match, RollbackLimits, Route};

/// The per-model keys as written, wherever they stand (top level, or in a route).
pub(super) struct Keys<'a> {
    pub colors: Option<&'a Spanned<IndexMap<Text, ColorFile>>>,
    pub stable: Option<&'a Text>,
    pub split: Option<&'a Spanned<IndexMap<Text, Spanned<i64>>>>,
    pub affinity: Option<&'a Spanned<file::AffinityFile>>,
    pub override_header: Option<&'a Text>,
    pub rollback: Option<&'a Spanned<file::RollbackFile>>,
    pub rollout: Option<&'a Spanned<file::RolloutFile>>,
    pub quality: Option<&'a Spanned<file::QualityFile>>,
    pub shadow: Option<&'a Spanned<file::ShadowFile>>,
}

/// What a route is checked with besides its keys.
pub(super) struct Context<'a> {
    /// The route's name.
    pub name: String,
    /// Where a missing key is reported: the route's entry, or nowhere (the top level).
    pub at: Span,
    /// The health check defaults its colors start from.
    pub health: &'a Health,
    /// The default affinity cookie when `affinity` names none (`blueshift-<route>` in a policy
    /// with `routes:`); `None` where affinity must name a cookie or a header.
    pub default_cookie: Option<String>,
    /// What the route matches.
    pub matches: Match,
}

/// Checks one route's keys; returns the route if they made one (problems are reported either way).
pub(super) fn route(c: &mut Checker, k: &Keys, cx: Context) -> Option<Route> {
    let mut colors = Vec::new();
    match k.colors {
        None => c.report(
            &cx.at,
            "`colors` is required: name at least one pool of backends".into(),
        ),
        Some(map) if map.is_empty() => {
            c.report(map.span(), "colors: name at least one color".into())
        }
        Some(map) => {
            for (name, color) in map.iter() {
                colors.push(super::colors::color(c, name, color, cx.health));
            }
        }
    }
    let index = |name: &str| colors.iter().position(|col: &Color| col.name == name);

    let stable = match (k.stable, colors.len()) {
        (Some(s), _) => match index(s.trim()) {
            Some(i) => Some(i),
            None => {
                c.report(s.span(), format!("stable: there is no color `{}`", &**s));
                None
            }
        },
        (None, 1) => Some(0),
        (None, 0) => None,
        (None, _) => {
            c.report(&cx.at, "`stable` is required with 2 or more colors: name the color that takes the traffic of a rolled-back one".into());
            None
        }
    };
    let split = split(c, k.split, &colors, &cx.at);
    let affinity = k
        .affinity
        .and_then(|a| affinity(c, a, cx.default_cookie.as_deref()));
    let override_header = k
        .override_header
        .and_then(|h| c.header("override_header", h));
    let rollback = rollback(c, k.rollback.map(|r| &**r));
    let rollout = k
        .rollout
        .and_then(|r| super::steps::rollout(c, r, &colors, stable));
    let quality = k.quality.and_then(|q| super::gates::quality(c, q));
    let has_shadow_step = k
        .rollout
        .is_some_and(|r| r.steps.iter().any(|s| s.shadow.is_some()));
    let (shadow, mirroring) = super::gates::shadow(c, k.shadow, &colors, stable, has_shadow_step);
    Some(Route {
        name: cx.name,
        matches: cx.matches,
        stable: stable?,
        colors,
        split,
        affinity,
        override_header,
        rollback,
        rollout,
        quality,
        shadow,
        mirroring,
    })
}

/// `split:`, as a weight per color (in color order).
fn split(
    c: &mut Checker,
    s: Option<&Spanned<IndexMap<Text, Spanned<i64>>>>,
    colors: &[Color],
    at: &Span,
) -> Vec<u32> {
    let mut split = vec![0u32; colors.len()];
    let Some(map) = s else {
        match colors.len() {
            1 => split[0] = 100,
            0 => {}
            _ => c.report(
                at,
                "`split` is required with 2 or more colors (e.g. split: {blue: 90, green: 10})"
                    .into(),
            ),
        }
        return split;
    };
    for (name, w) in map.iter() {
        let i = colors.iter().position(|col| col.name == name.trim());
        if i.is_none() {
            c.report(
                name.span(),
                format!("split: there is no color `{}`", &**name),
            );
        }
        let w = match u32::try_from(**w) {
            Ok(w) => w,
            Err(_) => {
                c.report(
                    w.span(),
                    format!(
                        "split: weight of `{}` must be a whole number >= 0, not {}",
                        &**name, **w
                    ),
                );
                continue;
            }
        };
        if let Some(i) = i {
            split[i] = w;
        }
    }
    if !map.is_empty() && map.values().all(|w| **w == 0) {
        c.report(
            map.span(),
            "split: at least one color needs a weight above 0".into(),
        );
    }
    if map.is_empty() {
        c.report(map.span(), "split: give each color a weight".into());
    }
    split
}

fn affinity(
    c: &mut Checker,
    a: &Spanned<file::AffinityFile>,
    default_cookie: Option<&str>,
) -> Option<Affinity> {
    let cookie = a.cookie.as_ref().and_then(|k| {
        if valid_cookie_name(k.trim()) {
            Some(k.trim().to_owned())
        } else {
            c.report(
                k.span(),
                format!("affinity.cookie: `{}` is not a valid cookie name", &**k),
            );
            None
        }
    });
    let header = a
        .header
        .as_ref()
        .and_then(|h| c.header("affinity.header", h));
    let max_age = c.duration(
        "affinity.max_age",
        a.max_age.as_ref(),
        Duration::from_secs(3600),
    );
    let cookie = match (&a.cookie, &a.header, default_cookie) {
        (None, None, Some(default)) => Some(default.to_owned()),
        (None, None, None) => {
            c.report(a.span(), "affinity: set `cookie`, `header` or both".into());
            return None;
        }
        _ => cookie,
    };
    Some(Affinity {
        cookie,
        max_age,
        header,
    })
}

fn rollback(c: &mut Checker, r: Option<&file::RollbackFile>) -> RollbackLimits {
    let max_error_rate = c.share(
        "rollback.max_error_rate",
        r.and_then(|r| r.max_error_rate.as_ref()),
        0.05,
    );
    let min_requests = c.count(
        "rollback.min_requests",
        r.and_then(|r| r.min_requests.as_ref()),
        20,
        1,
    );
    let latency = match r.and_then(|r| r.latency.as_ref()) {
        None => LatencyMode::Total,
        Some(v) => match v.trim() {
            "total" => LatencyMode::Total,
            "first_byte" => LatencyMode::FirstByte,
            other => {
                c.report(
                    v.span(),
                    format!("rollback.latency: `{other}` is not total or first_byte"),
                );
                LatencyMode::Total
            }
        },
    };
    RollbackLimits {
        max_error_rate,
        max_p99_latency: c.duration(
            "rollback.max_p99_latency",
            r.and_then(|r| r.max_p99_latency.as_ref()),
            Duration::from_secs(2),
        ),
        window: c.duration(
            "rollback.window",
            r.and_then(|r| r.window.as_ref()),
            Duration::from_secs(30),
        ),
        min_requests: u64::from(min_requests),
        latency,
    }
}
