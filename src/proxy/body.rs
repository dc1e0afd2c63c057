//! Reading a request body before its route is chosen, for `match.model`, and giving it back to
//! the model untouched.
//!
//! Pingora 0.9 chooses the upstream before it reads a request body, and forwards only the body it
//! reads itself (cloudflare/pingora#575, #780). What it does replay is its retry buffer, at most
//! 64 KiB of the body read while the buffer was on: when the body was read up front, it sends
//! that buffer first, through `request_body_filter`. So the body is read here with the buffer on
//! for the last 64 KiB at most (when the length is known; from the start otherwise), the bytes
//! read are held here, and [`Held::give_back`] sends them as the first chunk of each attempt: in
//! place of the buffer's tail of them, or in front of the next chunk read when the buffer holds
//! nothing. The model gets the body byte for byte, and a retry can send it again.
//!
//! A body of unknown length (chunked, or HTTP/2 without `content-length`) is read only while
//! Pingora can still replay it: past 64 KiB (48 KiB over HTTP/2, whose last frame may end the
//! body) reading stops, the body is not matched, and it goes on streaming as it would have.

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora_core::Result;
use pingora_proxy::Session;

use crate::config::Routing;

/// What Pingora's retry buffer holds at most.
const RETRY_BUFFER: usize = 64 * 1024;

/// The largest DATA frame an HTTP/2 client may send Pingora (the protocol's default).
const H2_FRAME: usize = 16 * 1024;

/// The bytes of a body read up front, to be sent as the first chunk of each attempt.
#[derive(Debug, Default)]
pub struct Held {
    read: Bytes,
    /// Pingora's retry buffer holds the end of `read`, and sends it first: that chunk is
    /// replaced. Otherwise the first chunk is the next one read from the client, and `read` goes
    /// in front of it.
    replaces_first: bool,
    /// Not yet given back on this attempt.
    pending: bool,
}

impl Held {
    /// A new attempt to send the request upstream begins: the held bytes go with it.
    pub fn attempt(&mut self) {
        self.pending = !self.read.is_empty();
    }

    /// Sends the held bytes with the first chunk an attempt sends.
    pub fn give_back(&mut self, body: &mut Option<Bytes>) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        *body = Some(match body.take() {
            Some(rest) if !self.replaces_first && !rest.is_empty() => {
                let mut joined = BytesMut::with_capacity(self.read.len() + rest.len());
                joined.extend_from_slice(&self.read);
                joined.extend_from_slice(&rest);
                joined.freeze()
            }
            _ => self.read.clone(),
        });
    }
}

/// Reads the body (what `routing` allows of it) and finds its model field: `None` when it has
/// none, is not a JSON object, or is not read whole.
pub async fn read_model(
    session: &mut Session,
    routing: &Routing,
) -> Result<(Option<String>, Held)> {
    let req = session.req_header();
    let grpc = req
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    let length = req
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
    if grpc || length.is_some_and(|n| n > routing.max_body) || session.as_mut().is_body_empty() {
        return Ok((None, Held::default()));
    }
    let h2 = session.is_http2();
    let mut body = BytesMut::with_capacity(length.unwrap_or(0));
    // Where Pingora's buffer starts: what it holds is body[replayed..].
    let mut replayed = None;
    let done = loop {
        if replayed.is_none() && length.is_none_or(|n| n - body.len() <= RETRY_BUFFER) {
            session.as_mut().enable_retry_buffering();
            replayed = Some(body.len());
        }
        if length.is_none() && h2 && body.len() + H2_FRAME > RETRY_BUFFER {
            break false;
        }
        let Some(chunk) = session.read_request_body().await? else {
            break true;
        };
        body.extend_from_slice(&chunk);
        let object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|b| *b == b'{');
        if !object || body.len() > routing.max_body || session.as_ref().retry_buffer_truncated() {
            break session.is_body_done();
        }
    };
    let model = match done && !session.as_ref().retry_buffer_truncated() {
        true => model_of(&body, routing),
        false => None,
    };
    // The retry buffer holds what was read since it went on (if anything), unless it overflowed.
    let replaces_first =
        replayed.is_some_and(|at| at < body.len()) && !session.as_ref().retry_buffer_truncated();
    let held = Held {
        read: body.freeze(),
        replaces_first,
        pending: false,
    };
    Ok((model, held))
}

/// The string at `routing.model_field` in a whole JSON body.
pub fn model_of(body: &[u8], routing: &Routing) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut found = None;
    routing
        .model_field
        .visit_text(text, |v| found = Some(v))
        .ok()?;
    serde_json::from_str::<String>(found?.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pointer;

    fn routing(field: &str) -> Routing {
        Routing {
            model_field: Pointer::parse(field).unwrap(),
            max_body: 1 << 20,
        }
    }

    #[test]
    fn the_model_is_the_string_at_the_field_of_a_whole_json_body() {
        let r = routing("/model");
        let chat = br#"{"messages":[{"role":"user","content":"hi"}],"model":"llama-3-8b"}"#;
        assert_eq!(model_of(chat, &r).as_deref(), Some("llama-3-8b"));
        assert_eq!(
            model_of(br#"{"model":"a\u002db"}"#, &r).as_deref(),
            Some("a-b")
        );
        assert_eq!(
            model_of(br#"{"model":7}"#, &r),
            None,
            "a number is no model name"
        );
        assert_eq!(model_of(br#"{"messages":[]}"#, &r), None);
        assert_eq!(model_of(br#"{"model":"llama""#, &r), None, "truncated");
        assert_eq!(model_of(b"model=llama", &r), None, "not JSON");
        assert_eq!(model_of(b"{\"model\":\"\xff\"}", &r), None, "not UTF-8");
        let deep = format!(
            "{{\"model\":\"m\",\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            model_of(deep.as_bytes(), &r).as_deref(),
            Some("m"),
            "a deeply nested sibling is scanned, not recursed into"
        );
        let nested = routing("/parameters/model");
        assert_eq!(
            model_of(br#"{"parameters":{"model":"m"}}"#, &nested).as_deref(),
            Some("m")
        );
    }

    #[test]
    fn held_bytes_go_with_the_first_chunk_of_each_attempt() {
        let held = |replaces_first| Held {
            read: Bytes::from_static(b"{\"model\":\"m\"}"),
            replaces_first,
            pending: false,
        };
        // Pingora's retry buffer sends the tail of what was read: the whole takes its place.
        let mut h = held(true);
        let mut body = Some(Bytes::from_static(b"\"m\"}"));
        h.give_back(&mut body);
        assert_eq!(
            body.as_deref(),
            Some(&b"\"m\"}"[..]),
            "not before an attempt"
        );
        h.attempt();
        h.give_back(&mut body);
        assert_eq!(body.as_deref(), Some(&b"{\"model\":\"m\"}"[..]));
        let mut next = Some(Bytes::from_static(b"more"));
        h.give_back(&mut next);
        assert_eq!(next.as_deref(), Some(&b"more"[..]), "once per attempt");
        // Nothing buffered by Pingora: the next chunk read follows what was read.
        let mut h = held(false);
        h.attempt();
        let mut rest = Some(Bytes::from_static(b" "));
        h.give_back(&mut rest);
        assert_eq!(rest.as_deref(), Some(&b"{\"model\":\"m\"} "[..]));
        h.attempt();
        let mut end = None;
        h.give_back(&mut end);
        assert_eq!(
            end.as_deref(),
            Some(&b"{\"model\":\"m\"}"[..]),
            "an end of body gets them too"
        );
        let mut nothing = Held::default();
        nothing.attempt();
        let mut none = None;
        nothing.give_back(&mut none);
        assert!(none.is_none());
    }
}
