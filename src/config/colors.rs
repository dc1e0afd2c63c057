//! `colors:` and `health:`: each color's backends, the protocol blueshift speaks to them, TLS
//! towards them, and its health checks (the global block with the color's overrides).

use super::checker::{valid_color_name, Checker};
use super::file::{self, Text};
use super::{BackendSpec, Color, Health, Protocol, UpstreamTls};

/// One color; its problems are reported, and what could be read is returned.
pub(super) fn color(
    c: &mut Checker,
    name: &Text,
    color: &file::ColorFile,
    global: &Health,
) -> Color {
    if !valid_color_name(name) {
        c.report(
            name.span(),
            format!("color `{}`: names use only a-z, 0-9 and -", &**name),
        );
    }
    let key = format!("colors.{}", name.trim());
    let backends = backends(c, name, color);
    let protocol = match &color.protocol {
        None => Protocol::Http1,
        Some(p) => match p.trim() {
            "http1" => Protocol::Http1,
            "h2c" => Protocol::H2c,
            "https" => Protocol::Https,
            "h2" => Protocol::H2,
            other => {
                c.report(
                    p.span(),
                    format!("{key}.protocol: `{other}` is not http1, h2c, https or h2"),
                );
                Protocol::Http1
            }
        },
    };
    let tls = match &color.tls {
        None => UpstreamTls::default(),
        Some(t) if !protocol.tls() => {
            c.report(
                t.span(),
                format!(
                    "{key}.tls: only for protocol https or h2 (this color speaks {})",
                    protocol.as_str()
                ),
            );
            UpstreamTls::default()
        }
        Some(t) => UpstreamTls {
            sni: t.sni.as_ref().map(|s| s.trim().to_owned()),
            ca: t.ca.as_ref().and_then(|ca| {
                let path = c.path(&format!("{key}.tls.ca"), ca)?;
                crate::config::certs::load_ca(&path)
                    .map_err(|e| c.report(ca.span(), format!("{key}.tls.ca: {e}")))
                    .ok()
            }),
        },
    };
    let health = health(c, &format!("{key}.health"), color.health.as_ref(), global);
    if health.grpc.is_some() && !protocol.h2() {
        let at = color
            .health
            .as_ref()
            .and_then(|h| h.grpc.as_ref())
            .map_or(*name.span(), |g| *g.span());
        c.report(
            &at,
            format!(
                "{key}.health.grpc: gRPC needs HTTP/2: set {key}.protocol to h2c or h2 (not {})",
                protocol.as_str()
            ),
        );
    }
    Color {
        name: name.trim().to_owned(),
        backends,
        protocol,
        tls,
        health,
    }
}

fn backends(c: &mut Checker, name: &Text, color: &file::ColorFile) -> Vec<BackendSpec> {
    let mut backends: Vec<BackendSpec> = Vec::new();
    match &color.backends {
        Some(list) if !list.is_empty() => {
            for b in list.iter() {
                let weight = c.count(
                    &format!("colors.{}: backend weight", &**name),
                    b.weight.as_ref(),
                    1,
                    0,
                );
                let Some(addr) = c.socket_addr(
                    &format!("colors.{}: backend addr", &**name),
                    &b.addr,
                    b.addr.span(),
                ) else {
                    continue;
                };
                if backends.iter().any(|x| x.addr == addr) {
                    c.report(
                        b.addr.span(),
                        format!("colors.{}: backend {addr} is listed twice", &**name),
                    );
                    continue;
                }
                let host = b.addr.trim().rsplit_once(':').map_or("", |(h, _)| h);
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                backends.push(BackendSpec { addr, host, weight });
            }
            if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
                c.report(
                    list.span(),
                    format!(
                        "colors.{}: at least one backend needs a weight above 0",
                        &**name
                    ),
                );
            }
        }
        Some(list) => c.report(list.span(), format!("color `{}` has no backends", &**name)),
        None => c.report(name.span(), format!("color `{}` has no backends", &**name)),
    }
    backends
}

/// A `health:` block (`key` names it in problems) over `defaults`.
pub(super) fn health(
    c: &mut Checker,
    key: &str,
    h: Option<&file::HealthFile>,
    defaults: &Health,
) -> Health {
    let path = match h.and_then(|h| h.path.as_ref()) {
        Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => p.to_string(),
        Some(p) => {
            c.report(
                p.span(),
                format!(
                    "{key}.path: `{}` must start with / and hold no spaces",
                    &**p
                ),
            );
            defaults.path.clone()
        }
        None => defaults.path.clone(),
    };
    let grpc = match (
        h.and_then(|h| h.grpc.as_ref()),
        h.and_then(|h| h.service.as_ref()),
    ) {
        (Some(g), service) if **g => Some(service.map(|s| s.trim().to_owned()).unwrap_or_default()),
        (Some(_), _) => None,
        (None, Some(s)) if defaults.grpc.is_none() => {
            c.report(
                s.span(),
                format!("{key}.service: names a gRPC service; set grpc: true to check with gRPC"),
            );
            None
        }
        (None, Some(s)) => Some(s.trim().to_owned()),
        (None, None) => defaults.grpc.clone(),
    };
    Health {
        path,
        interval: c.duration(
            &format!("{key}.interval"),
            h.and_then(|h| h.interval.as_ref()),
            defaults.interval,
        ),
        timeout: c.duration(
            &format!("{key}.timeout"),
            h.and_then(|h| h.timeout.as_ref()),
            defaults.timeout,
        ),
        healthy_after: c.count(
            &format!("{key}.healthy_after"),
            h.and_then(|h| h.healthy_after.as_ref()),
            defaults.healthy_after,
            1,
        ),
        unhealthy_after: c.count(
            &format!("{key}.unhealthy_after"),
            h.and_then(|h| h.unhealthy_after.as_ref()),
            defaults.unhealthy_after,
            1,
        ),
        grpc,
    }
}
