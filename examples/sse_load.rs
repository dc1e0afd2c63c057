//! Token streams through a proxy, measured per event: `C` clients each read
//! `GET PATH` (a `/stream?...&stamp=1` of the model server) again and again on one keep-alive
//! connection for `SECS` seconds, and for every event compare when it arrived with when the model
//! server wrote it (the `: sent=<µs>` comment before it; same machine, same clock). The clients
//! start spread evenly over the first second, as independent users would. Prints one
//! JSON line: streams and events read, errors, and p50/p99 of the delay each event got, of the
//! time to the first event (time to first token), of the time to the answer's head, of the time
//! from the head to the first event (0 when they arrive in one read), and of the first event's
//! time split at its stamp: from the request's write to the model, and from the model back.
//!
//!   cargo run --release --example sse_load -- HOST:PORT PATH C SECS

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    streams: u64,
    events: u64,
    errors: u64,
}

/// In µs: each event's delay; per stream the first event's time, the head's, between them, and
/// the first event's time before and after the model stamped it.
struct Times {
    delay: Histogram<u64>,
    ttft: Histogram<u64>,
    head: Histogram<u64>,
    head_to_first: Histogram<u64>,
    to_model: Histogram<u64>,
    from_model: Histogram<u64>,
}

impl Times {
    fn new() -> Times {
        let h = || Histogram::new(3).unwrap();
        Times {
            delay: h(),
            ttft: h(),
            head: h(),
            head_to_first: h(),
            to_model: h(),
            from_model: h(),
        }
    }

    fn add(&mut self, o: &Times) {
        self.delay.add(&o.delay).unwrap();
        self.ttft.add(&o.ttft).unwrap();
        self.head.add(&o.head).unwrap();
        self.head_to_first.add(&o.head_to_first).unwrap();
        self.to_model.add(&o.to_model).unwrap();
        self.from_model.add(&o.from_model).unwrap();
    }
}

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one chunked response; records each event's delay, the first event's time and the head's.
async fn one(s: &mut TcpStream, req: &[u8], times: &mut Times) -> Result<u64, String> {
    let (start, wrote) = (Instant::now(), micros_now());
    s.write_all(req).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut tmp = [0u8; 16 * 1024];
    // The head.
    let body_at = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the head".into());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..body_at]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
        return Err(format!(
            "unexpected head: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    let head_at = start.elapsed();
    let _ = times.head.record(head_at.as_micros().max(1) as u64);
    buf.drain(..body_at);
    // The body: chunk sizes, and inside the data the `: sent=` stamps, scanned as bytes arrive.
    let (mut data, mut events, mut first) = (Vec::new(), 0u64, true);
    loop {
        // Every complete chunk in `buf`.
        while let Some(eol) = find(&buf, b"\r\n") {
            let size = std::str::from_utf8(&buf[..eol])
                .ok()
                .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                .ok_or("bad chunk size")?;
            if buf.len() < eol + 2 + size + 2 {
                break;
            }
            if size == 0 {
                return Ok(events);
            }
            data.extend_from_slice(&buf[eol + 2..eol + 2 + size]);
            buf.drain(..eol + 2 + size + 2);
        }
        while let Some(at) = find(&data, b": sent=") {
            let Some(end) = data[at..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let sent: u64 = std::str::from_utf8(&data[at + 7..at + end])
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or("bad stamp")?;
            let now = micros_now();
            let _ = times.delay.record(now.saturating_sub(sent).max(1));
            if first {
                let _ = times.to_model.record(sent.saturating_sub(wrote));
                let _ = times.from_model.record(now.saturating_sub(sent));
                let at = start.elapsed();
                let _ = times.ttft.record(at.as_micros().max(1) as u64);
                let _ = times
                    .head_to_first
                    .record((at - head_at).as_micros() as u64);
                first = false;
            }
            events += 1;
            data.drain(..at + end);
        }
        let n = s.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed inside the body".into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

async fn client(addr: String, req: Vec<u8>, start: Duration, until: Instant) -> (Tally, Times) {
    // Independent users do not start in step: client i starts i/C of a second in.
    tokio::time::sleep(start).await;
    let mut t = Tally::default();
    let mut times = Times::new();
    let mut conn: Option<TcpStream> = None;
    while Instant::now() < until {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(&addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(s)
                }
                Err(_) => {
                    t.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match one(s, &req, &mut times).await {
            Ok(n) => {
                t.streams += 1;
                t.events += n;
            }
            Err(_) => {
                t.errors += 1;
                conn = None;
            }
        }
    }
    (t, times)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, c, secs] = &args[..] else {
        eprintln!("usage: sse_load HOST:PORT PATH CLIENTS SECONDS");
        std::process::exit(2);
    };
    let c: usize = c.parse().expect("CLIENTS");
    let until = Instant::now() + Duration::from_secs_f64(secs.parse().expect("SECONDS"));
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n")
        .into_bytes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (t, times) = rt.block_on(async {
        let tasks: Vec<_> = (0..c)
            .map(|i| {
                let start = Duration::from_secs(1) * i as u32 / c as u32;
                tokio::spawn(client(addr.clone(), req.clone(), start, until))
            })
            .collect();
        let mut all = (Tally::default(), Times::new());
        for task in tasks {
            let (t, times) = task.await.unwrap();
            all.0.streams += t.streams;
            all.0.events += t.events;
            all.0.errors += t.errors;
            all.1.add(&times);
        }
        all
    });
    println!(
        "{{\"streams\":{},\"events\":{},\"errors\":{},\"delay_p50_us\":{},\"delay_p99_us\":{},\"ttft_p50_us\":{},\"ttft_p99_us\":{},\"head_p50_us\":{},\"head_p99_us\":{},\"head_to_first_p50_us\":{},\"head_to_first_p99_us\":{},\"to_model_p50_us\":{},\"from_model_p50_us\":{}}}",
        t.streams,
        t.events,
        t.errors,
        times.delay.value_at_quantile(0.5),
        times.delay.value_at_quantile(0.99),
        times.ttft.value_at_quantile(0.5),
        times.ttft.value_at_quantile(0.99),
        times.head.value_at_quantile(0.5),
        times.head.value_at_quantile(0.99),
        times.head_to_first.value_at_quantile(0.5),
        times.head_to_first.value_at_quantile(0.99),
        times.to_model.value_at_quantile(0.5),
        times.from_model.value_at_quantile(0.5)
    );
}
