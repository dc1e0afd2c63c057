//! JSON Pointers (RFC 6901) with at most one `*` segment, which stands for every element of an
//! array (or every value of an object): `/predictions/*/label` finds each label of a batch answer.
//!
//! A pointer is followed through the raw JSON text: at each level the member it names is kept
//! as raw text and its siblings are scanned (and so validated) without being built into values,
//! so reading one label from a large answer allocates nothing but the label.

use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
#[cfg(test)]
use serde_json::Value;

/// A parsed pointer: the tokens before the `*` and, if there is one, the tokens after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    head: Vec<String>,
    tail: Option<Vec<String>>,
}

impl Pointer {
    /// Parses `/a/b~1c/*/d`; the error completes the sentence "`text` ...".
    pub fn parse(text: &str) -> Result<Pointer, &'static str> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("is not a JSON Pointer: it starts with / (e.g. /prediction)");
        };
        let mut head = Vec::new();
        let mut tail: Option<Vec<String>> = None;
        for raw in rest.split('/') {
            if raw == "*" {
                if tail.is_some() {
                    return Err("has more than one * segment");
                }
                tail = Some(Vec::new());
                continue;
            }
            let token =
                unescape(raw).ok_or("has a ~ not followed by 0 or 1 (write ~0 for ~, ~1 for /)")?;
            match &mut tail {
                Some(t) => t.push(token),
                None => head.push(token),
            }
        }
        Ok(Pointer {
            text: text.to_owned(),
            head,
            tail,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it has a `*` segment (and so may reach several values).
    pub fn has_wildcard(&self) -> bool {
        self.tail.is_some()
    }

    /// Calls `found` with every value the pointer reaches in a parsed `doc`: the reference the
    /// raw walk ([`Pointer::visit_text`]) is tested against.
    #[cfg(test)]
    fn visit<'a>(&self, doc: &'a Value, mut found: impl FnMut(&'a Value)) {
        let Some(at) = walk(doc, &self.head) else {
            return;
        };
        match &self.tail {
            None => found(at),
            Some(tail) => {
                let each: Box<dyn Iterator<Item = &'a Value>> = match at {
                    Value::Array(items) => Box::new(items.iter()),
                    Value::Object(map) => Box::new(map.values()),
                    _ => return,
                };
                for item in each {
                    if let Some(v) = walk(item, tail) {
                        found(v);
                    }
                }
            }
        }
    }
}

/// The text is not one well-formed JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

impl Pointer {
    /// Calls `found` with every value the pointer reaches in the JSON `text`; `Err` if `text`
    /// is not one well-formed JSON document.
    pub fn visit_text<'a>(
        &self,
        text: &'a str,
        mut found: impl FnMut(&'a RawValue),
    ) -> Result<(), NotJson> {
        visit_pair(text, self, None, |_, v| found(v))
    }

    /// Where the pointer leads from `at`, the value its first `skip` head tokens reached.
    fn follow<'a>(&self, at: &'a RawValue, skip: usize, found: &mut impl FnMut(&'a RawValue)) {
        let Some(at) = descend(at, &self.head[skip..]) else {
            return;
        };
        let Some(tail) = &self.tail else {
            return found(at);
        };
        let items = Items.deserialize(&mut serde_json::Deserializer::from_str(at.get()));
        for item in items.unwrap_or_default() {
            if let Some(v) = descend(item, tail) {
                found(v);
            }
        }
    }
}

/// Follows `first` and, if given, `second` through the JSON `text` in one scan of it, calling
/// `found(0 or 1, value)` for what each reaches; `Err` if `text` is not one JSON document.
pub fn visit_pair<'a>(
    text: &'a str,
    first: &Pointer,
    second: Option<&Pointer>,
    mut found: impl FnMut(usize, &'a RawValue),
) -> Result<(), NotJson> {
    let mut de = serde_json::Deserializer::from_str(text);
    let pointers = [Some(first), second];
    let heads = pointers.map(|p| p.and_then(|p| p.head.first().map(String::as_str)));
    let (top, skip) = if heads[0].is_some() && heads[1].is_some() == second.is_some() {
        (Members(heads).deserialize(&mut de).map_err(|_| NotJson)?, 1)
    } else {
        // A pointer that starts with `*` starts from the whole document.
        let whole = <&RawValue>::deserialize(&mut de).map_err(|_| NotJson)?;
        ([Some(whole); 2], 0)
    };
    de.end().map_err(|_| NotJson)?;
    for (i, (p, at)) in pointers.into_iter().zip(top).enumerate() {
        if let (Some(p), Some(at)) = (p, at) {
            p.follow(at, skip, &mut |v| found(i, v));
        }
    }
    Ok(())
}

/// Follows `tokens` down from a raw value.
fn descend<'a>(mut at: &'a RawValue, tokens: &[String]) -> Option<&'a RawValue> {
    for t in tokens {
        let [v, _] = Members([Some(t), None])
            .deserialize(&mut serde_json::Deserializer::from_str(at.get()))
            .ok()?;
        at = v?;
    }
    Some(at)
}

/// The members (or elements, for numeric tokens) named by up to two tokens, as raw text, in one
/// pass over an object or array.
struct Members<'t>([Option<&'t str>; 2]);

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = [Option<&'de RawValue>; 2];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Which of the tokens a key equals (a bit each), without allocating the key.
struct KeyIs<'t>([Option<&'t str>; 2]);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = [bool; 2];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<[bool; 2], D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = [bool; 2];
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<[bool; 2], E> {
        Ok(self.0.map(|t| t == Some(v)))
    }
}

/// Scalars hold no members: a pointer into one finds nothing (it is still valid JSON).
macro_rules! nothing_inside {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> { Ok(Default::default()) })*
    };
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = [Option<&'de RawValue>; 2];
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    nothing_inside!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok([None; 2])
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [None; 2];
        while let Some(hits) = map.next_key_seed(KeyIs(self.0))? {
            match hits {
                [false, false] => {
                    map.next_value::<IgnoredAny>()?;
                }
                hits => {
                    let v = map.next_value::<&RawValue>()?;
                    for (f, hit) in found.iter_mut().zip(hits) {
                        if hit && f.is_none() {
                            *f = Some(v);
                        }
                    }
                }
            }
        }
        Ok(found)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let want = self.0.map(|t| t.and_then(|t| t.parse::<usize>().ok()));
        let mut found = [None; 2];
        for i in 0.. {
            if want.contains(&Some(i)) {
                let Some(v) = seq.next_element::<&RawValue>()? else {
                    break;
                };
                for (f, w) in found.iter_mut().zip(want) {
                    if w == Some(i) {
                        *f = Some(v);
                    }
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
        }
        Ok(found)
    }
}

/// Every element of an array, or every value of an object, as raw text.
struct Items;

impl<'de> DeserializeSeed<'de> for Items {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    nothing_inside!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while map.next_key::<IgnoredAny>()?.is_some() {
            out.push(map.next_value::<&RawValue>()?);
        }
        Ok(out)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<&RawValue>()? {
            out.push(v);
        }
        Ok(out)
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            },
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
fn walk<'a>(mut v: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    for t in tokens {
        v = match v {
            Value::Object(map) => map.get(t.as_str())?,
            Value::Array(items) => items.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the pointer finds, by both walks: over a parsed value and over the raw text.
    fn all(p: &str, doc: &Value) -> Vec<Value> {
        let pointer = Pointer::parse(p).unwrap();
        let mut out = Vec::new();
        pointer.visit(doc, |v| out.push(v.clone()));
        let mut raw = Vec::new();
        let text = doc.to_string();
        pointer
            .visit_text(&text, |v| {
                raw.push(serde_json::from_str::<Value>(v.get()).unwrap())
            })
            .unwrap();
        assert_eq!(out, raw, "{p} in {text}");
        out
    }

    #[test]
    fn the_raw_walk_validates_the_whole_document() {
        let p = Pointer::parse("/a").unwrap();
        for bad in [
            r#"{"a":1,"b":}"#,
            r#"{"a":1} trailing"#,
            "<html>",
            "",
            r#"{"a":1"#,
            r#"[1,2"#,
        ] {
            assert!(p.visit_text(bad, |_| {}).is_err(), "{bad}");
        }
        let mut n = 0;
        assert!(p
            .visit_text(r#" {"b":[1,{"c":"\u00e9"}],"a":"x"} "#, |_| n += 1)
            .is_ok());
        assert_eq!(n, 1);
        assert!(Pointer::parse("/a/b")
            .unwrap()
            .visit_text(r#"{"a":"str"}"#, |_| panic!())
            .is_ok());
    }

    #[test]
    fn plain_pointers_follow_rfc_6901() {
        let doc = json!({"a": {"b/c": [10, 20], "m~n": true}, "": 1});
        assert_eq!(all("/a/b~1c/1", &doc), vec![json!(20)]);
        assert_eq!(all("/a/m~0n", &doc), vec![json!(true)]);
        assert_eq!(all("/", &doc), vec![json!(1)]);
        assert!(all("/a/nope", &doc).is_empty());
        assert!(all("/a/b~1c/9", &doc).is_empty());
    }

    #[test]
    fn a_star_visits_every_element() {
        let doc = json!({"predictions": [{"label": "cat"}, {"label": "dog"}, {"x": 1}]});
        assert_eq!(
            all("/predictions/*/label", &doc),
            vec![json!("cat"), json!("dog")]
        );
        let doc = json!({"scores": {"a": 0.1, "b": 0.9}});
        assert_eq!(all("/scores/*", &doc).len(), 2);
        assert!(all("/predictions/*/label", &json!({"predictions": 3})).is_empty());
    }

    #[test]
    fn bad_pointers_say_why() {
        assert!(Pointer::parse("prediction").is_err());
        assert!(Pointer::parse("").is_err());
        assert!(Pointer::parse("/a/*/b/*").is_err());
        assert!(Pointer::parse("/a~2").is_err());
    }
}
