//! Headless Chromium driven over the Chrome DevTools Protocol (CDP), for the browser
//! client's tests.
//!
//! Why CDP rather than WebDriver: the tests need a page's JavaScript (to read the DOM),
//! real key presses and text input, several isolated users in one browser (browser
//! contexts: separate cookies and storage) and screenshots at a given width. CDP gives
//! all of that over one WebSocket with JSON messages, which the tests already have the
//! crates for (tokio-tungstenite, serde_json, base64): no WebDriver client crate (and its
//! HTTP client and TLS stack), and no `chromedriver` process beside the browser.
//!
//! One Chromium serves all the tests of a test binary that run at the same time: the
//! first test to ask starts it, each test opens its own DevTools connection, and the
//! browser is stopped when the last test holding it is done. Without Chromium the tests
//! are skipped with a loud message, unless `CI=true`, where they fail.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for a page to reach a state before it fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(60);

/// A running headless Chromium and its DevTools endpoint.
pub struct Chromium {
    child: Mutex<Child>,
    endpoint: String,
    profile: PathBuf,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

static SHARED: Mutex<Weak<Chromium>> = Mutex::new(Weak::new());

/// The browser binary: `$PARLEY_CHROMIUM`, or Debian's `chromium`, or another usual name.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PARLEY_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The shared browser, started if need be; `None` (after a loud message) when Chromium
/// is not installed outside CI. In CI (`CI=true`) a missing browser fails the test.
pub fn chromium() -> Option<Arc<Chromium>> {
    let mut shared = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(running) = shared.upgrade() {
        return Some(running);
    }
    let Some(binary) = binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but Chromium is not installed: .ci/run installs Debian's chromium");
        }
        eprintln!(
            "\n*** SKIPPED: the browser client's tests need Chromium (apt-get install chromium, \
             or PARLEY_CHROMIUM=/path/to/chrome); they did not run. ***\n"
        );
        return None;
    };
    let profile = std::env::temp_dir().join(format!("parley-chromium-{}-{}", std::process::id(), unique()));
    let mut child = Command::new(&binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
    // Chromium says where DevTools listen on stderr; the rest of stderr is drained (and
    // kept for a failure's message) so that the browser never blocks on a full pipe.
    let stderr = child.stderr.take().expect("a piped stderr");
    let (found, endpoint) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                if let Some(found) = found.take() {
                    let _ = found.send(url.trim().to_owned());
                }
            } else if std::env::var_os("PARLEY_CHROMIUM_LOG").is_some() {
                eprintln!("chromium: {line}");
            }
        }
    });
    let endpoint = endpoint
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{} did not open its DevTools endpoint", binary.display()));
    let browser = Arc::new(Chromium { child: Mutex::new(child), endpoint, profile });
    *shared = Arc::downgrade(&browser);
    Some(browser)
}

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One DevTools connection to the browser: commands with ids, their answers matched.
pub struct DevTools {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: AtomicU64,
    /// Exceptions and console errors, by page session.
    problems: Arc<Mutex<HashMap<String, Vec<String>>>>,
    _browser: Arc<Chromium>,
}

impl DevTools {
    pub async fn connect(browser: Arc<Chromium>) -> Arc<DevTools> {
        let request = browser.endpoint.as_str().into_client_request().expect("a DevTools URL");
        let host = request.uri().authority().expect("a DevTools host").to_string();
        let stream = TcpStream::connect(&host).await.expect("DevTools accepts");
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await.expect("the DevTools handshake");
        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let problems: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let (answers, seen) = (pending.clone(), problems.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Ok(text) = message.into_text() else { continue };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if let Some(id) = value.get("id").and_then(Value::as_u64) {
                    let waiting = answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
                    if let Some(waiting) = waiting {
                        let answer = match value.get("error") {
                            Some(error) => Err(error.to_string()),
                            None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        let _ = waiting.send(answer);
                    }
                } else if let Some(problem) = problem(&value) {
                    let session = value.get("sessionId").and_then(Value::as_str).unwrap_or_default().to_owned();
                    seen.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(session)
                        .or_default()
                        .push(problem);
                }
            }
        });
        Arc::new(DevTools { out, pending, next_id: AtomicU64::new(1), problems, _browser: browser })
    }

    /// Sends a command (to a page session, or to the browser) and waits for its answer.
    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let (answer, answered) = oneshot::channel();
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, answer);
        self.out.send(command.to_string()).map_err(|_| "the DevTools connection is closed".to_owned())?;
        match tokio::time::timeout(PAGE_WAIT, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the DevTools connection closed".into()),
            Err(_) => Err(format!("{method} was not answered in time")),
        }
    }

    /// A new page in a browser context of its own (its own cookies and storage), in a
    /// window of its own (so it is visible, as a user's tab would be).
    pub async fn page(self: &Arc<Self>, width: u32, height: u32) -> Page {
        let context = self.call(None, "Target.createBrowserContext", json!({"disposeOnDetach": true})).await;
        let context = context.expect("a browser context")["browserContextId"].as_str().expect("an id").to_owned();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context, "newWindow": true, "width": width, "height": height}),
            )
            .await
            .expect("a page");
        let target = target["targetId"].as_str().expect("a target id").to_owned();
        let session = self.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true})).await;
        let session = session.expect("attached")["sessionId"].as_str().expect("a session id").to_owned();
        let page = Page { tools: self.clone(), session, target, context };
        for (method, params) in [
            ("Runtime.enable", json!({})),
            ("Log.enable", json!({})),
            ("Page.enable", json!({})),
            ("Emulation.setFocusEmulationEnabled", json!({"enabled": true})),
        ] {
            page.tools.call(Some(&page.session), method, params).await.expect(method);
        }
        page.resize(width, height).await;
        page
    }
}

/// What an event says went wrong in a page: an uncaught exception, a console error, a
/// policy violation.
fn problem(event: &Value) -> Option<String> {
    let params = event.get("params")?;
    match event.get("method")?.as_str()? {
        "Runtime.exceptionThrown" => Some(format!("exception: {}", params["exceptionDetails"])),
        "Runtime.consoleAPICalled" if params["type"] == "error" => Some(format!("console.error: {}", params["args"])),
        "Log.entryAdded" if params["entry"]["level"] == "error" => {
            let text = params["entry"]["text"].as_str().unwrap_or_default().to_owned();
            // A refused WebSocket, or a cookie endpoint a server lacks, is the network's
            // business, not the page's.
            (!text.contains("Failed to load resource")).then_some(format!("log: {text}"))
        }
        _ => None,
    }
}

/// One tab.
pub struct Page {
    tools: Arc<DevTools>,
    session: String,
    target: String,
    context: String,
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.tools.call(Some(&self.session), method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Loads `url` and waits until its document is complete.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", "the page loads").await;
    }

    /// Evaluates an expression (awaiting it if it is a promise) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true}),
            )
            .await;
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression}\nthrew {exception}");
        }
        answer["result"].get("value").cloned().unwrap_or(Value::Null)
    }

    /// Polls `condition` (a JavaScript expression) until it is truthy, and returns its
    /// value; fails the test after [`PAGE_WAIT`], saying what was awaited.
    pub async fn wait_for(&self, condition: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        let check = format!("(() => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }})()");
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        loop {
            poll.tick().await;
            let value = self.eval(&check).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} ({condition}); last: {value}"
            );
        }
    }

    /// Clicks the element `selector` names (scrolled into view first), as a user would.
    pub async fn click(&self, selector: &str) {
        let at = self
            .wait_for(
                &format!(
                    "(() => {{ const e = document.querySelector({sel}); if (!e || e.offsetParent === null) return null; \
                     e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                     return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                    sel = json!(selector)
                ),
                &format!("{selector} to be shown"),
            )
            .await;
        let (x, y) = (at[0].as_f64().unwrap_or(0.0), at[1].as_f64().unwrap_or(0.0));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Focuses `selector` and types `text` into it, as a keyboard would.
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.wait_for(&format!("document.querySelector({})", json!(selector)), &format!("{selector} to exist")).await;
        self.eval(&format!("document.querySelector({}).focus()", json!(selector))).await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses a key (`Enter`, `Escape`, `ArrowUp`, ...) with modifiers (1 Alt, 2 Ctrl, 4 Meta, 8 Shift).
    pub async fn press(&self, key: &str, modifiers: u32) {
        let (code, text) = match key {
            "Enter" => (13, "\r"),
            "Escape" => (27, ""),
            "ArrowUp" => (38, ""),
            "ArrowDown" => (40, ""),
            "Tab" => (9, ""),
            _ => match key.as_bytes() {
                [c] if c.is_ascii_alphanumeric() => (u32::from(c.to_ascii_uppercase()), key),
                _ => (0, ""),
            },
        };
        let text = if modifiers & 3 != 0 { "" } else { text };
        let down = json!({"type": if text.is_empty() { "rawKeyDown" } else { "keyDown" }, "key": key, "code": key,
            "windowsVirtualKeyCode": code, "modifiers": modifiers, "text": text});
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": modifiers}),
        )
        .await;
    }

    /// Types a line into the message box and sends it with Enter.
    pub async fn send_line(&self, line: &str) {
        self.type_into("#input", line).await;
        self.press("Enter", 0).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}),
        )
        .await;
    }

    /// A PNG of the page as it is shown.
    pub async fn screenshot(&self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("image data")).expect("base64")
    }

    /// Exceptions and console errors the page reported so far.
    pub fn problems(&self) -> Vec<String> {
        let problems = self.tools.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        problems.get(&self.session).cloned().unwrap_or_default()
    }

    /// Closes the tab and its context.
    pub async fn close(self) {
        let _ = self.tools.call(None, "Target.closeTarget", json!({"targetId": self.target})).await;
        let _ = self.tools.call(None, "Target.disposeBrowserContext", json!({"browserContextId": self.context})).await;
    }
}
