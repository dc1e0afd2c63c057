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

/// A valid policy, and what is worth a warning in it (a route that can never match).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The policy.
    pub policy: Policy,
    /// Each with `line:column`, in file order.
    pub warnings: Vec<Problem>,
}

/// More structural errors than this in one file are not worth listing one by one.
const MAX_STRUCTURAL_ERRORS: usize = 32;

/// Reads and parses a policy file.
pub fn read_file(path: &Path) -> Result<Policy, Problems> {
    read_checked(path).map(|c| c.policy)
}

/// Reads and parses a policy file, with its warnings.
pub fn read_checked(path: &Path) -> Result<Checked, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            at: None,
            message: format!("cannot read {}: {}", path.display(), io_reason(&e)),
        }])
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    check_in(&text, dir)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Parses and validates policy text; relative paths in it are relative to the current directory.
pub fn parse(text: &str) -> Result<Policy, Problems> {
    parse_in(text, Path::new("."))
}

/// Parses and validates policy text whose relative paths are relative to `dir`.
pub fn parse_in(text: &str, dir: &Path) -> Result<Policy, Problems> {
    check_in(text, dir).map(|c| c.policy)
}

/// [`parse_in`], with the warnings of a valid policy.
pub fn check_in(text: &str, dir: &Path) -> Result<Checked, Problems> {
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
    // The YAML paths cut out of the tree, each reported once as a structural problem.
    let mut cut_paths: Vec<String> = Vec::new();
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
                        let parent = &segments[..segments.len().saturating_sub(1)];
                        let holds = |n: &Node| {
                            n.as_mapping()
                                .is_some_and(|m| m.get(field.as_str()).is_some())
                        };
                        let key = find_node(&node, parent, &holds)
                            .and_then(|map| map.as_mapping()?.keys().find(|k| k.as_str() == field))
                            .and_then(|k| k.span().start().copied());
                        match key {
                            Some(m) => {
                                let at = locate(&node, &m, String::new())
                                    .map(|(path, _)| path)
                                    .unwrap_or_default();
                                let at = at.strip_suffix(field.as_str()).unwrap_or(&at);
                                (
                                    Some(m),
                                    unknown_key(field, expected, at.trim_end_matches('.')),
                                )
                            }
                            None => (e.start_mark(), unknown_key(field, expected, "")),
                        }
                    }
                    _ => {
                        // marked-yaml's mark of a type error may stop short of the node it is
                        // about (at the list entry holding it, or before a spanned key: colors,
                        // split, whose path has `?`): follow the path to the node ourselves.
                        // Parse errors carry their own mark.
                        let segments = path_segments(e.path().unwrap_or(""));
                        let mark = match invalid_type_found(&e) {
                            Some(found) => find_node(&node, &segments, &|n| is_kind(n, &found))
                                .and_then(|n| n.span().start().copied()),
                            _ => None,
                        }
                        .or(e.start_mark());
                        let found = mark.and_then(|m| locate(&node, &m, String::new()));
                        (mark, structural_message(&e, found))
                    }
                };
                problems.push(Problem {
                    at: mark.map(|m| (m.line(), m.column())),
                    message,
                });
                let Some(mark) = mark else { break };
                let path = locate(&node, &mark, String::new()).map(|(path, _)| path);
                if !cut(&mut node, &mark) {
                    break;
                }
                cut_paths.extend(path);
            }
        }
    }
    let mut warnings = Vec::new();
    let policy = file.and_then(|f| validate::validate(f, dir, &mut problems, &mut warnings));
    problems.retain(|p| {
        !cut_paths
            .iter()
            .any(|cut| follows_from_cut(&node, cut, &p.message))
    });
    problems.sort_by_key(|p| p.at.unwrap_or((0, 0)));
    warnings.sort_by_key(|p| p.at.unwrap_or((0, 0)));
    match policy {
        Some(policy) if problems.is_empty() => Ok(Checked { policy, warnings }),
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

/// Whether a validation problem only restates that a part cut out for a structural error is
/// gone: the key is not also "required", and with a color cut, nothing also names "no color".
/// A cut inside `routes[i]` is about that route's problems only (`route `name`: ...`).
fn follows_from_cut(node: &Node, cut: &str, message: &str) -> bool {
    if let Some(rest) = cut.strip_prefix("routes[") {
        let Some((i, inner)) = rest.split_once(']') else {
            return false;
        };
        let name = node.as_mapping().and_then(|m| {
            m.get("routes")?
                .as_sequence()?
                .get(i.parse::<usize>().ok()?)?
                .as_mapping()?
                .get("name")?
                .as_scalar()
                .map(|s| s.as_str().trim().to_owned())
        });
        let prefix = match name {
            Some(n) => format!("route `{n}`: "),
            None => format!("routes[{i}]: "),
        };
        let inner = inner.trim_start_matches('.');
        return match message.strip_prefix(&prefix) {
            Some(m) if inner.is_empty() => !m.is_empty(),
            Some(m) => follows_from_cut(node, inner, m),
            None => false,
        };
    }
    if message.starts_with(&format!("`{cut}` is required")) {
        return true;
    }
    match cut.strip_prefix("colors") {
        Some("") => message.contains("there is no color"),
        Some(rest) => {
            let color = rest.trim_start_matches('.').split('.').next().unwrap_or("");
            message.contains("there is no color")
                || message.starts_with(&format!("color `{color}`"))
        }
        None => false,
    }
}

/// For "invalid type: map, expected a string", what was found: `map`.
fn invalid_type_found(e: &marked_yaml::FromNodeError) -> Option<String> {
    let text = e.to_string();
    let (_, rest) = text.split_once("invalid type: ")?;
    let (found, _) = rest.split_once(", expected ")?;
    Some(found.to_owned())
}

/// Whether `node` is of the kind serde named (`map`, `sequence`, or a scalar's type).
fn is_kind(node: &Node, found: &str) -> bool {
    match found {
        "map" => matches!(node, Node::Mapping(_)),
        "sequence" => matches!(node, Node::Sequence(_)),
        _ => matches!(node, Node::Scalar(_)),
    }
}

/// Follows `segments` (`?` matches any key) to the first node `accept` takes.
fn find_node<'a>(
    node: &'a Node,
    segments: &[String],
    accept: &dyn Fn(&Node) -> bool,
) -> Option<&'a Node> {
    match (node, segments.split_first()) {
        (n, None) => accept(n).then_some(n),
        (Node::Mapping(map), Some((seg, rest))) => map
            .iter()
            .filter(|(k, _)| seg == "?" || k.as_str() == seg)
            .find_map(|(_, v)| find_node(v, rest, accept)),
        (Node::Sequence(seq), Some((seg, rest))) => {
            find_node(seq.get(seg.parse::<usize>().ok()?)?, rest, accept)
        }
        _ => None,
    }
}

/// The YAML path of the deepest node starting at `mark` (`split.green`,
/// `colors.blue.backends[0]`) and its text when it is a scalar. marked-yaml starts a block mapping
/// at its first colon, where a flow value may start too: the value is the one meant.
fn locate(node: &Node, mark: &Marker, path: String) -> Option<(String, Option<String>)> {
    let join = |seg: &str| match path.is_empty() {
        true => seg.to_owned(),
        false => format!("{path}.{seg}"),
    };
    let inner = match node {
        Node::Mapping(map) => map.iter().find_map(|(k, v)| {
            let here = join(k.as_str());
            locate(v, mark, here.clone())
                .or_else(|| starts_at(k.span().start(), mark).then_some((here, None)))
        }),
        Node::Sequence(seq) => seq
            .iter()
            .enumerate()
            .find_map(|(i, n)| locate(n, mark, format!("{path}[{i}]"))),
        Node::Scalar(_) => None,
    };
    inner.or_else(|| {
        starts_at(node.span().start(), mark).then(|| match node {
            Node::Scalar(s) => (path, Some(s.as_str().to_owned())),
            _ => (path, None),
        })
    })
}

/// serde's messages, reworded into the house style and prefixed with where in the policy:
/// `found` is the path and text of the offending node, when it could be located.
fn structural_message(
    e: &marked_yaml::FromNodeError,
    found: Option<(String, Option<String>)>,
) -> String {
    // serde's own path is exact unless it went through a spanned key (`?`); then ours is.
    let (path, text) = match e.path() {
        Some(p) if !p.contains('?') => {
            let path = clean_path(p);
            let text = found
                .filter(|(at, _)| *at == path)
                .and_then(|(_, text)| text);
            (path, text)
        }
        _ => found.unwrap_or_default(),
    };
    let not_a = |what: &str| match &text {
        Some(t) => format!("expected {what}, found `{t}`"),
        None => format!("expected {what}"),
    };
    let inner = match &**e {
        marked_yaml::Error::IntegerParseFailure(..) => not_a("a whole number"),
        marked_yaml::Error::FloatParseFailure(..) => not_a("a number"),
        marked_yaml::Error::NotBoolean(_) => not_a("true or false"),
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
    match path.is_empty() {
        true => inner,
        false => format!("{path}: {inner}"),
    }
}

/// serde_path_to_error names `Spanned`'s internals; users only need the YAML path.
fn clean_path(path: &str) -> String {
    path.split('.')
        .filter(|seg| !seg.starts_with("$___") && *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
}

fn starts_at(n: Option<&Marker>, mark: &Marker) -> bool {
    n.is_some_and(|n| n.line() == mark.line() && n.column() == mark.column())
}

/// Removes the deepest mapping entry or list element starting at `mark` (the node `locate`
/// names); false if there is none.
fn cut(node: &mut Node, mark: &Marker) -> bool {
    let same = |n: Option<&Marker>| starts_at(n, mark);
    match node {
        Node::Mapping(map) => {
            if map.iter_mut().any(|(_, v)| cut(v, mark)) {
                return true;
            }
            let before = map.len();
            map.retain(|k, v| !(same(k.span().start()) || same(v.span().start())));
            map.len() != before
        }
        Node::Sequence(seq) => {
            if seq.iter_mut().any(|n| cut(n, mark)) {
                return true;
            }
            match seq.iter().position(|n| same(n.span().start())) {
                Some(i) => {
                    seq.remove(i);
                    true
                }
                None => false,
            }
        }
        Node::Scalar(_) => false,
    }
}
