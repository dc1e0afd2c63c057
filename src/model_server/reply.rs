//! Writing an answer: a whole body, a chunked body in pieces, or a stream of server-sent events.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// An answer to write.
pub(crate) enum Reply {
    /// A whole body with a content-length.
    Full {
        status: &'static str,
        content_type: &'static str,
        extra: &'static str,
        body: Vec<u8>,
    },
    /// A chunked body, written in pieces of `piece` bytes a millisecond apart.
    Pieces { body: Vec<u8>, piece: usize },
    /// A `text/event-stream` of these events, `gap` apart; `stamp` adds when each was sent.
    Events {
        events: Vec<String>,
        gap: Duration,
        stamp: bool,
    },
}

impl Reply {
    pub(crate) fn json(status: &'static str, body: String) -> Reply {
        Reply::Full {
            status,
            content_type: "application/json",
            extra: "",
            body: body.into_bytes(),
        }
    }

    pub(super) async fn write<S>(
        self,
        s: &mut S,
        version: &str,
        keep_alive: bool,
    ) -> std::io::Result<()>
    where
        S: tokio::io::AsyncWrite + Unpin,
    {
        let close = if keep_alive {
            ""
        } else {
            "connection: close\r\n"
        };
        match self {
            Reply::Full {
                status,
                content_type,
                extra,
                body,
            } => {
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-model-version: {version}\r\n{extra}{close}\r\n",
                    body.len(),
                );
                s.write_all(head.as_bytes()).await?;
                s.write_all(&body).await
            }
            Reply::Pieces { body, piece } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nx-model-version: {version}\r\n{close}\r\n");
                s.write_all(head.as_bytes()).await?;
                for p in body.chunks(piece.max(1)) {
                    s.write_all(format!("{:x}\r\n", p.len()).as_bytes()).await?;
                    s.write_all(p).await?;
                    s.write_all(b"\r\n").await?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                s.write_all(b"0\r\n\r\n").await
            }
            Reply::Events { events, gap, stamp } => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nx-model-version: {version}\r\n{close}\r\n");
                s.write_all(head.as_bytes()).await?;
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    let event = match stamp {
                        true => format!(": sent={}\ndata: {e}\n\n", unix_micros()),
                        false => format!("data: {e}\n\n"),
                    };
                    s.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
                        .await?;
                }
                s.write_all(b"0\r\n\r\n").await
            }
        }
    }
}

/// Now, in microseconds since the Unix epoch.
pub(crate) fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stamped_stream_says_when_each_event_was_written() {
        let events = vec!["{\"a\":1}".to_string(), "[DONE]".to_string()];
        let reply = Reply::Events {
            events,
            gap: Duration::from_millis(5),
            stamp: true,
        };
        let before = unix_micros();
        let mut out: Vec<u8> = Vec::new();
        reply.write(&mut out, "v1", true).await.unwrap();
        let after = unix_micros();
        let text = String::from_utf8(out).unwrap();
        let stamps: Vec<u128> = text
            .lines()
            .filter_map(|l| l.strip_prefix(": sent="))
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(stamps.len(), 2, "{text}");
        assert!(stamps.iter().all(|s| (before..=after).contains(s)));
        // The second event was written a gap after the first, and each stamp precedes its event.
        assert!(stamps[1] - stamps[0] >= 5_000, "{stamps:?}");
        assert!(text.contains(&format!(": sent={}\ndata: {{\"a\":1}}\n\n", stamps[0])));
        assert!(text.ends_with("0\r\n\r\n"));
    }
}
