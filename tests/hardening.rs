//! Requests sent by hand, byte for byte: the framing rules an edge must enforce (RFC 9112),
//! pipelining, and the timeouts: clients too slow to send a request head or to read an answer,
//! idle kept-alive connections, and a model too slow to answer.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn proxy(extra: &str) -> (Models, Proxy) {
    let mut m = Models::new();
    m.start("v1");
    m.start("v2");
    let p = Proxy::start(&two_colors(&[m.addr(0)], &[m.addr(1)], (100, 0), extra));
    (m, p)
}

/// Sends `bytes` on a new connection and reads until the server closes: every response.
fn exchange(p: &Proxy, bytes: &[u8]) -> String {
    String::from_utf8_lossy(&raw(p.addr, bytes).unwrap()).into_owned()
}

fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn an_http11_request_without_host_gets_400_and_never_reaches_the_model() {
    let (m, p) = proxy("");
    let out = exchange(
        &p,
        b"GET /predict HTTP/1.1\r\nuser-agent: hand\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&out), [400], "{out}");
    assert!(
        out.contains("needs a Host header (RFC 9112 section 3.2)"),
        "{out}"
    );
    let two = exchange(
        &p,
        b"GET /predict HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(statuses(&two), [400], "{two}");
    // HTTP/1.0 may omit it.
    let old = exchange(&p, b"GET /predict HTTP/1.0\r\n\r\n");
    assert_eq!(statuses(&old), [200], "{old}");
    assert_eq!(m.servers[0].controls.predictions(), 1);
}

#[test]
fn both_content_length_and_transfer_encoding_are_forwarded_as_chunked_and_the_connection_closes() {
    let (m, p) = proxy("");
    m.servers[0].controls.record_requests();
    // A smuggling attempt: CL says 4 bytes, chunked says the body ends at once, and what follows
    // would be a second request. RFC 9112 section 6.3: Transfer-Encoding wins, the length goes,
    // and the connection closes after the answer, so the "second request" is never read.
    let attack = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    let out = exchange(&p, attack);
    assert_eq!(
        statuses(&out),
        [200],
        "one answer, then the connection closes: {out}"
    );
    assert!(out.to_lowercase().contains("connection: close"), "{out}");
    let got = m.servers[0].controls.recorded();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "/predict");
    assert!(
        !got[0].headers.iter().any(|(k, _)| k == "content-length"),
        "{got:?}"
    );
    // Framings Pingora refuses outright: a last coding other than chunked, TE in HTTP/1.0,
    // lengths that disagree or are not numbers.
    for te in ["chunked, identity", "xchunked", "gzip"] {
        let req = format!(
            "POST /predict HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {te}\r\n\r\n0\r\n\r\n"
        );
        assert_eq!(statuses(&exchange(&p, req.as_bytes())), [400], "{te}");
    }
    let old = b"POST /predict HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(statuses(&exchange(&p, old)), [400]);
    for cl in [
        "content-length: 2\r\ncontent-length: 3",
        "content-length: 1x",
        "content-length: -1",
    ] {
        let req = format!("POST /predict HTTP/1.1\r\nhost: x\r\n{cl}\r\n\r\nabc");
        assert_eq!(statuses(&exchange(&p, req.as_bytes())), [400], "{cl}");
    }
    assert_eq!(
        m.servers[0].controls.recorded().len(),
        1,
        "none of them reached the model"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (m, p) = proxy("");
    m.servers[0].controls.record_requests();
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend_from_slice(
            format!("GET /predict?id={i} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(),
        );
    }
    bytes.extend_from_slice(b"GET /headers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    // One write, four requests.
    let out = exchange(&p, &bytes);
    assert_eq!(statuses(&out), [200, 200, 200, 200], "{out}");
    let paths: Vec<String> = m.servers[0]
        .controls
        .recorded()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/predict?id=0",
            "/predict?id=1",
            "/predict?id=2",
            "/headers"
        ]
    );
    // The answers come back in the order asked: the last is the /headers echo.
    let last = out.rfind("HTTP/1.1 200").unwrap();
    assert!(
        out[last..].to_lowercase().contains("get /headers http/1.1"),
        "{out}"
    );
    // A POST with its body, then a GET, in one write.
    let two = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGET /predict?id=9 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    assert_eq!(statuses(&exchange(&p, two)), [200, 200]);
}

#[test]
fn a_client_too_slow_with_its_first_head_gets_408_and_normal_clients_do_not_wait() {
    let (_m, p) = proxy("timeouts:\n  client_header: 1s\n");
    // Silent after connecting: closed at the deadline (no h2c peek without a timeout).
    let mut silent = TcpStream::connect(p.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let _ = silent.read_to_end(&mut out);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{out:?}"
    );
    // Slowloris: a byte every 300 ms never completes a head in time.
    let mut slow = TcpStream::connect(p.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    for b in b"GET /predict HTTP/1.1\r\nhost: x\r\n".iter() {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if t.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(String::from_utf8_lossy(&out).contains("408"), "{out:?}");
    // Meanwhile a normal client is served at once, and HTTP/2 with prior knowledge still works.
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() {
    let (_m, p) = proxy("timeouts:\n  keepalive: 1s\n");
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /predict HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "closed after {idle:?}"
    );
}

#[test]
fn a_model_slower_than_the_read_timeout_gets_504_and_others_are_served() {
    let (_m, p) = proxy("timeouts:\n  read: 1s\n");
    let t = Instant::now();
    // The model would answer after 5 s; the proxy stops waiting after 1 s, once (a request the
    // model may have acted on is not sent again).
    let slow = get(p.addr, "/predict?delay=5000", &[]).unwrap();
    let waited = t.elapsed();
    assert_eq!(slow.status, 504, "{slow:?}");
    assert!(
        slow.body.contains("blueshift: color blue timed out"),
        "{slow:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    let (_m, p) = proxy("timeouts:\n  client_send: 1s\n");
    const BIG: usize = 48 << 20;
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /big?bytes={BIG} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 1024];
    s.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    // The client stops reading (this pause is the behaviour under test, longer than the
    // timeout): the proxy's writes stall on full socket buffers, and it gives up.
    std::thread::sleep(Duration::from_secs(3));
    let mut got = head.len();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection is still open 10 s later ({e}): no send timeout"),
        }
    }
    assert!(
        got < BIG,
        "the whole answer arrived ({got} bytes): nothing was cut off"
    );
    // Others are served as before.
    assert_eq!(p.get("/predict", &[]).status, 200);
}

#[test]
fn a_tcp_probe_of_a_tls_listener_is_a_debug_line_and_real_handshake_failures_stay_errors() {
    // Load balancers' TCP health checks and Kubernetes' tcpSocket probes connect to the TLS port
    // and close before any TLS, every few seconds from every node, some with a reset: not an
    // error, nor is any other client that resets mid-handshake. A client that speaks plain HTTP
    // to the TLS port is one.
    let mut m = Models::new();
    let b = m.start("v1");
    let dir = tempfile::tempdir().unwrap();
    let ca = common::peers::Ca::new();
    let (cert, key) = common::peers::write_pair(dir.path(), "edge", &ca.leaf(&["localhost"]));
    let (addr, admin) = ports();
    let tls: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let policy = format!(
        "listen:\n  - {{listen}}\n  - addr: {tls}\n    tls: {{cert: {}, key: {}}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends: [{{addr: {}}}]\n",
        cert.display(),
        key.display(),
        m.addr(b)
    );
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, fill(&policy, addr, admin)).unwrap();
    let log = dir.path().join("blueshift.log");
    let env = [("RUST_LOG", "info,pingora_core::services::listening=debug")];
    let child = Proxy::spawn_logging(&path, &[], &env, std::fs::File::create(&log).unwrap());
    let _p = Proxy::attach(child, &path, addr, admin, tempfile::tempdir().unwrap());
    eventually("the TLS listener", || TcpStream::connect(tls).ok())
        .shutdown(std::net::Shutdown::Both)
        .unwrap();
    // Closed with a reset (SO_LINGER 0) before any TLS.
    let reset = socket2::Socket::from(TcpStream::connect(tls).unwrap());
    reset.set_linger(Some(Duration::ZERO)).unwrap();
    drop(reset);
    let mut plain = TcpStream::connect(tls).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: m\r\n\r\n")
        .unwrap();

    let lines = eventually("the three handshakes in the log", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let failed: Vec<String> = text
            .lines()
            .filter(|l| l.contains("Downstream handshake error"))
            .map(str::to_owned)
            .collect();
        (failed.len() >= 3).then_some(failed)
    });
    let left = |l: &&String| l.ends_with("tls handshake eof") || l.ends_with("(os error 104)");
    let probes: Vec<&String> = lines.iter().filter(left).collect();
    assert!(
        probes.iter().any(|l| l.ends_with("tls handshake eof"))
            && probes.iter().any(|l| l.ends_with("(os error 104)")),
        "{lines:#?}"
    );
    assert!(probes.iter().all(|l| l.contains(" DEBUG ")), "{lines:#?}");
    let real: Vec<&String> = lines.iter().filter(|l| !left(l)).collect();
    assert!(!real.is_empty(), "{lines:#?}");
    assert!(real.iter().all(|l| l.contains(" ERROR ")), "{lines:#?}");
}

#[test]
fn a_client_that_expects_100_continue_gets_it_from_blueshift_and_the_model_gets_the_body() {
    // The model server here never sends 100 Continue (many do not); without one, curl waits a
    // second (its default) before it sends a body over 1 MiB. blueshift answers it, as nginx
    // and Envoy do, and does not pass the expectation on.
    let (m, p) = proxy("");
    m.servers[0].controls.record_requests();
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"POST /predict HTTP/1.1\r\nhost: m\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let mut head = [0u8; 15];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");
    let got = eventually("the model to have the request", || {
        let recorded = m.servers[0].controls.recorded();
        recorded.into_iter().find(|r| r.method == "POST")
    });
    assert_eq!(got.body, b"hello");
    assert!(
        !got.headers.iter().any(|(k, _)| k == "expect"),
        "{:?}",
        got.headers
    );

    // A real client: curl sends `Expect: 100-continue` with bodies over 1 MiB.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.json");
    std::fs::write(&file, vec![b'7'; 2 << 20]).unwrap();
    let url = format!("http://{}/predict", p.addr);
    let data = format!("@{}", file.display());
    let out = common::peers::curl(&[
        "-sv",
        "-o",
        "/dev/null",
        "--expect100-timeout",
        "10",
        "--data-binary",
        &data,
        &url,
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("> Expect: 100-continue"), "{log}");
    assert!(log.contains("< HTTP/1.1 100 Continue"), "{log}");
    assert!(log.contains("< HTTP/1.1 200 OK"), "{log}");
    let got = eventually("the model to have the batch", || {
        m.servers[0]
            .controls
            .recorded()
            .into_iter()
            .find(|r| r.body.len() == 2 << 20)
    });
    assert!(got.body.iter().all(|b| *b == b'7'));
}
