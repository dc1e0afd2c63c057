//! A corpus we did not write: the request cases of AWS's `http_desync_guardian` (its
//! `tests/*.yaml`, every header and line ending as the crate's authors wrote them) sent to
//! blueshift byte for byte. Every case the corpus rates Severe must be refused, and every
//! request blueshift forwards, as the origin received it, must be rated Compliant by the
//! guardian's own classifier.

mod common;

use std::path::PathBuf;

use common::origin::Recorder;
use common::*;
use http_desync_guardian::request_analyzer::HttpRequestData;
use http_desync_guardian::RequestSafetyTier;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    uri: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    headers: Vec<Header>,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Expected {
    tier: String,
}

/// The corpus files, from the crate's source as cargo fetched it.
fn corpus_dir() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http_desync_guardian")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("http_desync_guardian is a dev-dependency");
    PathBuf::from(manifest).parent().unwrap().join("tests")
}

fn load() -> Vec<(String, Case)> {
    let mut cases = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let options = marked_yaml::LoaderOptions::default().toplevel_sequence();
        let parsed: Vec<Case> = marked_yaml::from_yaml_with_options(0, &text, options)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        cases.extend(parsed.into_iter().map(|c| (file.clone(), c)));
    }
    cases
}

/// The case's request, byte for byte, with a Host header when it has none: blueshift refuses an
/// HTTP/1.1 request without one (RFC 9112 section 3.2), and the corpus, which classifies framing,
/// leaves it out.
fn raw(case: &Case) -> Vec<u8> {
    let mut r = match case.version.is_empty() {
        true => format!("{} {}\r\n", case.method, case.uri),
        false => format!("{} {} {}\r\n", case.method, case.uri, case.version),
    };
    if !case
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("host"))
    {
        r.push_str("Host: models.internal\r\n");
    }
    for h in &case.headers {
        r.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[test]
fn severe_cases_are_refused_and_what_is_forwarded_is_compliant() {
    let origin = Recorder::start();
    let p = Proxy::start(&format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\ntimeouts: {{client_header: 2s, client_body: 2s}}\n",
        origin.addr
    ));
    let cases = load();
    assert!(cases.len() > 100, "{} cases", cases.len());
    let (mut severe, mut forwarded, mut refused, mut rewritten) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    for (file, case) in &cases {
        let sent = raw(case);
        let (status, got) = origin.exchange(p.addr, &sent);
        forwarded += usize::from(!got.is_empty());
        refused += usize::from(got.is_empty() && status.is_none_or(|s| s >= 400));
        let line = |h: &[u8]| h.split(|b| *b == b'\n').next().unwrap_or_default().to_vec();
        if case.expected.tier == "Severe" {
            severe += 1;
            // Refused, or passed on only as Pingora rewrites it: its request target
            // percent-encoded, which the check below must then rate.
            let as_sent = got.iter().any(|h| line(h) == line(&sent));
            let answered = got.is_empty() && status.is_some_and(|s| s < 400);
            rewritten += usize::from(!got.is_empty() && !as_sent);
            if as_sent || answered {
                problems.push(format!(
                    "{file}: severe `{}` was not refused (status {status:?})",
                    case.name
                ));
            }
        }
        for head in got {
            let verdict = HttpRequestData::analyze_raw_request(&head);
            if verdict.tier != RequestSafetyTier::Compliant {
                problems.push(format!(
                    "{file}: `{}` was forwarded as {:?} ({:?}): {:?}",
                    case.name,
                    verdict.tier,
                    verdict.reason,
                    String::from_utf8_lossy(&head)
                ));
            }
        }
    }
    eprintln!(
        "{} cases: {severe} severe ({rewritten} forwarded with the target percent-encoded), \
         {forwarded} forwarded, {refused} refused",
        cases.len()
    );
    assert!(severe >= 20, "{severe} severe cases");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // And a plain request still goes through.
    assert_eq!(get(p.addr, "/predict", &[]).unwrap().status, 200);
}
