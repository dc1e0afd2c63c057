//! Routes over real sockets: requests land where their match says (path prefix, host and header,
//! the JSON body's model field), bodies reach the models byte for byte however they are framed,
//! what no route takes is a 404 that reaches no model, and an OpenAI client streams from two
//! model names behind one path.

mod common;

use std::process::Command;

use common::*;

/// Models: 0 sentiment-blue, 1 sentiment-green, 2 ranker, 3 llama, 4 mistral, 5 fallback.
fn models() -> Models {
    let mut m = Models::new();
    for v in [
        "sent-v1", "sent-v2", "ranker", "llama", "mistral", "fallback",
    ] {
        let i = m.start(v);
        m.servers[i].controls.record_requests();
    }
    m
}

fn policy(m: &Models, catch_all: bool) -> String {
    let mut p = format!(
        "listen: {{listen}}
admin: {{admin}}
routing: {{max_body: 512KiB}}
routes:
  - name: sentiment
    match: {{path_prefix: /v1/sentiment}}
    colors: {{blue: {{backends: [{{addr: {}}}]}}, green: {{backends: [{{addr: {}}}]}}}}
    stable: blue
    split: {{blue: 50, green: 50}}
    affinity: {{}}
  - name: ranker
    match: {{host: ranker.internal, headers: {{x-tenant: acme}}}}
    colors: {{blue: {{backends: [{{addr: {}}}]}}}}
  - name: llama
    match: {{path_prefix: /v1/chat/completions, model: llama-3-8b}}
    colors: {{stable: {{backends: [{{addr: {}}}]}}}}
  - name: mistral
    match: {{path_prefix: /v1/chat/completions, model: mistral-7b}}
    colors: {{stable: {{backends: [{{addr: {}}}]}}}}
",
        m.addr(0),
        m.addr(1),
        m.addr(2),
        m.addr(3),
        m.addr(4)
    );
    if catch_all {
        p.push_str(&format!(
            "  - name: fallback\n    colors: {{blue: {{backends: [{{addr: {}}}]}}}}\n",
            m.addr(5)
        ));
    }
    p
}

/// The version of the model that answered (the stand-in model server's header).
fn version(r: &Resp) -> &str {
    r.header("x-model-version").unwrap_or("none")
}

/// `GET path` with this `Host` (the harness's requests carry the proxy's address).
fn get_as(addr: std::net::SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    parse(&raw(addr, req.as_bytes()).unwrap()).unwrap()
}

fn chat(model: &str, padding: usize) -> Vec<u8> {
    format!(
        "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}],\"model\":\"{model}\",\"stream\":false}}",
        "a".repeat(padding)
    )
    .into_bytes()
}

#[test]
fn each_request_lands_where_its_routes_match_says() {
    let m = models();
    let p = Proxy::start(&policy(&m, true));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = get(p.addr, "/v1/sentiment/score?text=good", &[]).unwrap();
        assert_eq!(r.status, 200);
        seen.insert(version(&r).to_owned());
        assert!(
            r.pinned("blueshift-sentiment").is_some(),
            "a route's cookie defaults to blueshift-<route>: {r:?}"
        );
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["sent-v1", "sent-v2"]);
    // Segment-wise: /v1/sentimental is not under /v1/sentiment.
    assert_eq!(
        version(&get(p.addr, "/v1/sentimental", &[]).unwrap()),
        "fallback"
    );
    let ranker = get_as(
        p.addr,
        "Ranker.Internal:443",
        "/rank",
        &[("x-tenant", "acme")],
    );
    assert_eq!(
        version(&ranker),
        "ranker",
        "hosts match without case or port"
    );
    let other_tenant = get_as(
        p.addr,
        "ranker.internal",
        "/rank",
        &[("x-tenant", "globex")],
    );
    assert_eq!(
        version(&other_tenant),
        "fallback",
        "every condition of a match must hold"
    );
    let no_tenant = get_as(p.addr, "ranker.internal", "/rank", &[]);
    assert_eq!(version(&no_tenant), "fallback");
    for (model, want) in [
        ("llama-3-8b", "llama"),
        ("mistral-7b", "mistral"),
        ("gpt-9", "fallback"),
    ] {
        let r = request(
            p.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            &chat(model, 10),
        )
        .unwrap();
        assert_eq!((r.status, version(&r)), (200, want), "{model}: {r:?}");
    }
    // The metrics count each route's colors under its name.
    p.wait_metrics(&[
        "blueshift_requests_total{color=\"stable\",route=\"llama\",status=\"200\"} 1",
        "blueshift_requests_total{color=\"stable\",route=\"mistral\",status=\"200\"} 1",
        "blueshift_requests_total{color=\"blue\",route=\"ranker\",status=\"200\"} 1",
        "blueshift_color_weight{color=\"green\",route=\"sentiment\"} 50",
    ]);
}

#[test]
fn bodies_reach_the_model_byte_for_byte_however_they_are_framed() {
    let m = models();
    let p = Proxy::start(&policy(&m, true));
    let url = format!("http://{}/v1/chat/completions", p.addr);
    let dir = tempfile::tempdir().unwrap();
    // (body, curl's extra arguments, the model that must get it)
    let cases: Vec<(Vec<u8>, Vec<&str>, usize)> = vec![
        (chat("llama-3-8b", 1_000), vec![], 3),
        // Past Pingora's 64 KiB retry buffer: held and given back in front of it.
        (chat("mistral-7b", 256 * 1024), vec![], 4),
        (
            chat("llama-3-8b", 256 * 1024),
            vec!["-H", "Expect: 100-continue"],
            3,
        ),
        // A body of unknown length is read for its model while it can still be replayed.
        (
            chat("mistral-7b", 10_000),
            vec!["-H", "Transfer-Encoding: chunked"],
            4,
        ),
        // Past that it is not matched (the catch-all takes it), and still arrives whole.
        (
            chat("mistral-7b", 100_000),
            vec!["-H", "Transfer-Encoding: chunked"],
            5,
        ),
        // Over routing.max_body: not read at all, passed on as it comes.
        (chat("llama-3-8b", 600 * 1024), vec![], 5),
        // Not JSON, JSON without the field, a truncated document: other routes may take them.
        (b"model=llama-3-8b".to_vec(), vec![], 5),
        (b"{\"messages\": []}".to_vec(), vec![], 5),
        (
            b"{\"model\": \"llama-3-8b\", \"messages\": [".to_vec(),
            vec![],
            5,
        ),
        (b"[{\"model\": \"llama-3-8b\"}]".to_vec(), vec![], 5),
    ];
    for (i, (body, extra, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("body-{i}"));
        std::fs::write(&file, body).unwrap();
        let before = m.servers[*want].controls.recorded().len();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "case {i}: {out:?}"
        );
        let got = m.servers[*want].controls.recorded();
        assert_eq!(got.len(), before + 1, "case {i} went to model {want}");
        let last = got.last().unwrap();
        assert_eq!(last.body.len(), body.len(), "case {i}: the body's length");
        assert!(last.body == *body, "case {i}: the body, byte for byte");
    }
    // Over HTTP/2 (prior knowledge) too: a stream's body is read and given back the same way.
    let body = dir.path().join("h2");
    std::fs::write(&body, chat("mistral-7b", 20_000)).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "10",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(&url)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.starts_with("http/2 200") && head.contains("x-model-version: mistral"),
        "{head}"
    );
    assert_eq!(
        m.servers[4].controls.recorded().last().unwrap().body,
        std::fs::read(&body).unwrap()
    );
}

#[test]
fn what_no_route_takes_is_a_404_that_reaches_no_model() {
    let m = models();
    let p = Proxy::start(&policy(&m, false));
    let before: Vec<usize> = m
        .servers
        .iter()
        .map(|s| s.controls.recorded().len())
        .collect();
    let r = get(p.addr, "/nowhere", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "no route for this request\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        &chat("gpt-9", 10),
    )
    .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let after: Vec<usize> = m
        .servers
        .iter()
        .map(|s| s.controls.recorded().len())
        .collect();
    assert_eq!(before, after, "no model got a request");
    p.wait_metrics(&["blueshift_requests_total{color=\"none\",route=\"none\",status=\"404\"} 2"]);
    // The proxy keeps serving the routes it has.
    let r = request(
        p.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        &chat("llama-3-8b", 10),
    )
    .unwrap();
    assert_eq!(version(&r), "llama");
}

#[test]
fn an_openai_client_streams_from_two_model_names_behind_one_path() {
    let m = models();
    let p = Proxy::start(&policy(&m, false));
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/openai_chat.py"
        ))
        .arg(format!("http://{}/v1", p.addr))
        .args(["llama-3-8b", "mistral-7b"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // One line per model and mode: the model, the pool's version, the color, the tokens.
    for want in [
        "llama-3-8b stream llama stable tok0 tok1 tok2 stop",
        "mistral-7b stream mistral stable tok0 tok1 tok2 stop",
        "llama-3-8b whole llama stable tok0 tok1 tok2 stop",
        "mistral-7b whole mistral stable tok0 tok1 tok2 stop",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} not in:\n{text}");
    }
}
