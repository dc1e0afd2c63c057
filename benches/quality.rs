//! What the quality gates cost per answer: a tap on a 1 KiB JSON answer and on a 20-event token
//! stream, from the response head to the labels counted in the color's metrics and window.
//! Run with `cargo bench --bench quality`.

use std::time::{Duration, Instant};

use blueshift::judge::answer::Tap;
use blueshift::judge::window::Outcomes;
use blueshift::metrics::ColorMetrics;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::ResponseHeader;

fn gates() -> blueshift::config::Quality {
    let mut policy = blueshift::config::parse(
        "listen: 127.0.0.1:8080
colors: {blue: {backends: [{addr: 127.0.0.1:5001}]}}
quality: {prediction: /prediction, score: /confidence}
",
    )
    .unwrap();
    policy.routes.remove(0).quality.unwrap()
}

fn stream_gates() -> blueshift::config::Quality {
    blueshift::config::Quality {
        prediction: blueshift::config::Pointer::parse("/choices/0/finish_reason").unwrap(),
        score: blueshift::config::Pointer::parse("/usage/completion_tokens").ok(),
        ..gates()
    }
}

/// A 1 KiB answer: the prediction, its confidence and the class probabilities a classifier returns.
fn json_answer() -> Vec<u8> {
    let mut probs = String::new();
    let mut i = 0;
    while probs.len() < 930 {
        probs.push_str(&format!("{{\"label\":\"class-{i}\",\"p\":0.0{i}}},"));
        i += 1;
    }
    probs.pop();
    format!("{{\"prediction\":\"positive\",\"confidence\":0.87,\"model_version\":\"v1\",\"probabilities\":[{probs}]}}")
        .into_bytes()
}

/// 20 events as an OpenAI-style completion streams them, the last one with the finish reason.
fn sse_events() -> Vec<Vec<u8>> {
    let mut events: Vec<Vec<u8>> = (0..19)
        .map(|i| format!("data: {{\"id\":\"cmpl-1\",\"model\":\"v1\",\"choices\":[{{\"index\":0,\"text\":\"tok{i} \",\"finish_reason\":null}}]}}\n\n").into_bytes())
        .collect();
    events.push(b"data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":19}}\n\ndata: [DONE]\n\n".to_vec());
    events
}

fn head(content_type: &str) -> ResponseHeader {
    let mut r = ResponseHeader::build(200, None).unwrap();
    r.insert_header("content-type", content_type).unwrap();
    r
}

fn bench(c: &mut Criterion) {
    let metrics = ColorMetrics::get("bench", "bench");
    let outcomes = Outcomes::new(Instant::now());
    let q = gates();
    let body = json_answer();
    assert!((1000..1100).contains(&body.len()), "{} bytes", body.len());
    let json_head = head("application/json");
    c.bench_function(
        "quality: 1 KiB JSON answer, tapped, read and counted",
        |b| {
            b.iter(|| {
                let mut tap = Tap::for_response(&json_head, false, &q).unwrap();
                tap.feed(black_box(&body), &q);
                let counts = metrics.count_answer(&tap.finish(&q));
                outcomes.record(false, Duration::from_millis(5), Some(&counts));
            })
        },
    );
    let q = stream_gates();
    let events = sse_events();
    let sse_head = head("text/event-stream");
    c.bench_function(
        "quality: 20-event token stream, tapped, read and counted",
        |b| {
            b.iter(|| {
                let mut tap = Tap::for_response(&sse_head, false, &q).unwrap();
                for e in &events {
                    tap.feed(black_box(e), &q);
                }
                let counts = metrics.count_answer(&tap.finish(&q));
                outcomes.record(false, Duration::from_millis(5), Some(&counts));
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
