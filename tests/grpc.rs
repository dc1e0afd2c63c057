//! gRPC model servers behind blueshift: real grpcio servers and clients (Python, spawned by the
//! tests), h2c and h2 colors, gRPC health checks, and the gRPC error rule.

mod common;

use common::peers::*;
use common::*;
use serde_json::Value;

/// Two gRPC colors over h2c, checked with gRPC's health protocol.
fn grpc_policy(blue: &[&PyServer], green: &[&PyServer], split: (u32, u32), extra: &str) -> String {
    let list = |s: &[&PyServer]| {
        s.iter()
            .map(|p| format!("      - addr: {}\n", p.addr))
            .collect::<String>()
    };
    format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    protocol: h2c\n    health: {{grpc: true}}\n    backends:\n{}  green:\n    protocol: h2c\n    health: {{grpc: true, service: model.Predictor}}\n    backends:\n{}stable: blue\nsplit: {{blue: {}, green: {}}}\nhealth: {{interval: 200ms, timeout: 500ms}}\n{extra}",
        list(blue),
        list(green),
        split.0,
        split.1
    )
}

fn codes(calls: &[Value]) -> Vec<&str> {
    calls.iter().map(|c| c["code"].as_str().unwrap()).collect()
}

#[test]
fn grpc_calls_pass_through_split_per_call_with_metadata_and_trailers() {
    let (blue, green) = (PyServer::grpc("v1", None), PyServer::grpc("v2", None));
    let extra = "override_header: x-blueshift-color\naffinity: {header: x-session-id}\n";
    let p = Proxy::start(&grpc_policy(&[&blue], &[&green], (50, 50), extra));
    let s = p.status();
    assert_eq!(s["colors"]["green"]["protocol"], "h2c");
    let target = p.addr.to_string();
    // 60 unary calls on one channel (one HTTP/2 connection), each routed on its own.
    let calls = grpc_client(&target, "unary", 60, &["--meta", "x-request-id=abc"]);
    assert!(codes(&calls).iter().all(|c| *c == "OK"), "{calls:?}");
    let green_calls = calls.iter().filter(|c| c["color"] == "green").count();
    assert!(
        (15..=45).contains(&green_calls),
        "{green_calls} of 60 to green at 50/50"
    );
    for c in &calls {
        // x-blueshift-color arrives as initial metadata, next to the model's own.
        let version = if c["color"] == "green" { "v2" } else { "v1" };
        assert_eq!(c["version"], version, "{c}");
        assert_eq!(
            c["body"]["metadata"]["x-request-id"], "abc",
            "metadata reaches the model"
        );
        assert_eq!(
            c["trailers"]["x-model-trailer"], "done",
            "trailers reach the client"
        );
    }
    // Streaming calls, both ways.
    for c in grpc_client(&target, "stream", 6, &[]) {
        assert_eq!(c["code"], "OK");
        assert_eq!(c["body"].as_array().unwrap().len(), 5, "{c}");
    }
    for c in grpc_client(&target, "chat", 4, &[]) {
        assert_eq!(
            (c["code"].as_str(), &c["body"]),
            (Some("OK"), &serde_json::json!(["HELLO", "MODEL"]))
        );
    }
    // The override and header affinity work as gRPC metadata.
    let forced = grpc_client(&target, "unary", 10, &["--meta", "x-blueshift-color=green"]);
    assert!(forced.iter().all(|c| c["color"] == "green"), "{forced:?}");
    let pinned = grpc_client(&target, "unary", 20, &["--meta", "x-session-id=user-42"]);
    let first = pinned[0]["color"].clone();
    assert!(pinned.iter().all(|c| c["color"] == first), "{pinned:?}");
    p.wait_metrics(&[
        "blueshift_grpc_responses_total{code=\"OK\",color=\"blue\",route=\"default\"}",
    ]);
}

#[test]
fn internal_answers_roll_the_candidate_back_whatever_the_http_status() {
    let (blue, mut green) = (PyServer::grpc("v1", None), PyServer::grpc("v2", None));
    green.mode("internal");
    let extra = "rollback: {min_requests: 10}\n";
    let p = Proxy::start(&grpc_policy(&[&blue], &[&green], (50, 50), extra));
    let target = p.addr.to_string();
    let s = eventually("green to be rolled back for its INTERNAL answers", || {
        grpc_client(&target, "unary", 10, &[]);
        let s = p.status();
        (s["state"] == "rolled_back").then_some(s)
    });
    let reason = s["rollback"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("error rate 1.00 > 0.05"), "{reason}");
    p.wait_metrics(&[
        "blueshift_grpc_responses_total{code=\"INTERNAL\",color=\"green\",route=\"default\"}",
        "blueshift_rollbacks_total{color=\"green\",reason=\"error_rate\",route=\"default\"} 1",
    ]);
    let after = grpc_client(&target, "unary", 20, &[]);
    assert!(
        after
            .iter()
            .all(|c| c["code"] == "OK" && c["color"] == "blue"),
        "{after:?}"
    );
}

#[test]
fn streams_the_client_cancels_are_not_the_models_errors() {
    // A client that stops a token stream (gRPC cancel, RST_STREAM) ends the call with no
    // status from the model: CANCELLED, as the client sees it, not UNKNOWN, and not held
    // against the model, nor logged as blueshift's error (cancelling is routine: deadlines, users
    // who stop a stream). Its INTERNAL answers afterwards still are.
    let (blue, mut green) = (PyServer::grpc("v1", None), PyServer::grpc("v2", None));
    let extra = "rollback: {min_requests: 5, max_error_rate: 0.05}\n";
    let (p, log) = Proxy::start_logged(&grpc_policy(&[&blue], &[&green], (0, 100), extra), None);
    let target = p.addr.to_string();
    let cancelled = grpc_client(&target, "cancel", 5, &[]);
    assert!(
        cancelled
            .iter()
            .all(|c| c["code"] == "CANCELLED" && c["color"] == "green"),
        "{cancelled:?}"
    );
    p.wait_metrics(&[
        "blueshift_grpc_responses_total{code=\"CANCELLED\",color=\"green\",route=\"default\"} 5",
    ]);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("ERROR"), "{logged}");
    let metrics = p.metrics();
    assert!(
        !metrics.contains("code=\"UNKNOWN\",color=\"green\""),
        "{metrics}"
    );
    assert_ne!(p.status()["state"], "rolled_back");

    green.mode("internal");
    let s = eventually("green to be rolled back for its INTERNAL answers", || {
        grpc_client(&target, "unary", 1, &[]);
        let s = p.status();
        (s["state"] == "rolled_back").then_some(s)
    });
    // error rate E > 0.05 over 30s (N requests): the 5 cancelled calls are requests, not errors.
    let reason = s["rollback"]["reason"].as_str().unwrap();
    let (errors, n) = reason_errors(reason);
    assert_eq!(errors, n - 5.0, "{reason}");
}

#[test]
fn not_serving_marks_a_backend_unhealthy() {
    let (blue, mut green) = (PyServer::grpc("v1", None), PyServer::grpc("v2", None));
    let p = Proxy::start(&grpc_policy(&[&blue], &[&green], (50, 50), ""));
    assert_eq!(
        p.status()["colors"]["green"]["backends"][0]["health"],
        "healthy"
    );
    green.mode("not_serving");
    let s = p.wait_status("green to fail its gRPC health check", |s| {
        s["colors"]["green"]["backends"][0]["health"] == "unhealthy"
    });
    assert_eq!(s["weights"]["green"], 0, "{s}");
    let calls = grpc_client(&p.addr.to_string(), "unary", 10, &[]);
    assert!(calls.iter().all(|c| c["color"] == "blue"), "{calls:?}");
    green.mode("healthy");
    p.wait_status("green healthy again", |s| {
        s["colors"]["green"]["backends"][0]["health"] == "healthy"
    });
}

#[test]
fn a_killed_grpc_backend_is_retried_on_connect_and_no_call_fails() {
    let (b1, mut b2) = (PyServer::grpc("v1", None), PyServer::grpc("v1", None));
    let green = PyServer::grpc("v2", None);
    // The health checks are slow here: the retries on connect must do the work.
    let extra = "timeouts: {connect: 500ms}\n";
    let policy = grpc_policy(&[&b1, &b2], &[&green], (100, 0), extra).replace(
        "health: {interval: 200ms, timeout: 500ms}",
        "health: {interval: 30s, timeout: 1s}",
    );
    let p = Proxy::start(&policy);
    let target = p.addr.to_string();
    assert!(codes(&grpc_client(&target, "unary", 10, &[]))
        .iter()
        .all(|c| *c == "OK"));
    b2.kill();
    // New connections to the dead backend are refused and retried on the live one.
    let calls = grpc_client(&target, "unary", 40, &[]);
    assert!(codes(&calls).iter().all(|c| *c == "OK"), "{calls:?}");
}

#[test]
fn grpc_over_tls_to_blueshift_and_over_tls_to_an_h2_model_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_file = ca.write(dir.path());
    let (mcert, mkey) = write_pair(dir.path(), "model", &ca.leaf(&["models.internal"]));
    let model = PyServer::grpc("v2", Some((&mcert, &mkey)));
    let (ecert, ekey) = write_pair(dir.path(), "edge", &ca.leaf(&["localhost"]));
    let policy = format!(
        "listen:\n  - {{listen}}\n  - addr: {{tls}}\n    tls: {{cert: {}, key: {}}}\nadmin: {{admin}}\ncolors:\n  blue:\n    protocol: h2\n    tls: {{sni: models.internal, ca: {}}}\n    health: {{grpc: true}}\n    backends: [{{addr: {}}}]\n",
        ecert.display(),
        ekey.display(),
        ca_file.display(),
        model.addr
    );
    let p = Proxy::start(&policy);
    assert_eq!(
        p.status()["colors"]["blue"]["backends"][0]["health"],
        "healthy"
    );
    let target = format!("localhost:{}", p.tls.port());
    let tls = ["--tls", ca_file.to_str().unwrap(), "localhost"];
    let calls = grpc_client(&target, "unary", 10, &tls);
    assert!(
        calls
            .iter()
            .all(|c| c["code"] == "OK" && c["version"] == "v2"),
        "{calls:?}"
    );
    let streamed = grpc_client(&target, "stream", 2, &tls);
    assert!(streamed.iter().all(|c| c["code"] == "OK"), "{streamed:?}");
}
