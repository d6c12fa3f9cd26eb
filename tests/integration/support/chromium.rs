//! Headless Chromium, driven through the `DevTools` protocol over its `WebSocket`,
//! for the tests that open the HTML report in a real browser. It records every
//! console message, uncaught exception, log entry (Content-Security-Policy
//! violations among them) and network request a page makes, evaluates
//! expressions in it, and takes screenshots.
//!
//! The browser is Debian's `chromium` (or `BYOK_FLOW_CHROMIUM`); a missing one
//! fails the test: these tests are `#[ignore]`d, and `.ci/run` installs it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events read while waiting for a reply, not yet looked at.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// What a page did while it loaded.
#[derive(Debug, Default)]
pub struct Visit {
    /// Console calls, exceptions and log entries: `(level, text)`.
    pub messages: Vec<(String, String)>,
    /// Every request's URL, the document's own included.
    pub requests: Vec<String>,
}

impl Visit {
    /// Messages at level `error` (console errors, exceptions, CSP violations).
    pub fn errors(&self) -> Vec<&(String, String)> {
        self.messages
            .iter()
            .filter(|(level, _)| level == "error" || level == "exception")
            .collect()
    }
}

/// The browser binary: `BYOK_FLOW_CHROMIUM`, else the first of Debian's and
/// others' names on `PATH`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BYOK_FLOW_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found: install Debian's `chromium` (`apt-get install -y chromium`, as .ci/run does) or set BYOK_FLOW_CHROMIUM"
    );
}

impl Browser {
    /// Starts Chromium with a fresh profile and nothing running in the background.
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1280,2000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        // Chromium writes its port and the browser's WebSocket path here.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_mins(1);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_string(), path.to_string());
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let (socket, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}"))
            .expect("connect to Chromium's DevTools");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_mins(1)))
                .unwrap();
        }
        Browser {
            child,
            socket,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        }
    }

    /// Sends a command (to a page's session, if given) and waits for its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: &Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send to Chromium");
        loop {
            let reply = self.read();
            if reply["id"] == json!(id) {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
            self.events.push(reply);
        }
    }

    fn read(&mut self) -> Value {
        loop {
            match self.socket.read().expect("read from Chromium") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(_) => panic!("Chromium closed the connection"),
                _ => {}
            }
        }
    }

    /// Opens `file` in a new tab, records what it does until it has loaded (and a
    /// moment more), and returns the tab's session for [`Browser::eval`].
    pub fn open(&mut self, file: &Path) -> (String, Visit) {
        let target = self.call(None, "Target.createTarget", &json!({"url": "about:blank"}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            &json!({"targetId": target["targetId"], "flatten": true}),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime", "Log", "Network", "Page"] {
            self.call(Some(&session), &format!("{domain}.enable"), &json!({}));
        }
        self.events.clear();
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        self.call(Some(&session), "Page.navigate", &json!({"url": url}));
        let mut visit = Visit::default();
        let mut loaded = None::<Instant>;
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let event = if self.events.is_empty() {
                if loaded.is_some_and(|at| at.elapsed() > Duration::from_millis(500)) {
                    break;
                }
                // A short ping keeps the loop moving once the page is quiet.
                self.call(
                    Some(&session),
                    "Runtime.evaluate",
                    &json!({"expression": "1"}),
                );
                continue;
            } else {
                self.events.remove(0)
            };
            assert!(Instant::now() < deadline, "the page did not load");
            if event["sessionId"].as_str() != Some(&session) {
                continue;
            }
            record(&event, &mut visit);
            if event["method"] == "Page.loadEventFired" {
                loaded = Some(Instant::now());
            }
        }
        (session, visit)
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            &json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let shot = self.call(
            Some(session),
            "Page.captureScreenshot",
            &json!({"format": "png", "captureBeyondViewport": true}),
        );
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }
}

/// Notes what an event says about the page.
fn record(event: &Value, visit: &mut Visit) {
    let params = &event["params"];
    match event["method"].as_str().unwrap_or_default() {
        "Runtime.consoleAPICalled" => visit.messages.push((
            params["type"].as_str().unwrap_or_default().to_string(),
            params["args"].to_string(),
        )),
        "Runtime.exceptionThrown" => visit
            .messages
            .push(("exception".into(), params["exceptionDetails"].to_string())),
        "Log.entryAdded" => visit.messages.push((
            params["entry"]["level"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            params["entry"]["text"].to_string(),
        )),
        "Network.requestWillBeSent" => visit
            .requests
            .push(params["request"]["url"].as_str().unwrap_or_default().into()),
        _ => {}
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
