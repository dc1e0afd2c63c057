//! The affinity cookie: finding it in a request and building the `Set-Cookie` that pins a color.
//!
//! The cookie's value is the color's name, so any replica can honour it without shared state.
//! Anything else (garbage, another color's old name) simply fails to match and is re-assigned.

use cookie::{Cookie, SameSite};

use http::HeaderValue;

/// The value of cookie `name` in one `Cookie` header's bytes, if present (the split's `inputs`
/// looks in each of a request's `Cookie` headers in turn).
///
/// A byte scan of RFC 6265's `name=value; name=value` rather than the `cookie` crate's full
/// parser: the request path only needs one value, and this is ~5x faster. Bytes that are not
/// UTF-8 or not a cookie simply never match a color, so garbage is re-assigned, never fatal.
pub fn find<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|b| *b == b';').find_map(|pair| {
        let (k, v) = split_once(pair, b'=')?;
        (k.trim_ascii() == name).then(|| v.trim_ascii())
    })
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|b| *b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// The `Set-Cookie` value that pins a session to `color`.
pub fn set_cookie(name: &str, color: &str, max_age: std::time::Duration) -> HeaderValue {
    let max_age =
        cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
    let c = Cookie::build((name, color))
        .path("/")
        .max_age(max_age)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build();
    // Names and colors were validated as header-safe tokens, so this cannot fail.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(
            find(b"a=1; blueshift=green; b=2", b"blueshift"),
            Some(&b"green"[..])
        );
    }

    #[test]
    fn missing_or_unreadable_cookies_are_none() {
        assert_eq!(find(b"", b"blueshift"), None);
        assert_eq!(find(b"other=1", b"blueshift"), None);
        assert_eq!(find(b"\xffblueshift=green", b"blueshift"), None);
        assert_eq!(find(b"xblueshift=green", b"blueshift"), None);
        assert_eq!(find(b";;;==;", b"blueshift"), None);
    }

    #[test]
    fn garbage_values_come_back_verbatim_for_the_split_to_reject() {
        assert_eq!(find(b"blueshift=%%%zz", b"blueshift"), Some(&b"%%%zz"[..]));
        assert_eq!(find(b"blueshift=", b"blueshift"), Some(&b""[..]));
    }

    #[test]
    fn set_cookie_has_every_attribute() {
        let v = set_cookie("blueshift", "green", std::time::Duration::from_secs(3600));
        let s = v.to_str().unwrap();
        assert!(s.starts_with("blueshift=green"), "{s}");
        for attr in ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
    }
}
