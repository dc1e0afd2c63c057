//! What the stand-in model answers: predictions, token streams, and the ways it goes bad.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Controls, Mode, Reply};

/// How slow `POST /demo/slow` makes every prediction: over the demo's 2 s p99 limit.
const SLOW_MS: u64 = 2500;

/// `POST /demo/hang`: predictions never answer (the proxy's read timeout ends them); health
/// checks still pass, as when a model's inference queue is stuck.
const HANG_MS: u64 = 3_600_000;

/// Largest `/big` answer.
const MAX_BIG: usize = 64 << 20;

/// `key=value` from a query string.
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn number(query: &str, key: &str, default: u64) -> u64 {
    param(query, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Answers one request (health, predictions, streams, the demo's remote control).
pub(super) async fn answer(
    path: &str,
    is_get: bool,
    body: &[u8],
    version: &str,
    c: &Controls,
) -> Reply {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if let Some(behaviour) = path.strip_prefix("/demo/") {
        if c.remote_control.load(Ordering::Relaxed) && !is_get {
            return remote_control(c, behaviour, version);
        }
    }
    if path == "/health" {
        let status = match c.mode() {
            Mode::Unhealthy => ("503 Service Unavailable", "unhealthy"),
            _ => ("200 OK", "healthy"),
        };
        return Reply::json(
            status.0,
            format!(
                "{{\"status\":\"{}\",\"model_version\":\"{version}\"}}\n",
                status.1
            ),
        );
    }
    c.predictions.fetch_add(1, Ordering::Relaxed);
    // The switch's delay, plus `?delay=MS` per request (a model that takes that long).
    let delay = c.delay_ms.load(Ordering::Relaxed) + number(query, "delay", 0).min(60_000);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match c.mode() {
        Mode::Failing => {
            return Reply::json(
                "500 Internal Server Error",
                format!("{{\"error\":\"model {version} failed\"}}\n"),
            )
        }
        Mode::NotJson => {
            return Reply::Full {
                status: "200 OK",
                content_type: "text/html",
                extra: "",
                body: b"<html><body><h1>Model warming up</h1></body></html>\n".to_vec(),
            }
        }
        _ => {}
    }
    // The input the model sees: the body, or for a GET the query string.
    let input = if body.is_empty() {
        query.as_bytes()
    } else {
        body
    };
    let wrong = c.mode() == Mode::Wrong;
    if path == "/stream" {
        return stream(input, query, version, wrong);
    }
    if path == "/v1/chat/completions" {
        return chat(body, query, version, wrong);
    }
    let (mut label, confidence) = predict(input, version);
    if wrong {
        label = if label == "positive" {
            "negative"
        } else {
            "positive"
        };
    }
    let confidence = (confidence + c.score_offset()).clamp(0.0, 1.0);
    let mut json = format!(
        "{{\"prediction\":\"{label}\",\"confidence\":{confidence:.2},\"model_version\":\"{version}\""
    );
    if path == "/big" {
        // Padded to the size asked for, the same bytes every time.
        let want = (number(query, "bytes", 0) as usize).min(MAX_BIG);
        let pad = want.saturating_sub(json.len() + 11);
        json.push_str(",\"pad\":\"");
        json.extend((0..pad).map(|i| char::from(b'a' + (i % 26) as u8)));
        json.push('"');
    }
    json.push_str("}\n");
    if let Some(piece) = param(query, "chunk").and_then(|p| p.parse().ok()) {
        return Reply::Pieces {
            body: json.into_bytes(),
            piece,
        };
    }
    // The upstream's own session cookie, which the proxy must pass through untouched.
    let extra = if path == "/login" {
        "set-cookie: model_session=abc123; Path=/\r\n"
    } else {
        ""
    };
    Reply::Full {
        status: "200 OK",
        content_type: "application/json",
        extra,
        body: json.into_bytes(),
    }
}

/// `GET /stream?events=N&gap=MS`: a completion as an LLM server streams it (OpenAI's format),
/// tokens `gap` apart, the `finish_reason` and `usage` last, then `[DONE]`. With `stamp=1` each
/// event is preceded by a comment line `: sent=<Unix microseconds>` written with it.
fn stream(input: &[u8], query: &str, version: &str, wrong: bool) -> Reply {
    let n = number(query, "events", 5).min(10_000);
    let gap = Duration::from_millis(number(query, "gap", 20));
    let mut events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"model\":\"{version}\",\"choices\":[{{\"index\":0,\"text\":\"tok{i} \",\"finish_reason\":null}}]}}"
            )
        })
        .collect();
    let reason = match (wrong, hash(input) % 100) {
        (true, _) => "content_filter",
        (false, h) if h < 90 => "stop",
        _ => "length",
    };
    events.push(format!(
        "{{\"model\":\"{version}\",\"choices\":[{{\"index\":0,\"text\":\"\",\"finish_reason\":\"{reason}\"}}],\"usage\":{{\"completion_tokens\":{n}}}}}"
    ));
    events.push("[DONE]".into());
    // `stamp=1`: each event carries when it was written, for measuring what a proxy adds.
    let stamp = param(query, "stamp") == Some("1");
    Reply::Events { events, gap, stamp }
}

/// `POST /v1/chat/completions`, as an OpenAI-compatible LLM server answers it: a completion for
/// the body's `model` (its version in `system_fingerprint`), whole or, with `"stream": true`, as
/// `chat.completion.chunk` events (`?gap=MS` apart), `[DONE]` last.
fn chat(body: &[u8], query: &str, version: &str, wrong: bool) -> Reply {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let reason = if wrong { "content_filter" } else { "stop" };
    let tokens: Vec<String> = (0..number(query, "events", 3).min(1_000))
        .map(|i| format!("tok{i} "))
        .collect();
    let base = serde_json::json!({
        "id": format!("chatcmpl-{:016x}", hash(body)),
        "model": model,
        "system_fingerprint": version,
    });
    let with = |mut v: serde_json::Value, more: serde_json::Value| {
        if let (Some(v), Some(more)) = (v.as_object_mut(), more.as_object()) {
            v.extend(more.clone());
        }
        v.to_string()
    };
    if request["stream"] != true {
        let answer = serde_json::json!({
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": reason,
                         "message": {"role": "assistant", "content": tokens.concat()}}],
            "usage": {"completion_tokens": tokens.len()},
        });
        return Reply::json("200 OK", with(base, answer) + "\n");
    }
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        with(base.clone(), c)
    };
    let mut events: Vec<String> = tokens
        .iter()
        .map(|t| chunk(serde_json::json!({"content": t}), None))
        .collect();
    events.push(chunk(serde_json::json!({}), Some(reason)));
    events.push("[DONE]".into());
    Reply::Events {
        events,
        gap: Duration::from_millis(number(query, "gap", 5)),
        stamp: false,
    }
}

/// Demo's `POST /demo/<behaviour>`: how a model goes bad, from a shell.
fn remote_control(c: &Controls, behaviour: &str, version: &str) -> Reply {
    let (mode, delay) = match behaviour {
        "healthy" => (Mode::Healthy, 0),
        "failing" => (Mode::Failing, 0),
        "slow" => (Mode::Healthy, SLOW_MS),
        "hang" => (Mode::Healthy, HANG_MS),
        "unhealthy" => (Mode::Unhealthy, 0),
        "hangup" => (Mode::Hangup, 0),
        "wrong" => (Mode::Wrong, 0),
        "notjson" => (Mode::NotJson, 0),
        other => {
            let error = format!("no behaviour `{other}`: use healthy, failing, slow, hang, unhealthy, hangup, wrong or notjson");
            return Reply::json(
                "404 Not Found",
                format!("{}\n", serde_json::json!({ "error": error })),
            );
        }
    };
    c.set_mode(mode);
    c.delay_ms.store(delay, Ordering::Relaxed);
    Reply::json(
        "200 OK",
        format!("{{\"model_version\":\"{version}\",\"behaviour\":\"{behaviour}\"}}\n"),
    )
}

/// FNV-1a: a stable hash, so the same input gets the same answer from every version.
fn hash(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A toy sentiment model: words decide when it knows them, else about 70% of inputs are
/// positive; v2 is a little more confident than v1, as a retrained model would be.
pub fn predict(input: &[u8], version: &str) -> (&'static str, f64) {
    let text = String::from_utf8_lossy(input).to_lowercase();
    let count = |words: &[&str]| words.iter().filter(|w| text.contains(*w)).count();
    let negative = count(&["bad", "awful", "terrible", "hate", "slow"]);
    let positive = count(&["good", "great", "love", "excellent"]);
    let h = hash(input);
    let label = match (negative, positive) {
        (0, 0) if h % 100 < 70 => "positive",
        (0, 0) => "negative",
        (n, p) if n > p => "negative",
        _ => "positive",
    };
    let base = if version == "v1" { 0.87 } else { 0.93 };
    let jitter = ((h >> 8) % 11) as f64 / 100.0 - 0.05;
    (
        label,
        (base + jitter - 0.02 * negative.min(5) as f64).clamp(0.0, 1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::predict;

    #[test]
    fn about_70_percent_positive_the_same_for_both_versions() {
        let inputs: Vec<String> = (0..2000).map(|i| format!("id={i}")).collect();
        let positive = |v: &str| {
            inputs
                .iter()
                .filter(|i| predict(i.as_bytes(), v).0 == "positive")
                .count()
        };
        let (v1, v2) = (positive("v1"), positive("v2"));
        assert_eq!(v1, v2, "healthy versions agree on every input");
        assert!((1300..1500).contains(&v1), "{v1} of 2000 positive");
        assert_eq!(predict(b"{\"text\":\"great product\"}", "v1").0, "positive");
        assert_eq!(predict(b"{\"text\":\"awful\"}", "v2").0, "negative");
    }
}
