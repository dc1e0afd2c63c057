//! From an answer's bytes to what it predicted: a whole JSON document, or the `data:` events of
//! a `text/event-stream`, read as they arrive (the last value found counts: an LLM's
//! `finish_reason` and `usage` come last).

use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::visit_pair;
use crate::config::Quality;

/// Labels longer than this are cut (at a character boundary): they become metric label values.
const MAX_LABEL_LEN: usize = 64;

/// What one answer said.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A prediction was found: its label(s) (several with a `*` pointer) and any scores.
    Valid {
        /// The labels found.
        labels: Vec<String>,
        /// The numeric scores found.
        scores: Vec<f64>,
    },
    /// A 2xx answer that is not JSON, or holds no prediction.
    Invalid,
    /// Not inspected: larger than `max_body`, or in an encoding blueshift does not read.
    Skipped,
}

impl Answer {
    /// `valid`, `invalid` or `skipped`, as the metric labels them.
    pub fn result(&self) -> &'static str {
        match self {
            Answer::Valid { .. } => "valid",
            Answer::Invalid => "invalid",
            Answer::Skipped => "skipped",
        }
    }
}

/// A label as a string: strings as they are, numbers and booleans spelled out.
fn label(raw: &RawValue) -> Option<String> {
    let mut s = match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    if s.len() > MAX_LABEL_LEN {
        let mut end = MAX_LABEL_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    Some(s)
}

/// The labels and scores one JSON document holds; `None` if it is not JSON.
fn read(body: &[u8], q: &Quality) -> Option<(Vec<String>, Vec<f64>)> {
    let text = std::str::from_utf8(body).ok()?;
    let (mut labels, mut scores) = (Vec::new(), Vec::new());
    visit_pair(
        text,
        &q.prediction,
        q.score.as_ref(),
        |which, v| match which {
            0 => labels.extend(label(v)),
            _ => scores.extend(
                serde_json::from_str::<f64>(v.get())
                    .ok()
                    .filter(|f| f.is_finite()),
            ),
        },
    )
    .ok()?;
    Some((labels, scores))
}

/// Reads a whole JSON answer.
pub fn json(body: &[u8], q: &Quality) -> Answer {
    match read(body, q) {
        Some((labels, scores)) if !labels.is_empty() => Answer::Valid { labels, scores },
        _ => Answer::Invalid,
    }
}

/// Reads a `text/event-stream` as it arrives, holding only the line and event in progress.
#[derive(Debug, Default)]
pub struct Sse {
    /// Bytes of a line not yet complete.
    line: Vec<u8>,
    /// The `data:` lines of the event in progress, joined by `\n`.
    data: Vec<u8>,
    labels: Vec<String>,
    scores: Vec<f64>,
}

impl Sse {
    /// Takes the next piece of the stream.
    pub fn feed(&mut self, mut chunk: &[u8], q: &Quality) {
        while let Some(nl) = chunk.iter().position(|b| *b == b'\n') {
            let joined;
            let line = if self.line.is_empty() {
                &chunk[..nl]
            } else {
                self.line.extend_from_slice(&chunk[..nl]);
                joined = std::mem::take(&mut self.line);
                &joined[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.on_line(line, q);
            chunk = &chunk[nl + 1..];
        }
        self.line.extend_from_slice(chunk);
    }

    fn on_line(&mut self, line: &[u8], q: &Quality) {
        if line.is_empty() {
            self.dispatch(q);
            return;
        }
        // A field is `name: value`; lines starting with `:` are comments.
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(0) => return,
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        if name == b"data" {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
    }

    fn dispatch(&mut self, q: &Quality) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() || data == b"[DONE]" {
            return;
        }
        if let Some((labels, scores)) = read(&data, q) {
            if !labels.is_empty() {
                self.labels = labels;
            }
            if !scores.is_empty() {
                self.scores = scores;
            }
        }
        // Reuse the allocation for the next event.
        self.data = data;
        self.data.clear();
    }

    /// The stream ended: an event still in progress counts too.
    pub fn finish(mut self, q: &Quality) -> Answer {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(line.strip_suffix(b"\r").unwrap_or(&line), q);
        }
        self.dispatch(q);
        match self.labels.is_empty() {
            true => Answer::Invalid,
            false => Answer::Valid {
                labels: self.labels,
                scores: self.scores,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pointer;

    fn q(prediction: &str, score: Option<&str>) -> Quality {
        Quality {
            prediction: Pointer::parse(prediction).unwrap(),
            score: score.map(|s| Pointer::parse(s).unwrap()),
            max_label_shift: 0.2,
            max_score_shift: 0.1,
            max_invalid_rate: 0.05,
            min_samples: 100,
            max_body: 1 << 20,
        }
    }

    fn valid(labels: &[&str], scores: &[f64]) -> Answer {
        Answer::Valid {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            scores: scores.to_vec(),
        }
    }

    #[test]
    fn json_answers() {
        let q = q("/prediction", Some("/confidence"));
        let a = json(br#"{"prediction":"positive","confidence":0.87}"#, &q);
        assert_eq!(a, valid(&["positive"], &[0.87]));
        assert_eq!(json(br#"{"prediction":3}"#, &q), valid(&["3"], &[]));
        assert_eq!(json(br#"{"label":"x"}"#, &q), Answer::Invalid);
        assert_eq!(json(br#"{"prediction":null}"#, &q), Answer::Invalid);
        assert_eq!(json(b"<html>oops</html>", &q), Answer::Invalid);
        assert_eq!(json(br#"{"prediction":"cut"#, &q), Answer::Invalid);
    }

    #[test]
    fn batch_answers_count_every_element() {
        let q = q("/predictions/*/label", Some("/predictions/*/score"));
        let a = json(
            br#"{"predictions":[{"label":"cat","score":0.9},{"label":"dog","score":0.7}]}"#,
            &q,
        );
        assert_eq!(a, valid(&["cat", "dog"], &[0.9, 0.7]));
    }

    #[test]
    fn long_labels_are_cut_at_a_char_boundary() {
        let q = q("/prediction", None);
        let long = "é".repeat(40);
        let Answer::Valid { labels, .. } =
            json(format!(r#"{{"prediction":"{long}"}}"#).as_bytes(), &q)
        else {
            panic!("valid");
        };
        assert!(labels[0].len() <= MAX_LABEL_LEN && labels[0].starts_with('é'));
    }

    fn stream(q: &Quality, pieces: &[&[u8]]) -> Answer {
        let mut s = Sse::default();
        for p in pieces {
            s.feed(p, q);
        }
        s.finish(q)
    }

    #[test]
    fn sse_the_last_value_found_counts() {
        let q = q("/choices/0/finish_reason", Some("/usage/total_tokens"));
        let body =
            b": keep-alive\n\ndata: {\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n\
data: {\"choices\":[{\"text\":\"!\",\"finish_reason\":\"stop\"}]}\r\n\r\n\
data: {\"choices\":[],\"usage\":{\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
        assert_eq!(stream(&q, &[body]), valid(&["stop"], &[12.0]));
        // The same stream cut into single bytes reads the same.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(stream(&q, &bytes), valid(&["stop"], &[12.0]));
    }

    #[test]
    fn sse_multi_line_data_and_a_missing_final_blank_line() {
        let q = q("/label", None);
        assert_eq!(
            stream(
                &q,
                &[b"event: x\ndata: {\"label\":\ndata: \"a\"}\n\ndata: {\"label\":\"b\"}"]
            ),
            valid(&["b"], &[])
        );
        assert_eq!(stream(&q, &[b"data: [DONE]\n\n"]), Answer::Invalid);
        assert_eq!(stream(&q, &[b"data: not json\n\n"]), Answer::Invalid);
    }
}
