//! Token streams through a proxy, measured per event: `C` clients each read
//! `GET PATH` (a `/stream?...&stamp=1` of the model server) again and again on one keep-alive
//! connection for `SECS` seconds, and for every event compare when it arrived with when the model
//! server wrote it (the `: sent=<µs>` comment before it; same machine, same clock). The clients
//! start spread evenly over the first second, as independent users would. Prints one
//! JSON line: streams and events read, errors, and p50/p99 of the delay each event got and of
//! the time to the first event (time to first token).
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

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one chunked response; records each event's delay and the first event's time.
async fn one(
    s: &mut TcpStream,
    req: &[u8],
    delay: &mut Histogram<u64>,
    ttft: &mut Histogram<u64>,
) -> Result<u64, String> {
    let start = Instant::now();
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
            let _ = delay.record(micros_now().saturating_sub(sent).max(1));
            if first {
                let _ = ttft.record(start.elapsed().as_micros().max(1) as u64);
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

async fn client(
    addr: String,
    req: Vec<u8>,
    start: Duration,
    until: Instant,
) -> (Tally, Histogram<u64>, Histogram<u64>) {
    // Independent users do not start in step: client i starts i/C of a second in.
    tokio::time::sleep(start).await;
    let mut t = Tally::default();
    let mut delay = Histogram::new(3).unwrap();
    let mut ttft = Histogram::new(3).unwrap();
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
        match one(s, &req, &mut delay, &mut ttft).await {
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
    (t, delay, ttft)
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
    let (t, delay, ttft) = rt.block_on(async {
        let tasks: Vec<_> = (0..c)
            .map(|i| {
                let start = Duration::from_secs(1) * i as u32 / c as u32;
                tokio::spawn(client(addr.clone(), req.clone(), start, until))
            })
            .collect();
        let mut all = (
            Tally::default(),
            Histogram::new(3).unwrap(),
            Histogram::new(3).unwrap(),
        );
        for task in tasks {
            let (t, d, f) = task.await.unwrap();
            all.0.streams += t.streams;
            all.0.events += t.events;
            all.0.errors += t.errors;
            all.1.add(&d).unwrap();
            all.2.add(&f).unwrap();
        }
        all
    });
    println!(
        "{{\"streams\":{},\"events\":{},\"errors\":{},\"delay_p50_us\":{},\"delay_p99_us\":{},\"ttft_p50_us\":{},\"ttft_p99_us\":{}}}",
        t.streams,
        t.events,
        t.errors,
        delay.value_at_quantile(0.5),
        delay.value_at_quantile(0.99),
        ttft.value_at_quantile(0.5),
        ttft.value_at_quantile(0.99)
    );
}
