//! Quality gates: reading what the models answer, without slowing the answers down.
//!
//! With `quality` set, a [`Tap`] rides along each 2xx answer of a color with weight: the body
//! filter hands it every chunk as the chunk passes to the client, it keeps at most `max_body`
//! bytes (a token stream only its event in progress), and when the answer is complete it says
//! what the model predicted ([`Answer`]). Compressed answers (gzip, deflate, br, zstd) are
//! decompressed for inspection, up to `max_body` of decompressed bytes; other encodings are
//! counted as skipped. The counts go into the color's window ([`crate::judge::counts`]); the
//! supervisor compares them with the stable color's ([`crate::judge::quality`]).

mod extract;

use std::io::Read;

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use pingora_http::ResponseHeader;

pub use extract::{json, Answer, Sse};

use crate::config::Quality;

/// How an answer's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// What the tap holds so far.
#[derive(Debug)]
enum Held {
    /// A JSON (or any non-stream) answer, whole, or its compressed bytes.
    Body(Vec<u8>),
    /// An uncompressed event stream, read event by event.
    Stream(Sse),
    /// Not inspected: too large, or an encoding not read.
    Skipped,
}

/// One answer being read as it passes.
#[derive(Debug)]
pub struct Tap {
    held: Held,
    encoding: Encoding,
    stream: bool,
    seen: usize,
    limit: usize,
}

impl Tap {
    /// A tap for an answer with this head, or `None` when the answer is not inspected at all:
    /// not a 2xx, a 204, or the answer to a `HEAD`.
    pub fn for_response(resp: &ResponseHeader, head_request: bool, q: &Quality) -> Option<Tap> {
        let status = resp.status.as_u16();
        if !(200..300).contains(&status) || status == 204 || head_request {
            return None;
        }
        let header = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
        let stream = header(CONTENT_TYPE).is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        let encoding = match header(CONTENT_ENCODING).map(|e| e.trim().to_ascii_lowercase()) {
            None => Some(Encoding::Identity),
            Some(e) => match e.as_str() {
                "" | "identity" => Some(Encoding::Identity),
                "gzip" | "x-gzip" => Some(Encoding::Gzip),
                "deflate" => Some(Encoding::Deflate),
                "br" => Some(Encoding::Brotli),
                "zstd" => Some(Encoding::Zstd),
                _ => None,
            },
        };
        let too_long = header(CONTENT_LENGTH)
            .and_then(|l| l.trim().parse::<usize>().ok())
            .is_some_and(|l| l > q.max_body);
        let held = match encoding {
            // Protobuf, not JSON: counted, not read.
            _ if crate::judge::grpc::is_grpc(&resp.headers) => Held::Skipped,
            _ if too_long => Held::Skipped,
            None => Held::Skipped,
            Some(Encoding::Identity) if stream => Held::Stream(Sse::default()),
            Some(_) => Held::Body(Vec::new()),
        };
        Some(Tap {
            held,
            encoding: encoding.unwrap_or(Encoding::Identity),
            stream,
            seen: 0,
            limit: q.max_body,
        })
    }

    /// Takes the next chunk of the body, as it passes to the client.
    pub fn feed(&mut self, chunk: &[u8], q: &Quality) {
        self.seen += chunk.len();
        if self.seen > self.limit {
            self.held = Held::Skipped;
            return;
        }
        match &mut self.held {
            Held::Body(b) => b.extend_from_slice(chunk),
            Held::Stream(s) => s.feed(chunk, q),
            Held::Skipped => {}
        }
    }

    /// The answer is complete: what it said.
    pub fn finish(self, q: &Quality) -> Answer {
        let body = match self.held {
            Held::Skipped => return Answer::Skipped,
            Held::Stream(s) => return s.finish(q),
            Held::Body(b) => b,
        };
        let body = match self.encoding {
            Encoding::Identity => body,
            e => match decompress(e, &body, self.limit) {
                Decoded::Fits(b) => b,
                Decoded::TooLarge => return Answer::Skipped,
                Decoded::Corrupt => return Answer::Invalid,
            },
        };
        match self.stream {
            true => {
                let mut s = Sse::default();
                s.feed(&body, q);
                s.finish(q)
            }
            false => json(&body, q),
        }
    }
}

enum Decoded {
    Fits(Vec<u8>),
    TooLarge,
    Corrupt,
}

/// Decompresses at most `limit` bytes: a small compressed answer cannot balloon in memory.
fn decompress(e: Encoding, body: &[u8], limit: usize) -> Decoded {
    let mut reader: Box<dyn Read + '_> = match e {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        // HTTP's "deflate" is zlib-wrapped; some servers send raw deflate anyway.
        Encoding::Deflate if body.first().is_some_and(|b| b & 0x0f == 8) => {
            Box::new(flate2::read::ZlibDecoder::new(body))
        }
        Encoding::Deflate => Box::new(flate2::read::DeflateDecoder::new(body)),
        Encoding::Brotli => Box::new(brotli::Decompressor::new(body, 4096)),
        Encoding::Zstd => match zstd::stream::read::Decoder::new(body) {
            Ok(d) => Box::new(d),
            Err(_) => return Decoded::Corrupt,
        },
        Encoding::Identity => return Decoded::Fits(body.to_vec()),
    };
    let mut out = Vec::new();
    match reader.by_ref().take(limit as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Decoded::TooLarge,
        Ok(_) => Decoded::Fits(out),
        Err(_) => Decoded::Corrupt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pointer;
    use std::io::Write;

    fn q(max_body: usize) -> Quality {
        Quality {
            prediction: Pointer::parse("/prediction").unwrap(),
            score: None,
            max_label_shift: 0.2,
            max_score_shift: 0.1,
            max_invalid_rate: 0.05,
            min_samples: 1,
            max_body,
        }
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), v.to_string()).unwrap();
        }
        r
    }

    fn read(tap: Option<Tap>, body: &[u8], q: &Quality) -> Option<Answer> {
        let mut tap = tap?;
        for piece in body.chunks(7) {
            tap.feed(piece, q);
        }
        Some(tap.finish(q))
    }

    const ANSWER: &[u8] = br#"{"prediction":"positive"}"#;

    fn positive() -> Answer {
        Answer::Valid {
            labels: vec!["positive".into()],
            scores: vec![],
        }
    }

    #[test]
    fn only_2xx_answers_with_a_body_are_tapped() {
        let q = q(1024);
        assert!(Tap::for_response(&head(500, &[]), false, &q).is_none());
        assert!(Tap::for_response(&head(204, &[]), false, &q).is_none());
        assert!(Tap::for_response(&head(200, &[]), true, &q).is_none());
        assert_eq!(
            read(Tap::for_response(&head(200, &[]), false, &q), ANSWER, &q),
            Some(positive())
        );
    }

    #[test]
    fn larger_answers_are_skipped_whether_announced_or_not() {
        let q = q(10);
        let announced = head(200, &[("content-length", "25")]);
        assert_eq!(
            read(Tap::for_response(&announced, false, &q), ANSWER, &q),
            Some(Answer::Skipped)
        );
        assert_eq!(
            read(Tap::for_response(&head(200, &[]), false, &q), ANSWER, &q),
            Some(Answer::Skipped)
        );
    }

    #[test]
    fn compressed_answers_are_read_and_unknown_encodings_skipped() {
        let q = q(1024);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(ANSWER).unwrap();
        let gz = gz.finish().unwrap();
        let h = head(200, &[("content-encoding", "gzip")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), &gz, &q),
            Some(positive())
        );
        let br = {
            let mut out = Vec::new();
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(ANSWER).unwrap();
            drop(w);
            out
        };
        let h = head(200, &[("content-encoding", "br")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), &br, &q),
            Some(positive())
        );
        let zs = zstd::encode_all(ANSWER, 3).unwrap();
        let h = head(200, &[("content-encoding", "zstd")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), &zs, &q),
            Some(positive())
        );
        let h = head(200, &[("content-encoding", "compress")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), ANSWER, &q),
            Some(Answer::Skipped)
        );
        let h = head(200, &[("content-encoding", "gzip")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), b"not gzip", &q),
            Some(Answer::Invalid)
        );
    }

    #[test]
    fn a_compressed_answer_cannot_balloon_past_max_body() {
        let q = q(4000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 1_000_000]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 4000, "{} bytes", gz.len());
        let h = head(200, &[("content-encoding", "gzip")]);
        assert_eq!(
            read(Tap::for_response(&h, false, &q), &gz, &q),
            Some(Answer::Skipped)
        );
    }

    #[test]
    fn event_streams_are_read_event_by_event() {
        let q = q(1024);
        let h = head(200, &[("content-type", "text/event-stream; charset=utf-8")]);
        let body =
            b"data: {\"prediction\":\"a\"}\n\ndata: {\"prediction\":\"b\"}\n\ndata: [DONE]\n\n";
        let a = read(Tap::for_response(&h, false, &q), body, &q).unwrap();
        assert_eq!(
            a,
            Answer::Valid {
                labels: vec!["b".into()],
                scores: vec![]
            }
        );
    }
}
