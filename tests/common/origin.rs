//! An origin that records the raw request heads it receives, for suites that check what the
//! proxy forwards byte for byte.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{eventually, get};

/// Answers every request with `200 ok` and closes, one connection after another: once it has
/// seen a later request, it has seen every earlier one.
pub struct Recorder {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<Vec<u8>>>>,
    marks: AtomicUsize,
}

impl Recorder {
    pub fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let h = heads.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let Some(head) = read_head(&mut s) else {
                    continue;
                };
                if !head.starts_with(b"GET /health ") {
                    h.lock().unwrap().push(head);
                }
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = s.write_all(ok);
            }
        });
        Recorder {
            addr,
            heads,
            marks: AtomicUsize::new(0),
        }
    }

    /// Sends `bytes` to the proxy at `proxy` on a new connection, closes the sending side (no
    /// body follows: a request that announced one ends there), and returns the answer's status
    /// (`None` if the connection closed without one) with every head the origin received.
    pub fn exchange(&self, proxy: SocketAddr, bytes: &[u8]) -> (Option<u16>, Vec<Vec<u8>>) {
        let before = self.heads.lock().unwrap().len();
        let status = send_closing(proxy, bytes);
        self.settle(proxy);
        let mut heads = self.heads.lock().unwrap();
        let at = before.min(heads.len());
        let got = heads.split_off(at);
        (status, got)
    }

    /// Sends a plain request through the proxy and waits until the origin has it: everything
    /// sent before it has then reached the origin, or never will.
    fn settle(&self, proxy: SocketAddr) {
        let path = format!("/settle/{}", self.marks.fetch_add(1, Ordering::Relaxed));
        assert_eq!(get(proxy, &path, &[]).unwrap().status, 200);
        let line = format!("GET {path} ");
        eventually(&format!("{path} at the origin"), || {
            let mut heads = self.heads.lock().unwrap();
            let at = heads.iter().position(|h| h.starts_with(line.as_bytes()))?;
            heads.remove(at);
            Some(())
        });
    }
}

/// Reads one request head, up to its empty line.
fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(i + 4);
            return Some(buf);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `bytes`, closes the sending side, and reads the answer's status.
pub fn send_closing(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).ok()?;
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
