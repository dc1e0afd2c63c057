//! Headless Chromium driven over its DevTools protocol: just enough to load a page, read it,
//! click and type like a user, and take a screenshot.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::{eventually, eventually_within};

/// The browser binary: `$CHROMIUM`, else the first of Debian's and others' names on `PATH`.
fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return p.into();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("no Chromium on PATH: `make test` installs Debian's chromium, or set CHROMIUM");
}

/// Waits for Chromium to write the port it chose and the browser's WebSocket path. Started
/// while its ~350 MB are not in the page cache, beside two other tests' browsers on two cores,
/// it once took longer than [`super::DEADLINE`] in CI, so the wait is a minute; a browser that
/// exits says why (its stderr) instead.
fn devtools_endpoint(child: &mut Child, profile: &Path) -> String {
    let active = profile.join("DevToolsActivePort");
    let stderr = || std::fs::read_to_string(profile.join("stderr")).unwrap_or_default();
    let why = || format!("Chromium wrote no DevTools port in 60 s: {}", stderr());
    eventually_within(Duration::from_secs(60), why, || {
        if let Ok(text) = std::fs::read_to_string(&active) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return Some(format!("ws://127.0.0.1:{port}{path}"));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "Chromium exited ({status}) before it listened: {}",
                stderr()
            );
        }
        None
    })
}

/// One headless browser with one tab.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium at `width`x`height` and opens a tab on `url`.
    pub fn open(url: &str, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!("--window-size={width},{height}"),
                "about:blank",
            ])
            // Chromium's singleton socket directory, which a killed Chromium leaves behind,
            // goes in the profile, which is removed with the browser.
            .env("TMPDIR", profile.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(profile.path().join("stderr")).unwrap())
            .spawn()
            .expect("start chromium");
        let endpoint = devtools_endpoint(&mut child, profile.path());
        let (ws, _) = tungstenite::connect(endpoint.as_str()).expect("connect to DevTools");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next: 0,
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        b.call("Page.navigate", json!({ "url": url }));
        b
    }

    /// Sends one command (to the tab once attached) and returns its result; panics on an error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let text = match self.ws.read().expect("DevTools answer") {
                Message::Text(t) => t,
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            // Events have no id; they are not needed here.
            if v["id"] == json!(id) {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{js}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// The text of the first element matching `selector` ("" if there is none).
    pub fn text(&mut self, selector: &str) -> String {
        let js = format!("(document.querySelector({selector:?}) || {{}}).textContent || ''");
        self.eval(&js).as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the middle of the element matching `selector` with the mouse, as a user would
    /// (so a covered or hidden element is not clicked).
    pub fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             if (!r.width || !r.height) return null; return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let at = eventually(&format!("{selector} to be visible"), || {
            let v = self.eval(&js);
            Some((v.get(0)?.as_f64()?, v.get(1)?.as_f64()?))
        });
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": at.0, "y": at.1, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Clicks into the field matching `selector` and types `text`.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    /// Asks Chromium to close, so that it ends its helper processes before its profile is
    /// removed (killed, it leaves them writing into it); kills it if it has not exited in 10 s.
    fn drop(&mut self) {
        let close = json!({ "id": self.next + 1, "method": "Browser.close" });
        if self.ws.send(Message::text(close.to_string())).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
