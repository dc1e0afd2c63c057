//! Kept-alive connections to the models going stale under a request: a model server closes an
//! idle connection (uvicorn after 5 s, gunicorn after 2 s) just as blueshift sends on it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The POST bodies a model server read whole.
type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

/// When a model server drops a kept-alive connection under a later POST.
#[derive(Clone, Copy)]
enum Cut {
    /// The moment its head arrives: an idle timeout firing just then.
    AtHead,
    /// After reading this much of its body: a model that crashed mid-upload.
    After(usize),
    /// Once it has read all of it: a model that crashed on the request.
    AfterBody,
}

/// A model server that answers the first request of every connection (echoing the length of
/// its body) and keeps the connection open, and drops it with a reset when a POST arrives on it
/// later, as `Cut` says.
struct Dropping {
    addr: SocketAddr,
    /// The bodies of the POSTs read whole.
    bodies: Bodies,
    dropped: Arc<AtomicUsize>,
}

impl Dropping {
    fn start(when: Cut) -> Dropping {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let bodies: Bodies = Arc::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let (b, d) = (bodies.clone(), dropped.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(s) = conn else { continue };
                let (b, d) = (b.clone(), d.clone());
                std::thread::spawn(move || serve(s, when, &b, &d));
            }
        });
        Dropping {
            addr,
            bodies,
            dropped,
        }
    }
}

fn serve(mut s: TcpStream, when: Cut, bodies: &Mutex<Vec<Vec<u8>>>, dropped: &AtomicUsize) {
    let mut buf = Vec::new();
    // Reads until `enough(buf)` or the connection ends.
    let fill = |s: &mut TcpStream, buf: &mut Vec<u8>, enough: &dyn Fn(&[u8]) -> bool| {
        while !enough(buf) {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        true
    };
    let end_of_head = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n");
    for n in 0.. {
        if !fill(&mut s, &mut buf, &|b| end_of_head(b).is_some()) {
            return;
        }
        let at = end_of_head(&buf).unwrap() + 4;
        let head = String::from_utf8_lossy(&buf.drain(..at).collect::<Vec<u8>>()).into_owned();
        let post = head.starts_with("POST ");
        let drop_now = |s: &TcpStream| {
            // SO_LINGER 0: close with a reset.
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            dropped.fetch_add(1, Ordering::SeqCst);
        };
        let later = n > 0 && post;
        if later && matches!(when, Cut::AtHead) {
            return drop_now(&s);
        }
        let length = head
            .lines()
            .find_map(|l| {
                let l = l.to_ascii_lowercase();
                l.strip_prefix("content-length:")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        if let (true, Cut::After(part)) = (later, when) {
            let _ = fill(&mut s, &mut buf, &|b| b.len() >= part);
            return drop_now(&s);
        }
        if !fill(&mut s, &mut buf, &|b| b.len() >= length) {
            return;
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        if post {
            bodies.lock().unwrap().push(body);
        }
        if later {
            return drop_now(&s);
        }
        let answer = length.to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if s.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// blueshift in front of `origin`, with one kept-alive connection to it in the pool.
fn proxy_with_a_pooled_connection(origin: &Dropping) -> Proxy {
    let p = Proxy::start(&format!(
        "listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n",
        origin.addr
    ));
    assert_eq!(p.get("/warm", &[]).status, 200);
    p
}

/// Sends a POST of `body` in two halves, the second once the model has dropped a connection;
/// returns the answer.
fn post_in_halves(p: &Proxy, origin: &Dropping, body: &[u8]) -> Resp {
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "POST /predict HTTP/1.1\r\nhost: m\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    c.write_all(&body[..half]).unwrap();
    eventually("the model to drop the kept-alive connection", || {
        (origin.dropped.load(Ordering::SeqCst) > 0).then_some(())
    });
    // The proxy may have answered (and closed) already.
    let _ = c.write_all(&body[half..]);
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    parse(&answer).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&answer)))
}

fn body(len: u32) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn a_post_on_a_connection_the_model_drops_as_it_arrives_is_sent_again_whole() {
    // The model never had that request (it closed before reading its body), so sending it
    // again on a new connection is safe for a POST too; the client gets its answer, not a 502.
    let origin = Dropping::start(Cut::AtHead);
    let p = proxy_with_a_pooled_connection(&origin);
    let sent = body(2000);
    let r = post_in_halves(&p, &origin, &sent);
    assert_eq!((r.status, r.body.as_str()), (200, "2000"), "{r:?}");
    assert_eq!(origin.bodies.lock().unwrap().as_slice(), [sent]);
}

#[test]
fn a_post_the_model_read_whole_or_too_large_to_keep_is_not_sent_again() {
    // A model that read the whole POST and then died may have acted on it: not sent again, the
    // client gets a 502 (nginx's rule for non-idempotent requests).
    let origin = Dropping::start(Cut::AfterBody);
    let p = proxy_with_a_pooled_connection(&origin);
    let mut c = TcpStream::connect(p.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sent = body(2000);
    write!(
        c,
        "POST /predict HTTP/1.1\r\nhost: m\r\nconnection: close\r\ncontent-length: 2000\r\n\r\n"
    )
    .unwrap();
    c.write_all(&sent).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let r = parse(&answer).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&answer)));
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        origin.bodies.lock().unwrap().as_slice(),
        [sent],
        "sent twice"
    );

    // A model that dropped a POST after reading more than the 64 KiB blueshift keeps to send
    // again: what was forwarded is gone, so the client gets a 502, not a truncated request.
    let origin = Dropping::start(Cut::After(70_000));
    let p = proxy_with_a_pooled_connection(&origin);
    let r = post_in_halves(&p, &origin, &body(200_000));
    assert_eq!(r.status, 502, "{r:?}");
    assert!(origin.bodies.lock().unwrap().is_empty());
}
