//! From text to [`Policy`], collecting every problem rather than stopping at the first.
//!
//! serde stops at the first structural error (an unknown key, a list where a string belongs).
//! To still report them all, each such error's node is cut out of the parsed tree and the
//! document is deserialized again, a bounded number of times; the semantic checks in
//! `validate` then run over whatever remains.

use std::path::Path;

use marked_yaml::{LoadError, LoaderOptions, Marker, Node};

use super::file::PolicyFile;
use super::{validate, Policy, Problem, Problems};

/// More structural errors than this in one file are not worth listing one by one.
const MAX_STRUCTURAL_ERRORS: usize = 32;

/// Reads and parses a policy file.
pub fn read_file(path: &Path) -> Result<Policy, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            at: None,
            message: format!("cannot read {}: {}", path.display(), io_reason(&e)),
        }])
    })?;
    parse(&text)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Parses and validates policy text.
pub fn parse(text: &str) -> Result<Policy, Problems> {
    if text.trim().is_empty() {
        return Err(Problems(vec![Problem {
            at: None,
            message: "the policy file is empty".into(),
        }]));
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let mut node = marked_yaml::parse_yaml_with_options(0, text, options)
        .map_err(|e| Problems(vec![load_problem(&e)]))?;

    let mut problems = Vec::new();
    let mut cut_keys: Vec<String> = Vec::new();
    let mut file = None;
    for _ in 0..MAX_STRUCTURAL_ERRORS {
        match marked_yaml::from_node::<PolicyFile>(&node) {
            Ok(f) => {
                file = Some(f);
                break;
            }
            Err(e) => {
                // An unknown key's error spans its whole mapping: find the key itself instead.
                let (mark, message) = match &*e {
                    marked_yaml::Error::UnknownFieldError(field, expected, _) => {
                        let segments = path_segments(e.path().unwrap_or(""));
                        match find_key(
                            &node,
                            &segments[..segments.len().saturating_sub(1)],
                            field,
                            "",
                        ) {
                            Some((m, at)) => (Some(m), unknown_key(field, expected, &at)),
                            None => (e.start_mark(), unknown_key(field, expected, "")),
                        }
                    }
                    _ => (e.start_mark(), structural_message(&e)),
                };
                problems.push(Problem {
                    at: mark.map(|m| (m.line(), m.column())),
                    message,
                });
                match mark.and_then(|m| cut(&mut node, &m)) {
                    Some(Some(top_key)) => cut_keys.push(top_key),
                    Some(None) => {}
                    None => break,
                }
            }
        }
    }
    let policy = file.and_then(|f| validate::validate(f, &mut problems));
    // A key cut for a structural error was reported already; do not also call it missing.
    problems.retain(|p| {
        !cut_keys
            .iter()
            .any(|k| p.message.starts_with(&format!("`{k}` is required")))
    });
    problems.sort_by_key(|p| p.at.unwrap_or((0, 0)));
    match policy {
        Some(p) if problems.is_empty() => Ok(p),
        _ => Err(Problems(problems)),
    }
}

fn load_problem(e: &LoadError) -> Problem {
    let (mark, message) = match e {
        LoadError::TopLevelMustBeMapping(m) => {
            (Some(*m), "the policy must be a mapping of keys".into())
        }
        LoadError::TopLevelMustBeSequence(m) => (Some(*m), "unexpected list at top level".into()),
        LoadError::UnexpectedAnchor(m) => {
            (Some(*m), "anchors and aliases are not supported".into())
        }
        LoadError::MappingKeyMustBeScalar(m) => (Some(*m), "keys must be plain strings".into()),
        LoadError::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported".into()),
        LoadError::ScanError(m, s) => (Some(*m), format!("invalid YAML: {}", s.info())),
        LoadError::DuplicateKey(d) => (
            d.key.span().start().copied(),
            format!("duplicate key `{}`", d.key.as_str()),
        ),
        #[allow(unreachable_patterns)]
        other => (None, format!("invalid YAML: {other}")),
    };
    Problem {
        at: mark.map(|m| (m.line(), m.column())),
        message,
    }
}

fn unknown_key(field: &str, expected: &[&str], at: &str) -> String {
    let mut s = format!("unknown key `{field}`");
    if !at.is_empty() {
        s.push_str(&format!(" in {at}"));
    }
    if !expected.is_empty() {
        s.push_str(&format!(" (expected {})", expected.join(", ")));
    }
    s
}

/// `colors.?.backends[0].addr` → `["colors", "?", "backends", "0", "addr"]`.
fn path_segments(path: &str) -> Vec<String> {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty() && !s.starts_with("$___"))
        .map(str::to_owned)
        .collect()
}

/// Follows `segments` (`?` matches any key) to a mapping that holds `field`; returns the key's
/// marker and the readable path of that mapping.
fn find_key(node: &Node, segments: &[String], field: &str, at: &str) -> Option<(Marker, String)> {
    let join = |next: &str| {
        if at.is_empty() {
            next.to_owned()
        } else {
            format!("{at}.{next}")
        }
    };
    match (node, segments.split_first()) {
        (Node::Mapping(map), None) => map
            .keys()
            .find(|k| k.as_str() == field)
            .and_then(|k| k.span().start().copied())
            .map(|m| (m, at.to_owned())),
        (Node::Mapping(map), Some((seg, rest))) => map
            .iter()
            .filter(|(k, _)| seg == "?" || k.as_str() == seg)
            .find_map(|(k, v)| find_key(v, rest, field, &join(k.as_str()))),
        (Node::Sequence(seq), Some((seg, rest))) => {
            let i: usize = seg.parse().ok()?;
            find_key(seq.get(i)?, rest, field, &format!("{at}[{i}]"))
        }
        _ => None,
    }
}

/// serde's messages, reworded into the house style and prefixed with where in the policy.
fn structural_message(e: &marked_yaml::FromNodeError) -> String {
    let inner = match &**e {
        marked_yaml::Error::IntegerParseFailure(..) => "expected a whole number".into(),
        marked_yaml::Error::FloatParseFailure(..) => "expected a number".into(),
        marked_yaml::Error::NotBoolean(_) => "expected true or false".into(),
        other => {
            let text = other
                .to_string()
                .replace("$___::marked_data::serde::Spanned<T>", "value");
            // serde says "invalid type: map, expected a string"; lead with what was expected.
            match text
                .strip_prefix("invalid type: ")
                .and_then(|t| t.split_once(", expected "))
            {
                Some((found, expected)) => format!(
                    "expected {expected}, found {}",
                    found
                        .replace("map", "a mapping")
                        .replace("sequence", "a list")
                ),
                None => text,
            }
        }
    };
    match e.path().map(clean_path) {
        Some(path) if !path.is_empty() => format!("{path}: {inner}"),
        _ => inner,
    }
}

/// serde_path_to_error names `Spanned`'s internals; users only need the YAML path.
fn clean_path(path: &str) -> String {
    path.split('.')
        .filter(|seg| !seg.starts_with("$___") && *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// Removes the mapping entry or list element starting at `mark`: `None` if there is none, else
/// the top-level key removed, if it was one.
fn cut(node: &mut Node, mark: &Marker) -> Option<Option<String>> {
    let top = match node {
        Node::Mapping(map) => map
            .iter()
            .find(|(k, v)| starts_at(k.span().start(), mark) || starts_at(v.span().start(), mark))
            .map(|(k, _)| k.as_str().to_owned()),
        _ => None,
    };
    cut_inner(node, mark).then_some(top)
}

fn starts_at(n: Option<&Marker>, mark: &Marker) -> bool {
    n.is_some_and(|n| n.line() == mark.line() && n.column() == mark.column())
}

fn cut_inner(node: &mut Node, mark: &Marker) -> bool {
    let same = |n: Option<&Marker>| starts_at(n, mark);
    match node {
        Node::Mapping(map) => {
            let before = map.len();
            map.retain(|k, v| !(same(k.span().start()) || same(v.span().start())));
            if map.len() != before {
                return true;
            }
            map.iter_mut().any(|(_, v)| cut_inner(v, mark))
        }
        Node::Sequence(seq) => {
            if let Some(i) = seq.iter().position(|n| same(n.span().start())) {
                seq.remove(i);
                return true;
            }
            seq.iter_mut().any(|n| cut_inner(n, mark))
        }
        Node::Scalar(_) => false,
    }
}
