//! The checker that validation reports through, and the checks of single values (durations,
//! counts, shares, sizes, addresses, header names) that every section uses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use http::HeaderName;
use marked_yaml::{Span, Spanned};

use super::file::Text;
use super::Problem;

/// Collects problems; each check reports and carries on.
pub(super) struct Checker<'a> {
    pub(super) problems: &'a mut Vec<Problem>,
    /// Relative paths in the policy are relative to its directory.
    pub(super) base: &'a std::path::Path,
    /// Put before every message: which route is being checked (`route `llama`: `), or nothing.
    pub(super) prefix: String,
}

pub(super) fn at(span: &Span) -> Option<(usize, usize)> {
    span.start().map(|m| (m.line(), m.column()))
}

impl Checker<'_> {
    pub(super) fn report(&mut self, span: &Span, message: String) {
        self.problems.push(Problem {
            at: at(span),
            message: format!("{}{message}", self.prefix),
        });
    }

    pub(super) fn duration(&mut self, key: &str, v: Option<&Text>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.trim()) {
            Ok(d) if d.is_zero() => {
                self.report(v.span(), format!("{key} must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(_) => {
                self.report(
                    v.span(),
                    format!(
                        "{key}: `{}` is not a duration (write e.g. 500ms, 30s, 1h)",
                        &**v
                    ),
                );
                default
            }
        }
    }

    pub(super) fn count(
        &mut self,
        key: &str,
        v: Option<&Spanned<i64>>,
        default: u32,
        min: i64,
    ) -> u32 {
        let Some(v) = v else { return default };
        match u32::try_from(**v) {
            Ok(n) if i64::from(n) >= min => n,
            _ => {
                self.report(
                    v.span(),
                    format!("{key} must be a whole number >= {min}, not {}", **v),
                );
                default
            }
        }
    }

    pub(super) fn socket_addr(
        &mut self,
        key: &str,
        v: &Spanned<String>,
        span: &Span,
    ) -> Option<SocketAddr> {
        match resolve(v) {
            Ok(a) => Some(a),
            Err(why) => {
                self.report(span, format!("{key}: `{}` {why}", &**v));
                None
            }
        }
    }

    /// A percent in `lo..=100` (`lo` when it is not one).
    pub(super) fn percent(&mut self, key: &str, v: &Spanned<i64>, lo: u32) -> u32 {
        match u32::try_from(**v) {
            Ok(p) if (lo..=100).contains(&p) => p,
            _ => {
                self.report(
                    v.span(),
                    format!("{key} is a percent: {lo} to 100, not {}", **v),
                );
                lo
            }
        }
    }

    /// A share or limit in 0..=1.
    pub(super) fn share(&mut self, key: &str, v: Option<&Spanned<f64>>, default: f64) -> f64 {
        match v {
            Some(v) if (0.0..=1.0).contains(&**v) => **v,
            Some(v) => {
                self.report(
                    v.span(),
                    format!("{key} must be between 0 and 1, not {}", **v),
                );
                default
            }
            None => default,
        }
    }

    /// A size in bytes: `1024`, `256KiB`, `1MiB`, `64KB`.
    pub(super) fn size(&mut self, key: &str, v: Option<&Text>, default: usize) -> usize {
        let Some(v) = v else { return default };
        match parse_size(v) {
            Some(0) => {
                self.report(v.span(), format!("{key} must be larger than zero"));
                default
            }
            Some(n) => n,
            None => {
                self.report(
                    v.span(),
                    format!(
                        "{key}: `{}` is not a size (write e.g. 4096, 256KiB, 1MiB)",
                        &**v
                    ),
                );
                default
            }
        }
    }

    /// A path as written, relative to the policy's directory unless absolute; `None` if empty.
    pub(super) fn path(&mut self, key: &str, v: &Text) -> Option<std::path::PathBuf> {
        let p = v.trim();
        if p.is_empty() {
            self.report(v.span(), format!("{key}: give a path"));
            return None;
        }
        Some(self.base.join(p))
    }

    pub(super) fn header(&mut self, key: &str, v: &Text) -> Option<HeaderName> {
        match HeaderName::from_bytes(v.trim().as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.report(
                    v.span(),
                    format!("{key}: `{}` is not a valid header name", &**v),
                );
                None
            }
        }
    }
}

/// `host:port`, where host is an IP or a name that resolves now.
pub(super) fn resolve(v: &str) -> Result<SocketAddr, &'static str> {
    let v = v.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = v.rsplit_once(':') else {
        return Err("is not host:port");
    };
    if host.is_empty() {
        return Err("has no host");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err("has no valid port (1-65535)"),
        Ok(_) => {}
    }
    match v.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Ok(a),
        _ => Err("does not resolve to an address"),
    }
}

pub(super) fn valid_color_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `256KiB` → 262144. Binary units (`KiB`, `MiB`, `GiB`, and nginx's `k`, `m`, `g`), decimal
/// ones (`KB`, `MB`, `GB`), or plain bytes (`B` or nothing).
pub(super) fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    usize::try_from(n.checked_mul(unit)?).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Some(262_144));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size(" 64 KB "), Some(64_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("8k"), Some(8192));
        for bad in [
            "",
            "KiB",
            "1.5MiB",
            "-1",
            "12 parsecs",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
