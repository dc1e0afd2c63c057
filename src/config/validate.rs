//! The semantic checks: from [`PolicyFile`] to [`Policy`], recording every problem found, and the
//! warnings of a valid policy (routes that can never match).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use marked_yaml::{Span, Spanned};

use super::checker::{valid_color_name, Checker};
use super::file::{self, PolicyFile, RouteFile};
use super::route::{Context, Keys};
use super::{Health, Match, Pointer, Policy, Problem, Route, Routing, Timeouts, DEFAULT_ROUTE};

/// Default `routing.max_body`: an LLM request with a long conversation fits.
const MAX_MODEL_BODY: usize = 1 << 20;

/// Returns the policy if the file made one; problems and warnings are appended either way.
pub(super) fn validate(
    f: PolicyFile,
    base: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<Policy> {
    let mut c = Checker {
        problems,
        base,
        prefix: String::new(),
    };
    // Missing keys have no position of their own.
    let top = Span::new_blank();

    let admin = match &f.admin {
        Some(a) => c.socket_addr("admin", a, a.span()),
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
    };
    let listen = super::edge::listeners(&mut c, f.listen.as_ref(), admin, f.admin.as_ref());
    let health = super::colors::health(&mut c, "health", f.health.as_ref(), &Health::default());
    let routing = routing(&mut c, f.routing.as_deref());
    let routes = match &f.routes {
        None => {
            let keys = top_level_keys(&f);
            let cx = Context {
                name: DEFAULT_ROUTE.to_owned(),
                at: top,
                health: &health,
                default_cookie: None,
                matches: Match::default(),
            };
            super::route::route(&mut c, &keys, cx).map(|r| vec![r])
        }
        Some(list) => {
            misplaced(&mut c, &f);
            routes(&mut c, list, &health, warnings)
        }
    };
    let timeouts = timeouts(&mut c, f.timeouts.as_ref());
    let state_file = f.state_file.as_ref().and_then(|s| {
        if s.trim().is_empty() {
            c.report(s.span(), "state_file: give a path".into());
            None
        } else {
            Some(PathBuf::from(s.trim()))
        }
    });
    Some(Policy {
        listen,
        admin: admin?,
        health,
        timeouts,
        routing,
        listed_routes: f.routes.is_some(),
        routes: routes?,
        state_file,
        access_log: f.access_log.map(|b| *b).unwrap_or(false),
    })
}

fn top_level_keys(f: &PolicyFile) -> Keys<'_> {
    Keys {
        colors: f.colors.as_ref(),
        stable: f.stable.as_ref(),
        split: f.split.as_ref(),
        affinity: f.affinity.as_ref(),
        override_header: f.override_header.as_ref(),
        rollback: f.rollback.as_ref(),
        rollout: f.rollout.as_ref(),
        quality: f.quality.as_ref(),
        shadow: f.shadow.as_ref(),
    }
}

fn route_keys(r: &RouteFile) -> Keys<'_> {
    Keys {
        colors: r.colors.as_ref(),
        stable: r.stable.as_ref(),
        split: r.split.as_ref(),
        affinity: r.affinity.as_ref(),
        override_header: r.override_header.as_ref(),
        rollback: r.rollback.as_ref(),
        rollout: r.rollout.as_ref(),
        quality: r.quality.as_ref(),
        shadow: r.shadow.as_ref(),
    }
}

/// With `routes:`, a per-model key at the top level belongs in the routes.
fn misplaced(c: &mut Checker, f: &PolicyFile) {
    let spans: [(&str, Option<&Span>); 9] = [
        ("colors", f.colors.as_ref().map(|x| x.span())),
        ("stable", f.stable.as_ref().map(|x| x.span())),
        ("split", f.split.as_ref().map(|x| x.span())),
        ("affinity", f.affinity.as_ref().map(|x| x.span())),
        (
            "override_header",
            f.override_header.as_ref().map(|x| x.span()),
        ),
        ("rollback", f.rollback.as_ref().map(|x| x.span())),
        ("rollout", f.rollout.as_ref().map(|x| x.span())),
        ("quality", f.quality.as_ref().map(|x| x.span())),
        ("shadow", f.shadow.as_ref().map(|x| x.span())),
    ];
    for (key, span) in spans {
        if let Some(span) = span {
            c.report(
                span,
                format!("`{key}` belongs in a route when the policy has `routes:` (each route has its own)"),
            );
        }
    }
}

/// `routes:`: each route checked, names unique, cookies not shared; warnings for routes that
/// can never match.
fn routes(
    c: &mut Checker,
    list: &Spanned<Vec<Spanned<RouteFile>>>,
    health: &Health,
    warnings: &mut Vec<Problem>,
) -> Option<Vec<Route>> {
    if list.is_empty() {
        c.report(list.span(), "routes: give at least one route".into());
        return None;
    }
    let mut out = Vec::new();
    let mut spans = Vec::new();
    let mut complete = true;
    for (i, r) in list.iter().enumerate() {
        let name = match &r.name {
            None => {
                c.report(r.span(), format!("routes[{i}]: give the route a `name`"));
                None
            }
            Some(n) if !valid_color_name(n.trim()) => {
                c.report(
                    n.span(),
                    format!(
                        "routes[{i}]: `{}` is not a route name: use only a-z, 0-9 and -",
                        &**n
                    ),
                );
                None
            }
            Some(n) if out.iter().any(|o: &Route| o.name == n.trim()) => {
                c.report(
                    n.span(),
                    format!("routes: two routes are named `{}`", n.trim()),
                );
                None
            }
            Some(n) => Some(n.trim().to_owned()),
        };
        let at = *r.name.as_ref().map_or(r.span(), |n| n.span());
        c.prefix = match &name {
            Some(n) => format!("route `{n}`: "),
            None => format!("routes[{i}]: "),
        };
        let matches = super::matching::matches(c, r.matches.as_ref());
        let cx = Context {
            name: name.clone().unwrap_or_default(),
            at,
            health,
            default_cookie: name.as_ref().map(|n| format!("blueshift-{n}")),
            matches,
        };
        let route = super::route::route(c, &route_keys(r), cx);
        c.prefix.clear();
        match (route, name) {
            (Some(route), Some(_)) => {
                spans.push(at);
                out.push(route);
            }
            _ => complete = false,
        }
    }
    shared_cookies(c, &out, list);
    if !complete {
        return None;
    }
    warnings.extend(super::matching::shadowed(&out, &spans));
    Some(out)
}

/// Two routes that pin sessions with one cookie would read each other's pins.
fn shared_cookies(c: &mut Checker, routes: &[Route], list: &Spanned<Vec<Spanned<RouteFile>>>) {
    let cookie = |r: &Route| r.affinity.as_ref().and_then(|a| a.cookie.clone());
    for (j, later) in routes.iter().enumerate() {
        let Some(name) = cookie(later) else { continue };
        if let Some(earlier) = routes[..j]
            .iter()
            .find(|r| cookie(r).as_ref() == Some(&name))
        {
            let at = list
                .iter()
                .find(|f| f.name.as_ref().is_some_and(|n| n.trim() == later.name))
                .and_then(|f| f.affinity.as_ref())
                .map_or(*list.span(), |a| *a.span());
            c.report(
                &at,
                format!(
                    "route `{}`: affinity: routes `{}` and `{}` would both pin sessions with cookie `{name}`: give each route its own (or leave `cookie` out: blueshift-<route>)",
                    later.name, earlier.name, later.name
                ),
            );
        }
    }
}

/// `routing:`.
fn routing(c: &mut Checker, r: Option<&file::RoutingFile>) -> Routing {
    let default = || Pointer::parse("/model").expect("a valid pointer");
    let model_field = match r.and_then(|r| r.model_field.as_ref()) {
        None => default(),
        Some(v) => match Pointer::parse(v.trim()) {
            Ok(p) if p.has_wildcard() => {
                c.report(
                    v.span(),
                    format!(
                        "routing.model_field: `{}` names one value: no * segment",
                        &**v
                    ),
                );
                default()
            }
            Ok(p) => p,
            Err(why) => {
                c.report(v.span(), format!("routing.model_field: `{}` {why}", &**v));
                default()
            }
        },
    };
    Routing {
        model_field,
        max_body: c.size(
            "routing.max_body",
            r.and_then(|r| r.max_body.as_ref()),
            MAX_MODEL_BODY,
        ),
    }
}

fn timeouts(c: &mut Checker, t: Option<&file::TimeoutsFile>) -> Timeouts {
    let d = Timeouts::default();
    // Each key of `timeouts`: its value if given (and valid), else the default.
    let mut timeout = |key: &str, pick: fn(&file::TimeoutsFile) -> Option<&file::Text>, default| {
        c.duration(key, t.and_then(pick), default)
    };
    Timeouts {
        connect: timeout("timeouts.connect", |t| t.connect.as_ref(), d.connect),
        read: timeout("timeouts.read", |t| t.read.as_ref(), d.read),
        client_header: timeout(
            "timeouts.client_header",
            |t| t.client_header.as_ref(),
            d.client_header,
        ),
        client_body: timeout(
            "timeouts.client_body",
            |t| t.client_body.as_ref(),
            d.client_body,
        ),
        client_send: timeout(
            "timeouts.client_send",
            |t| t.client_send.as_ref(),
            d.client_send,
        ),
        keepalive: timeout("timeouts.keepalive", |t| t.keepalive.as_ref(), d.keepalive),
    }
}
